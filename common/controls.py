"""Rounding-noise controls: the same run, changed only where float rounding can tell.

Two float32 implementations of one model (JAX's and PyTorch's) differ by rounding: kernels sum
in other orders. Where training amplifies rounding (deep, relu or high-lr runs), their curves
part however correct both are. A control measures how far rounding alone carries *one*
framework on the same config and seed, so the cross-framework gap can be read against it:

- `reorder`: the rows of every training batch in one fixed random order. Every row is computed
  as before and the loss is a mean over rows, so the run is mathematically the same; only the
  order of the batch reductions (the loss mean, every weight gradient's sum over rows) changes,
  at every step: the kind of difference two frameworks' kernels make. One permutation for every
  step keeps a carried state on its row.
- `ulp`: every initial weight moved by one unit in the last place, once: the smallest change
  any two implementations could differ by.
"""

from __future__ import annotations

import numpy as np

_REORDER_STREAM = 200  # a random stream of its own (common.data uses 0-3, init 100)


def reorder_rows(seed: int, n: int) -> np.ndarray:
    """The fixed permutation of a batch's n rows that a `reorder` control applies every step."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_REORDER_STREAM,))).permutation(n)


def nudge(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every weight moved by one ulp (towards +inf), dtype kept."""
    return {k: np.nextafter(v, np.inf).astype(v.dtype) for k, v in params.items()}
