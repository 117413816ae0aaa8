"""Neutral parameters (common.params) <-> this backend's model. The layouts are the same."""

from __future__ import annotations

import torch

from common.params import Params
from torch_impl.model import Adder


def load_params(model: Adder, params: Params) -> None:
    """Copy neutral arrays into the model, bit for bit; names and shapes must match exactly."""
    state = {name: torch.from_numpy(value.copy()) for name, value in params.items()}
    model.load_state_dict(state, strict=True)


def export_params(model: Adder) -> Params:
    return {name: t.detach().cpu().numpy().copy() for name, t in model.state_dict().items()}
