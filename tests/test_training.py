"""common/training.py alone, on a framework-free trainer and workload: the eval schedule, the
interval mean, the stop rule, divergence and checkpoints, whatever the workload."""

import dataclasses
import json

import numpy as np
import pytest

from common.checkpoint import Checkpointing
from common.training import Alone, fit_group
from tests.conftest import Stop, stop_after


@dataclasses.dataclass(frozen=True)
class Cfg:
    steps: int = 25
    eval_every: int = 10

    def to_json(self):
        return json.dumps(dataclasses.asdict(self))


class Counter:
    """A trainer whose loss at step k is k; it diverges at `bad_from` if set."""

    backend, compile_cache = "fake", None

    def __init__(self, bad_from=None):
        self.bad_from, self.k, self.total, self.count = bad_from, 0, 0.0, 0

    def step(self, batch):
        self.k += 1
        assert batch == self.k  # the workload's batch k, at step k
        self.total, self.count = self.total + self.k, self.count + 1

    def loss(self):
        return float(self.k)

    def loss_mean(self):
        mean, self.total, self.count = self.total / self.count, 0.0, 0
        return mean

    def nonfinite_step(self):
        return self.bad_from if self.bad_from and self.k >= self.bad_from else None

    def training_state(self):
        return {"k": np.array(self.k), "total": np.array(self.total), "count": np.array(self.count)}

    def restore(self, state):
        self.k, self.total, self.count = int(state["k"]), float(state["total"]), int(state["count"])


class Task:
    """A workload whose eval point is the step's share of the run, stopping at `stop_at`."""

    def __init__(self, cfg, stop_at=None):
        self.cfg, self.stop_at, self.notes = cfg, stop_at, {}

    def batch(self, k):
        return k

    def evaluate(self, trainer):
        self.notes["evals"] = self.notes.get("evals", 0) + 1
        return {"share": trainer.k / self.cfg.steps}

    def stops(self, point):
        return self.stop_at is not None and point["step"] >= self.stop_at

    def finish(self, trainer, status, curve):
        return {"ended": (status, trainer.k), "evals": self.notes.get("evals", 0)}

    def timing(self, curve):
        return {"points": len(curve)}


def train(cfg=Cfg(), trainer=None, task=None, **kwargs):
    trainer = trainer or Counter()
    return fit_group([task or Task(cfg)], Alone(trainer), lambda: None, **kwargs)[0]


def test_evals_every_eval_every_steps_and_at_the_last_with_the_intervals_mean():
    outcome = train()
    assert [(p["step"], p["loss"], p["train_loss_mean"], p["share"]) for p in outcome["curve"]] == [
        (10, 10.0, 5.5, 0.4), (20, 20.0, 15.5, 0.8), (25, 25.0, 23.0, 1.0)]
    assert outcome["ended"] == ("ok", 25) and outcome["evals"] == 3 and outcome["timing"]["points"] == 3
    assert list(outcome)[:3] == ["status", "diverged_step", "curve"] and "timing" in outcome


def test_a_run_stops_when_its_workload_says_so():
    outcome = train(task=Task(Cfg(), stop_at=20))
    assert [p["step"] for p in outcome["curve"]] == [10, 20] and outcome["ended"] == ("ok", 20)


def test_a_diverged_run_ends_at_the_eval_that_sees_it_without_that_point():
    outcome = train(trainer=Counter(bad_from=13))
    assert outcome["status"] == "diverged" and outcome["diverged_step"] == 13
    assert [p["step"] for p in outcome["curve"]] == [10] and outcome["ended"] == ("diverged", 20)


@pytest.mark.parametrize("every", [7, 10])
def test_a_resumed_run_is_the_uninterrupted_one_and_saves_do_not_cut_an_interval(tmp_path, every):
    full = train()
    checkpointing = Checkpointing(every, str(tmp_path))
    with pytest.raises(Stop):
        train(on_step=stop_after(22), checkpointing=checkpointing)
    task = Task(Cfg())
    resumed = train(task=task, checkpointing=checkpointing)
    assert resumed["timing"]["resumed_from"] == [21 if every == 7 else 20]
    assert [{k: v for k, v in p.items() if k not in ("elapsed_s", "train_s")} for p in resumed["curve"]] == [
        {k: v for k, v in p.items() if k not in ("elapsed_s", "train_s")} for p in full["curve"]]
    assert resumed["evals"] == 3  # the workload's notes came back with the curve
    assert list(tmp_path.iterdir()) == []
