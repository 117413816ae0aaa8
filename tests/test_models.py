"""Model shapes, a first same-weights-same-function check across the two backends, and the
contract cuDNN holds PyTorch's recurrent modules to, checked on CPU."""

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
        return logits.cpu().numpy(), final.cpu().numpy()
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


# cuDNN refuses what PyTorch's CPU kernels accept, so a GPU bug of this kind passes every CPU test
# unless the test asks what cuDNN asks. The first GPU run crashed on a strided h0 from an eval
# chunk ("rnn: hx is not contiguous"); a helper that ran the model's own weight tensors through
# another module made cuDNN re-point them into that module's buffer.

@pytest.fixture
def cudnn_contract(monkeypatch):
    """Every call of nn.RNN/LSTM/GRU, checked as cuDNN would: contiguous input and states.
    Yields the list of (module, weight tensors) seen, for aliasing checks."""
    import torch

    seen = []
    for cls in (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU):
        def checked(self, input, hx=None, _forward=cls.forward):
            states = hx if isinstance(hx, tuple) else (hx,)
            for name, t in [("input", input), *((f"hx[{i}]", s) for i, s in enumerate(states))]:
                if t is not None and not t.is_contiguous():
                    raise RuntimeError(f"rnn: {name} is not contiguous (cuDNN refuses this)")
            self._update_flat_weights()  # what forward is about to run with
            seen.append((self, list(self._flat_weights)))
            return _forward(self, input, hx)
        monkeypatch.setattr(cls, "forward", checked)
    return seen


def _shares_storage(t, others):
    return any(t.untyped_storage().data_ptr() == o.untyped_storage().data_ptr() for o in others)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_torch_path_meets_the_cudnn_contract(cudnn_contract, cell):
    """Training (with a carried state), eval chunks, length scoring, the probe, the equivalence
    helpers: every tensor reaching a recurrent module is contiguous, and no module but the model's
    own ever runs the model's weight tensors."""
    from common.data import eval_set
    from common.loop import fit

    cfg = Config(cell=cell, layers=2, h0="randn", carry_state=True, steps=4, eval_every=2,
                 eval_size=37, test_lengths=(3, 20), test_size=11, probe=True, data="uniform",
                 digits=4, device="cpu")
    trainer = trainer_for("torch", cfg)
    run = fit(cfg, trainer)
    assert run["status"] == "ok" and run["probe"] is not None
    batch = eval_set(cfg)
    trainer.logits(batch)
    trainer.gradients(batch)
    trainer.hidden_states(batch)
    own = list(trainer.model.rnn.parameters())
    modules = {id(m) for m, _ in cudnn_contract}
    assert len(modules) > 1  # the probe's per-layer twins ran too
    for module, weights in cudnn_contract:
        if module is not trainer.model.rnn:
            assert not any(_shares_storage(w, own) for w in weights), "a helper ran the model's weights"


def test_the_contract_check_can_fail(cudnn_contract):
    import torch

    rnn = torch.nn.RNN(3, 4, 2)
    strided_h0 = torch.zeros(4, 2, 5).transpose(0, 1)  # (layers, batch, hidden), not contiguous
    with pytest.raises(RuntimeError, match="not contiguous"):
        rnn(torch.zeros(6, 5, 3), strided_h0)
