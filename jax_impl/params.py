"""Neutral parameters (common.params, PyTorch names and (out, in) layouts) <-> the Flax tree.

Every conversion is a rename plus, for kernels, a transpose: round trips are bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.params import Params


_FIXED = {"embedding.weight": ("embedding", "embedding"),
          "head.weight": ("head", "kernel"),
          "head.bias": ("head", "bias")}


def flax_path(name: str) -> tuple[str, str]:
    """Where a neutral parameter lives in the Flax tree: rnn.weight_ih_l0 -> layer0/ih_kernel."""
    if name in _FIXED:
        return _FIXED[name]
    kind, layer = name.removeprefix("rnn.").rsplit("_l", 1)  # weight_ih, 0
    which, part = kind.split("_")                            # weight|bias, ih|hh
    return f"layer{layer}", f"{part}_{'kernel' if which == 'weight' else 'bias'}"


def _layout(names):
    """(neutral name, Flax path, transposed?): weights are (out, in) in PyTorch, (in, out) here."""
    return [(name, flax_path(name), "weight" in name and name != "embedding.weight") for name in names]


def to_native(params: Params) -> dict[str, Any]:
    """The Flax `params` collection holding exactly these neutral arrays, any workload's (host
    numpy arrays: the caller moves them to its device)."""
    tree: dict[str, dict[str, Any]] = {}
    for name, (module, leaf), transposed in _layout(params):
        value = params[name].T if transposed else params[name]
        tree.setdefault(module, {})[leaf] = np.ascontiguousarray(value)
    return tree


def to_neutral(tree: dict[str, Any], names) -> Params:
    """The neutral arrays `names` read back from a Flax tree (parameters or their gradients)."""
    out = {}
    for name, (module, leaf), transposed in _layout(names):
        value = np.asarray(tree[module][leaf])
        out[name] = np.ascontiguousarray(value.T if transposed else value)
    return out
