"""common/sentiment/loop.py: the sentiment run's record (curve, best, accuracy by text length), its mean
training loss per eval interval, and its checkpoints."""

import numpy as np

from common.sentiment.config import TextConfig
from common.sentiment.loop import by_length, fit, training_batch, widths
from compare.equivalence.sentiment import synthetic_data
from torch_impl.sentiment import Trainer
from tests.conftest import Stop, assert_bitwise, stop_after


def test_by_length_splits_the_texts_into_quarters_shortest_first():
    lengths = np.array([5, 1, 8, 3, 2, 7, 4, 6])
    right = lengths > 4  # long texts right, short ones wrong
    quarters = by_length(right, lengths)
    assert [q["tokens"] for q in quarters] == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert [q["test_acc"] for q in quarters] == [0.0, 0.0, 1.0, 1.0] and sum(q["n"] for q in quarters) == 8


def test_a_run_records_its_curve_best_and_lengths():
    data = synthetic_data()
    cfg = TextConfig(hidden=8, batch_size=16, eval_batch=32, steps=20, eval_every=10, device="cpu", threads=1)
    record = fit(cfg, Trainer(cfg, data.embedding), data)
    assert record["status"] == "ok" and [p["step"] for p in record["curve"]] == [10, 20]
    best = max(record["curve"], key=lambda p: p["test_acc"])
    assert record["best"]["test_acc"] == best["test_acc"] and record["best"]["step"] == best["step"]
    assert len(record["lengths"]) == 4 and sum(q["n"] for q in record["lengths"]) == len(data.test)
    assert record["timing"]["steps_per_s"] > 0 and record["timing"]["compile_s"] is None


def test_widths_cover_every_batch_the_run_can_meet():
    data = synthetic_data()
    cfg = TextConfig(batch_size=16, eval_batch=32)
    train, test = widths(cfg, data)
    assert {training_batch(cfg, data, k).ids.shape[1] for k in range(1, 200)} <= set(train)
    assert max(train) == data.train.ids.shape[1] and test


# --- The interval's mean loss, and checkpoints: as the adder's (tests/test_train.py). ---------

import pytest  # noqa: E402

from common.backends import module  # noqa: E402
from common.checkpoint import Checkpointing  # noqa: E402

# Small, on the CPU (bitwise needs deterministic kernels), and crossing an LR milestone after the stop.
CKPT_CFG = TextConfig(cell="lstm", hidden=8, batch_size=16, eval_batch=32, steps=30, eval_every=10, lr=1e-2,
                      schedule="multistep", milestones=(24,), device="cpu", threads=1)


def trainer_for(backend, cfg, data):
    return module(backend, "sentiment").Trainer(cfg, data.embedding)


def scores(outcome):
    """Everything of the record that does not time: the curve, best, lengths."""
    return ([(p["step"], p["loss"], p["train_loss_mean"], p["test_acc"], p["test_loss"]) for p in outcome["curve"]],
            outcome["best"], outcome["lengths"])


@pytest.fixture(scope="module")
def uninterrupted():
    """Per backend: the outcome and final weights of CKPT_CFG without checkpoints."""
    cache, data = {}, synthetic_data()

    def get(backend):
        if backend not in cache:
            trainer = trainer_for(backend, CKPT_CFG, data)
            cache[backend] = fit(CKPT_CFG, trainer, data), trainer.params()
        return cache[backend]
    return get


def interrupted_then_rerun(backend, checkpointing, stop=25):
    """CKPT_CFG until a Stop after step `stop`, then rerun to the end: (outcome, trainer)."""
    data = synthetic_data()
    with pytest.raises(Stop):
        fit(CKPT_CFG, trainer_for(backend, CKPT_CFG, data), data, on_step=stop_after(stop), checkpointing=checkpointing)
    trainer = trainer_for(backend, CKPT_CFG, data)
    return fit(CKPT_CFG, trainer, data, checkpointing=checkpointing), trainer


@pytest.mark.parametrize("every, resumed", [(10, 20), (7, 21)], ids=["at-evals", "between-evals"])
def test_a_resumed_run_is_the_uninterrupted_run_bit_for_bit(backend, tmp_path, uninterrupted, every, resumed):
    full, full_params = uninterrupted(backend)
    outcome, trainer = interrupted_then_rerun(backend, Checkpointing(every, str(tmp_path)))
    assert outcome["timing"]["resumed_from"] == [resumed] and outcome["status"] == "ok"
    assert scores(outcome) == scores(full) and len(full["curve"]) == 3
    assert_bitwise(trainer.params(), full_params)
    assert list(tmp_path.iterdir()) == []  # a finished run deletes its checkpoints


def _losing(monkeypatch, backend, what):
    """Have every restore of `backend`'s sentiment trainer lose the arrays `what` names."""
    train = module(backend, "sentiment").Trainer
    restore = train.restore
    monkeypatch.setattr(train, "restore", lambda self, state: restore(
        self, {k: np.zeros_like(v) if what(k) else v for k, v in state.items()}))


def test_the_bitwise_check_can_fail(backend, tmp_path, uninterrupted, monkeypatch):
    """A resume that loses Adam's moments is caught, in the curve and in the weights."""
    full, full_params = uninterrupted(backend)
    _losing(monkeypatch, backend, lambda name: any(m in name for m in (".mu[", ".nu[", "/exp_avg")))
    outcome, trainer = interrupted_then_rerun(backend, Checkpointing(10, str(tmp_path)))
    assert scores(outcome)[0][:2] == scores(full)[0][:2] and scores(outcome)[0][2] != scores(full)[0][2]
    assert any(not np.array_equal(trainer.params()[k], v) for k, v in full_params.items())


def test_a_resume_that_loses_the_interval_sum_is_caught(backend, tmp_path, uninterrupted, monkeypatch):
    """Resumed between evals (step 21), the mean of steps 21-30 needs the saved sum of step 21."""
    full, full_params = uninterrupted(backend)
    _losing(monkeypatch, backend, lambda name: "loss_sum" in name)
    outcome, trainer = interrupted_then_rerun(backend, Checkpointing(7, str(tmp_path)))
    [resumed] = outcome["timing"]["resumed_from"]
    assert resumed == 21
    (*_, last), (*_, full_last) = scores(outcome)[0], scores(full)[0]
    assert last[1] == full_last[1] and last[2] != full_last[2]  # the same training, another mean
    assert_bitwise(trainer.params(), full_params)


def test_the_interval_mean_is_the_mean_of_the_steps_losses(backend):
    data = synthetic_data()
    trainer = trainer_for(backend, CKPT_CFG, data)
    losses = {}
    outcome = fit(CKPT_CFG, trainer, data, on_step=lambda step: losses.__setitem__(step, trainer.loss()))
    previous = 0
    for point in outcome["curve"]:
        interval = [losses[s] for s in range(previous + 1, point["step"] + 1)]
        assert point["train_loss_mean"] == pytest.approx(np.mean(interval), rel=1e-6)
        assert point["loss"] == losses[point["step"]] and point["train_loss_mean"] != point["loss"]
        previous = point["step"]

