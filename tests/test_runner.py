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


def test_units_run_longest_first_where_an_order_is_given(tmp_path):
    from rich.console import Console

    from compare.runner import Ledger

    runs = expand(SWEEPS["layers"], "quick", ["jax", "torch"], 2, {})
    as_swept = Ledger(runs, tmp_path, 2, Console(quiet=True)).units
    assert [u[0] for u in as_swept] == runs
    ledger = Ledger(runs, tmp_path, 2, Console(quiet=True), order=lambda unit: unit[0].config.layers)
    layers = [u[0].config.layers for u in ledger.units]
    assert layers == sorted(layers, reverse=True) and layers[0] == 10
    # Equal costs keep the sweep's order (a config's seeds and backends stay together).
    assert [u[0] for u in ledger.units[:4]] == [r for r in runs if r.config.layers == 10]
