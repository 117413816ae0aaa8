"""The command line as a user meets it: subprocesses, exit codes, what lands on disk."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import gpu_available


def cli(backend, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", f"{backend}_impl", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args, named", [
    (["--digits", "0"], "digits=0"),
    (["--digits=-2"], "digits=-2"),
    (["--base", "1", "--data", "uniform"], "base=1"),
    (["--base", "37", "--data", "uniform"], "base=37"),
    (["--cell", "transformer"], "--cell=transformer"),
    (["--layers", "0"], "layers=0"),
    (["--lr", "0"], "lr=0.0"),
    (["--lr", "nan"], "lr=nan"),
    (["--lr", "fast"], "fast"),
    (["--batch_size", "0"], "batch_size=0"),
    (["--cell", "lstm", "--activation", "relu"], "activation='relu'"),
    (["--out", "no/such/dir/run.json"], "--out=no/such/dir/run.json"),
    (["--milestones", "10,x", "--schedule", "multistep"], "milestones=10,x"),
    (["--config", "missing.json"], "--config=missing.json"),
    (["--nosuchflag"], "nosuchflag"),
    (["stray"], "'stray'"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(backend, tmp_path, args, named):
    out = [] if "--out" in args else ["--out", str(tmp_path / "run.json")]
    result = cli(backend, *args, *out, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_directory(backend, tmp_path):
    result = cli(backend, "--out", str(tmp_path))
    assert result.returncode == 2 and "is a directory" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_config_file(backend, tmp_path):
    (tmp_path / "c.json").write_text('{"digits": 0}')
    result = cli(backend, "--config", str(tmp_path / "c.json"))
    assert result.returncode == 2 and result.stderr.strip() == "error: digits=0: must be >= 1"


def test_a_run_writes_its_record(backend, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"cell": "gru", "steps": 999}))
    out = tmp_path / "run.json"
    result = cli(backend, "--config", str(tmp_path / "c.json"), "--steps", "20", "--eval_every",
                 "10", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["backend"] == backend and record["status"] == "ok"
    assert record["config"]["cell"] == "gru" and record["config"]["steps"] == 20  # flag beats file
    assert [p["step"] for p in record["curve"]] == [10, 20]
    assert set(record["curve"][0]) == {"step", "loss", "exact_acc", "digit_acc", "elapsed_s", "train_s"}
    timing = record["timing"]
    for key in ("compile_s", "step_s_median", "steps_per_s", "solve_step", "solve_s"):
        assert key in timing
    assert timing["steps_per_s"] > 0 and (timing["compile_s"] is None) == (backend == "torch")
    on_gpu = gpu_available()  # --device auto takes a GPU where there is one
    assert record["env"]["device"] == ("gpu" if on_gpu else "cpu")
    assert record["env"]["threads"] == (min(8, len(os.sched_getaffinity(0))) if on_gpu else 1)
    assert record["env"]["thread_policy"].startswith("auto: " + ("GPU" if on_gpu else "CPU"))
    assert "never reached 100% exact" in result.stdout or "100% exact at step" in result.stdout
