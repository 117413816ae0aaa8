"""`python -m <backend> --task sentiment`: a run on each backend from a CSV and vectors on disk,
the two agreeing; bad input is one line, exit 2, nothing written."""

import json
import os
import subprocess
import sys

import pytest

from compare.equivalence.core import BOUNDS
from tests.conftest import text_flags, write_text_files

def _run(tmp_path, backend, *flags):
    return subprocess.run(_argv(tmp_path, backend, *flags), capture_output=True, text=True, env=_env(tmp_path),
                          timeout=300)


def _env(tmp_path):
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _argv(tmp_path, backend, *flags):
    return [sys.executable, "-m", f"{backend}_impl", *text_flags(tmp_path), *flags]


def test_both_backends_learn_the_same_run_fromwrite_text_files(tmp_path):
    write_text_files(tmp_path)
    records = {}
    for backend in ("jax", "torch"):
        out = tmp_path / f"{backend}.json"
        result = _run(tmp_path, backend, f"--out={out}")
        assert result.returncode == 0, result.stderr
        records[backend] = json.loads(out.read_text())
        assert "best test accuracy" in result.stdout
    jax_record, torch_record = records["jax"], records["torch"]
    for record in records.values():
        assert record["task"] == "sentiment" and record["status"] == "ok"
        assert [p["step"] for p in record["curve"]] == [20, 40, 60]
        assert record["best"]["test_acc"] >= 0.9  # the words decide the label: it learns them
    for j, t in zip(jax_record["curve"], torch_record["curve"]):  # same seed, shared init, same batches
        assert abs(j["loss"] - t["loss"]) <= BOUNDS["float32"].trajectory * t["loss"]
        assert abs(j["test_acc"] - t["test_acc"]) <= 1 / 80  # at most one of the 80 test texts apart


@pytest.mark.parametrize("flags, message", [
    (["--max_len", "0"], "error: max_len=0: must be >= 1"),
    (["--digits", "5"], "error: --digits: a flag of --task adder, not of --task sentiment"),
    (["--csv_text", "body"], "no column 'body' in the header (columns: text, label)"),
    (["--csv_positive", "good"], "label 'pos' is neither positive ['good'] nor negative ['neg']"),
    (["--batch_size", "1000"], "batch_size=1000: must be between 1 and the 320 training texts"),
    (["--hidden", "300000"], "hidden=300000, batch_size=16, eval_batch=40, vocabulary 20 x 8 needs about"),
])
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, flags, message):
    write_text_files(tmp_path)
    out = tmp_path / "record.json"
    result = _run(tmp_path, "torch", f"--out={out}", *flags)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_the_text_sweeps_fit_and_a_runaway_size_does_not():
    from common.sentiment.config import TextConfig
    from common.sentiment.run import memory_need
    from compare.equivalence.sentiment import synthetic_data
    from compare.sweeps import SWEEPS, expand

    data = synthetic_data()
    largest = max(memory_need(r.config, data).total() for s in SWEEPS.values() if s.task == "sentiment"
                  for r in expand(s, "quick", ["jax"], 1, {}))
    assert largest < 2**30
    base = memory_need(TextConfig(), data).total()
    assert memory_need(TextConfig(hidden=1024), data).total() > 4 * base / 2
    assert memory_need(TextConfig(hidden=300_000), data).total() > 100 * 2**30
