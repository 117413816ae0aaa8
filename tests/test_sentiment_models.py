"""jax_impl.sentiment and torch_impl.sentiment: the same weights and batches give the same
logits, loss, gradients and training, whatever the padding; and the checks can fail."""

import numpy as np
import pytest

from common.sentiment.config import TextConfig
from common.sentiment.dataset import TextBatch, padded_width
from compare.equivalence.core import BOUNDS, VARIANTS, relative
from jax_impl import sentiment as jax_sentiment
from torch_impl import sentiment as torch_sentiment

VOCAB, DIM = 60, 16


def _embedding() -> np.ndarray:
    matrix = np.random.default_rng(0).standard_normal((VOCAB, DIM)).astype(np.float32)
    matrix[0] = 0  # <pad>
    return matrix


def _batch(seed: int = 1, n: int = 8, longest: int = 30, extra_pad: int = 0) -> TextBatch:
    """Mixed lengths 1..longest, in no particular order, padded past the ladder width if asked."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, longest + 1, n).astype(np.int32)
    ids = np.zeros((n, padded_width(int(lengths.max())) + extra_pad), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(2, VOCAB, length)
    return TextBatch(ids, lengths, rng.integers(0, 2, n).astype(np.int32))


def _pair(cfg):
    return jax_sentiment.Trainer(cfg, _embedding()), torch_sentiment.Trainer(cfg, _embedding())


def _config(variant: str, layers: int, dtype: str, **changes) -> TextConfig:
    return TextConfig(**VARIANTS[variant], layers=layers, hidden=12, dtype=dtype, batch_size=8,
                      eval_batch=8, device="cpu", threads=1, train_embedding=True, **changes)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_backends_agree_on_logits_loss_and_every_gradient(variant, layers, dtype):
    bounds = BOUNDS[dtype]
    jax_trainer, torch_trainer = _pair(_config(variant, layers, dtype))
    batch = _batch()
    assert np.abs(jax_trainer.logits(batch) - torch_trainer.logits(batch)).max() <= bounds.logits
    (jax_loss, jax_grads), (torch_loss, torch_grads) = jax_trainer.gradients(batch), torch_trainer.gradients(batch)
    assert abs(jax_loss - torch_loss) <= bounds.grads * abs(torch_loss)
    assert jax_grads.keys() == torch_grads.keys() and "embedding.weight" in torch_grads
    for name, reference in torch_grads.items():
        assert relative(jax_grads[name], reference) <= bounds.grads, name


@pytest.mark.parametrize("backend, pack", [(jax_sentiment, True), (torch_sentiment, True), (torch_sentiment, False)],
                         ids=["jax", "torch-packed", "torch-padded"])
def test_padding_and_batch_mates_change_no_logit(backend, pack):
    trainer = backend.Trainer(_config("lstm", 2, "float32", pack=pack), _embedding())
    batch = _batch()
    reference = trainer.logits(batch)
    padded = _batch(extra_pad=40)  # the same texts with 40 more pad columns
    np.testing.assert_allclose(trainer.logits(padded), reference, rtol=0, atol=1e-6)
    alone = [trainer.logits(TextBatch(batch.ids[i:i + 1], batch.lengths[i:i + 1], batch.labels[i:i + 1]))[0]
             for i in range(len(batch))]
    np.testing.assert_allclose(alone, reference, rtol=0, atol=1e-6)


def test_backends_train_alike_and_keep_a_frozen_embedding():
    cfg = TextConfig(cell="gru", hidden=12, batch_size=8, lr=1e-2, device="cpu", threads=1)
    jax_trainer, torch_trainer = _pair(cfg)
    for k in range(20):
        batch = _batch(seed=k)
        jax_trainer.step(batch)
        torch_trainer.step(batch)
    assert abs(jax_trainer.loss() - torch_trainer.loss()) <= BOUNDS["float32"].trajectory * torch_trainer.loss()
    jax_params, torch_params = jax_trainer.params(), torch_trainer.params()
    for name, reference in torch_params.items():
        assert relative(jax_params[name], reference) <= BOUNDS["float32"].params, name
    for params in (jax_params, torch_params):
        np.testing.assert_array_equal(params["embedding.weight"], _embedding())  # frozen by default
    assert relative(torch_params["rnn.weight_hh_l0"], _pair(cfg)[1].params()["rnn.weight_hh_l0"]) > 1e-3


# The checks must be able to fail.

def test_taking_the_last_padded_state_is_caught(monkeypatch):
    """JAX scanning every pad position (no mask) ends on the last *padded* state: caught."""
    jax_trainer, torch_trainer = _pair(_config("gru", 1, "float32"))
    monkeypatch.setattr(jax_sentiment, "real_tokens", lambda width, lengths: np.ones((width, len(lengths)), bool))
    batch = _batch()
    assert np.abs(jax_trainer.logits(batch) - torch_trainer.logits(batch)).max() > 100 * BOUNDS["float32"].logits


def test_an_embedding_off_by_one_row_is_caught():
    jax_trainer, torch_trainer = _pair(_config("rnn-tanh", 1, "float32"))
    batch = _batch()
    shifted = TextBatch(np.where(batch.ids > 0, batch.ids - 1, 0), batch.lengths, batch.labels)
    assert np.abs(jax_trainer.logits(shifted) - torch_trainer.logits(batch)).max() > 100 * BOUNDS["float32"].logits


def test_rounding_controls_change_a_run_only_at_rounding_level():
    """ulp nudges the initial weights by one ulp; reorder trains on the same rows in another order:
    both stay within float32 rounding of the plain run over a few steps, and neither is it."""
    from common.sentiment.loop import training_batch
    from compare.equivalence.sentiment import synthetic_data

    data = synthetic_data()
    cfg = TextConfig(hidden=12, batch_size=16, device="cpu", threads=1, train_embedding=True)
    plain = torch_sentiment.Trainer(cfg, data.embedding)
    runs = {kind: torch_sentiment.Trainer(cfg.replace(control=kind), data.embedding) for kind in ("ulp", "reorder")}
    reordered = training_batch(cfg.replace(control="reorder"), data, 1)
    assert sorted(reordered.lengths.tolist()) == sorted(training_batch(cfg, data, 1).lengths.tolist())
    for k in range(1, 6):
        plain.step(training_batch(cfg, data, k))
        for kind, run in runs.items():
            run.step(training_batch(run.cfg, data, k))
    for kind, run in runs.items():
        gap = max(relative(run.params()[n], plain.params()[n]) for n in plain.params())
        assert 0 < gap < 1e-5, (kind, gap)


@pytest.mark.parametrize("variant", ["rnn-tanh", "lstm", "gru"])
def test_torch_padded_reads_what_packed_does(variant):
    """The padded batch (the default) gives the packed sequence's (--pack) logits and gradients, to rounding."""
    packed, padded = (torch_sentiment.Trainer(_config(variant, 2, "float64", pack=p), _embedding()) for p in (True, False))
    batch = _batch()
    np.testing.assert_allclose(padded.logits(batch), packed.logits(batch), rtol=0, atol=1e-12)
    (_, a), (_, b) = packed.gradients(batch), padded.gradients(batch)
    assert all(relative(b[name], a[name]) < 1e-12 for name in a)


