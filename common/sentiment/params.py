"""The sentiment classifier's framework-neutral parameters, as the adder's (common/params.py):
numpy arrays under PyTorch's state_dict names and layouts, so `init=shared` starts both backends
from bit-identical weights. The embedding is the data's (pretrained vectors, common/sentiment)."""

from __future__ import annotations

import numpy as np

from common.controls import nudge
from common.params import GATES, Params
from common.sentiment.config import TextConfig


def param_shapes(cfg: TextConfig, vocab: int, dim: int) -> dict[str, tuple[int, ...]]:
    shapes = {"embedding.weight": (vocab, dim)}
    rows = GATES[cfg.cell] * cfg.hidden
    for k in range(cfg.layers):
        shapes[f"rnn.weight_ih_l{k}"] = (rows, dim if k == 0 else cfg.hidden)
        shapes[f"rnn.weight_hh_l{k}"] = (rows, cfg.hidden)
        shapes[f"rnn.bias_ih_l{k}"] = (rows,)
        shapes[f"rnn.bias_hh_l{k}"] = (rows,)
    shapes["head.weight"] = (1, cfg.hidden)
    shapes["head.bias"] = (1,)
    return shapes


def init_params(cfg: TextConfig, embedding: np.ndarray) -> Params:
    """The data's embedding; PyTorch's default U(±1/sqrt(hidden)) for the RNN and the head
    (nn.Linear's bound is 1/sqrt(fan_in), and the head's fan-in is the hidden size)."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(100,)))
    bound = 1 / np.sqrt(cfg.hidden)
    params: Params = {}
    for name, shape in param_shapes(cfg, *embedding.shape).items():
        value = embedding if name == "embedding.weight" else rng.uniform(-bound, bound, shape)
        params[name] = np.ascontiguousarray(value, dtype=cfg.dtype)
    return nudge(params) if cfg.control == "ulp" else params
