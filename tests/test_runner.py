"""compare.runner: what a worker answers becomes one record per run, whatever it answered."""

import json
import time

from common.records import error_record
from compare.runner import Worker
from compare.sweeps import SWEEPS, expand


def test_a_unit_answered_with_fewer_records_than_runs_is_recorded_as_errors(tmp_path):
    unit = [r for r in expand(SWEEPS["layers"], "quick", ["jax"], 2, {}) if r.label == "layers=1"]
    worker = object.__new__(Worker)  # its answer, without a process behind it
    worker.unit, worker.reply, worker.served, worker.submitted = unit, {"done": "x"}, 0, time.perf_counter()
    worker.record_path = tmp_path / "record.json"
    worker.record_path.write_text(json.dumps(error_record("jax", unit[0].config, "one record")))
    records = worker.records()
    assert len(records) == 2 and [r["config"]["seed"] for r in records] == [0, 1]
    assert all(r["status"] == "error" and r["error"] == "worker wrote 1 run record(s) for a unit of 2 runs"
               for r in records)