def test_seeds_of_a_config_share_their_compiled_programs_and_nothing_else():
    """A warm worker compiles a sentiment config once for all its seeds (jax_impl.core.PROGRAMS);
    the reused programs must train a seed exactly as freshly compiled ones do."""
    from common.sentiment.loop import fit, widths
    from compare.equivalence.sentiment import synthetic_data

    data = synthetic_data()
    cfg = TextConfig(hidden=8, batch_size=16, eval_batch=32, steps=10, eval_every=5, device="cpu", threads=1,
                     seed=1)

    def scores(record):
        return [(p["step"], p["loss"], p["train_loss_mean"], p["test_acc"]) for p in record["curve"]]

    from jax_impl.core import PROGRAMS

    PROGRAMS.clear()
    fresh = jax_sentiment.Trainer(cfg, data.embedding)
    fresh_scores = scores(fit(cfg, fresh, data))
    assert fresh.compile_cache != "memory"
    reused = jax_sentiment.Trainer(cfg, data.embedding)
    assert scores(fit(cfg, reused, data)) == fresh_scores and reused.compile_cache == "memory"
    another_seed = jax_sentiment.Trainer(cfg.replace(seed=0), data.embedding)
    another_seed.compile(*widths(cfg, data))
    assert another_seed.compile_cache == "memory"
    other = jax_sentiment.Trainer(cfg.replace(hidden=12), data.embedding)  # another config compiles its own
    other.compile(*widths(cfg, data))
    assert other.compile_cache != "memory"
