"""Framework-neutral parameters: plain numpy arrays under PyTorch's state_dict names and layouts.

`init_params` draws them with numpy from PyTorch's default distributions, so `init=shared`
starts both backends from bit-identical weights; each backend converts this dict to and from
its own parameter structure (`<backend>_impl/params.py`).
"""

from __future__ import annotations

import numpy as np

from common.config import Config
from common.controls import nudge

GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # gate blocks stacked in the weights, PyTorch order

Params = dict[str, np.ndarray]


def rnn_input_size(cfg: Config, layer: int) -> int:
    return 2 * cfg.embed if layer == 0 else cfg.hidden


def head_input_size(cfg: Config) -> int:
    return 2 * cfg.embed if cfg.cell == "none" else cfg.hidden


def param_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    shapes = {"embedding.weight": (cfg.base, cfg.embed)}
    if cfg.cell != "none":
        rows = GATES[cfg.cell] * cfg.hidden
        for k in range(cfg.layers):
            shapes[f"rnn.weight_ih_l{k}"] = (rows, rnn_input_size(cfg, k))
            shapes[f"rnn.weight_hh_l{k}"] = (rows, cfg.hidden)
            shapes[f"rnn.bias_ih_l{k}"] = (rows,)
            shapes[f"rnn.bias_hh_l{k}"] = (rows,)
    shapes["head.weight"] = (cfg.base, head_input_size(cfg))
    shapes["head.bias"] = (cfg.base,)
    return shapes


def init_params(cfg: Config) -> Params:
    """PyTorch's default init, drawn with numpy: N(0, 1) embedding, U(±1/sqrt(fan)) elsewhere.

    For the RNN the fan is the hidden size (torch.nn.RNNBase); for the head it is its input
    size (nn.Linear's kaiming_uniform(a=sqrt(5)) works out to the same bound).
    """
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(100,)))
    params: Params = {}
    for name, shape in param_shapes(cfg).items():
        if name == "embedding.weight":
            value = rng.standard_normal(shape)
        else:
            fan = cfg.hidden if name.startswith("rnn.") else head_input_size(cfg)
            bound = 1 / np.sqrt(fan)
            value = rng.uniform(-bound, bound, shape)
        params[name] = value.astype(cfg.dtype)
    return nudge(params) if cfg.control == "ulp" else params
