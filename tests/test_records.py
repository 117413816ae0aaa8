"""The run record (common/records.py): one schema whatever the run's status, old records read as adder runs."""

import json

import numpy as np

from common.config import Config
from common.loop import fit
from common.records import error_record, read, run_record
from common.tasks import DEFAULT as ADDER
from compare.runner import load_results

CFG = Config(digits=3, steps=4, eval_every=2, eval_size=8, batch_size=4, test_lengths=(5,))


class _Guesser:
    """A trainer on no framework that learns nothing: enough for the loop to produce a real outcome."""

    compile_cache = None

    def compile(self, batch):
        return None

    def step(self, batch):
        pass

    def loss(self):
        return 1.0

    def loss_mean(self):
        return 1.0

    def nonfinite_step(self):
        return None

    def score(self, chunk):
        return np.zeros(len(chunk.a), bool), np.ones(len(chunk.a), int)


def ok_record():
    return run_record("torch", CFG, fit(CFG, _Guesser()), "2024-01-01T00:00:00+00:00", {"device": "cpu"})


def test_an_error_record_has_the_fields_of_a_run_that_trained():
    ok, error = ok_record(), error_record("torch", CFG, "worker killed by SIGKILL: no output")
    assert list(ok) == list(error)
    assert ok["task"] == error["task"] == ADDER
    assert ok["status"] == "ok" and ok["error"] is None and ok["timing"]["steps_per_s"] > 0
    assert error["status"] == "error" and error["error"] == "worker killed by SIGKILL: no output"
    assert error["curve"] == [] and error["lengths"] == [] and error["timing"] is None
    assert error["probe"] is None and error["started_at"] is None and error["env"] is None
    assert set(error["final"]) == set(ok["final"]) and set(error["final"].values()) == {None}


def test_final_is_the_last_eval_point():
    ok = ok_record()
    assert [p["step"] for p in ok["curve"]] == [2, 4]
    assert ok["final"] == {"step": 4, "loss": 1.0, "exact_acc": 0.0, "digit_acc": 1 / 4}  # 1 of 4 positions
    assert [p["digits"] for p in ok["lengths"]] == [5]
    assert ok["config"] == CFG.to_dict() and ok["backend"] == "torch"


def test_an_error_after_the_backend_started_keeps_when_and_where():
    error = error_record("jax", CFG, "RuntimeError: boom", "2024-01-01T00:00:00+00:00", {"device": "gpu"})
    assert error["started_at"] == "2024-01-01T00:00:00+00:00" and error["env"] == {"device": "gpu"}


def test_a_record_says_its_task_and_keeps_it_when_read_back():
    from common.sentiment.config import TextConfig

    record = error_record("jax", TextConfig(), "refused: too big")
    assert read(json.loads(json.dumps(record))) == record
    assert read(record)["task"] == "sentiment" and "best" in record and set(record["final"]) == {
        "step", "loss", "test_acc", "test_loss"}
    assert error_record("jax", CFG, "boom")["task"] == ADDER


def test_a_record_from_before_tasks_reads_as_an_adder_run():
    old = {k: v for k, v in ok_record().items() if k != "task"}
    assert read(old) == {**old, "task": ADDER}
    assert "task" not in old  # the record read is left as it was


def test_a_resumed_results_file_mixing_old_and_new_records_reads_as_one_schema(tmp_path):
    path = tmp_path / "results.jsonl"
    old = {k: v for k, v in ok_record().items() if k != "task"}
    new = error_record("jax", CFG, "worker exit 1: no output")
    path.write_text(json.dumps({**old, "key": "a"}) + "\n" + json.dumps({**new, "key": "b"}) + "\n")
    loaded = load_results(path)
    assert {k: r["task"] for k, r in loaded.items()} == {"a": ADDER, "b": ADDER}
    assert set(loaded["a"]) == set(loaded["b"])
