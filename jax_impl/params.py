"""Neutral parameters (common.params, PyTorch names and (out, in) layouts) <-> the Flax tree.

Every conversion is a rename plus, for kernels, a transpose: round trips are bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.config import Config
from common.params import Params, param_shapes


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


def load_params(cfg: Config, params: Params) -> dict[str, Any]:
    """The Flax `params` collection holding exactly these neutral arrays (host numpy arrays:
    the caller moves them to its device)."""
    return to_tree(params, param_shapes(cfg))


def export_params(cfg: Config, tree: dict[str, Any]) -> Params:
    return from_tree(tree, param_shapes(cfg))


def to_tree(params: Params, names) -> dict[str, Any]:
    """The Flax tree of the neutral arrays `names` of `params` (any workload's)."""
    tree: dict[str, dict[str, Any]] = {}
    for name, (module, leaf), transposed in _layout(names):
        value = params[name].T if transposed else params[name]
        tree.setdefault(module, {})[leaf] = np.ascontiguousarray(value)
    return tree


def from_tree(tree: dict[str, Any], names) -> Params:
    """The neutral arrays `names` read back from a Flax tree."""
    out = {}
    for name, (module, leaf), transposed in _layout(names):
        value = np.asarray(tree[module][leaf])
        out[name] = np.ascontiguousarray(value.T if transposed else value)
    return out
