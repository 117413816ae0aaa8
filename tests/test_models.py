"""Model shapes, and a first same-weights-same-function check across the two backends."""

import numpy as np
import pytest

from common.config import Config
from common.data import train_batch
from tests.conftest import trainer_for

VARIANTS = [dict(cell="rnn"), dict(cell="rnn", activation="relu"), dict(cell="lstm"),
            dict(cell="gru"), dict(cell="none")]


def forward(backend, cfg, batch):
    trainer = trainer_for(backend, cfg)
    if backend == "torch":
        import torch

        a, b, _, h0 = trainer._on_device(batch)
        with torch.no_grad():
            logits, final = trainer.model(a, b, h0)
        return logits.numpy(), final.numpy()
    logits, final = trainer.model.apply({"params": trainer.state["params"]}, batch.a, batch.b, batch.h0)
    return np.asarray(logits), np.asarray(final)


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_shapes_and_same_function(variant):
    cfg = Config(layers=2, data="uniform", digits=12, batch_size=8, h0="randn", **variant)
    batch = train_batch(cfg, 1)
    outs = {b: forward(b, cfg, batch) for b in ("jax", "torch")}
    for logits, final in outs.values():
        assert logits.shape == (8, cfg.positions, cfg.base)
        assert final.shape == (cfg.state_parts, cfg.layers, 8, cfg.hidden)
    np.testing.assert_allclose(outs["jax"][0], outs["torch"][0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(outs["jax"][1], outs["torch"][1], atol=1e-5, rtol=0)
