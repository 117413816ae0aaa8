"""Neutral parameters (common.params, PyTorch names and layouts) <-> this backend's state dicts.
The names and layouts are the same: conversions are copies, bit for bit."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from common.params import Params


def to_native(params: Params) -> dict[str, torch.Tensor]:
    """A state dict holding exactly these neutral arrays, any workload's (host tensors:
    `model.load_state_dict(..., strict=True)` places and checks them)."""
    return {name: torch.from_numpy(value.copy()) for name, value in params.items()}


def to_neutral(native: Mapping[str, torch.Tensor], names) -> Params:
    """The neutral arrays `names` read back from a state dict (parameters or their gradients)."""
    return {name: native[name].detach().cpu().numpy().copy() for name in names}
