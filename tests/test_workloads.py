"""The workload contract (issue 23), over every task of common/tasks.py x every backend: a run
trains and leaves a valid, summarised record; a run killed with SIGKILL resumes bit-identical;
the two backends agree on a batch; every sweep of the task expands in both presets, with its
findings, its report section and its equivalence check. A workload added to the registry is held
to all of it here, without a test of its own, once SMALL says how to make a quick run of it."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from common import tasks
from common.backends import BACKENDS, module
from common.checkpoint import Checkpointing, Checkpoints
from common.cli import command
from compare import report
from compare.equivalence import CHECKS as EQUIVALENCE
from compare.findings import CHECKS as FINDINGS
from compare.sweeps import PRESETS, SWEEPS, expand
from tests.conftest import text_flags, write_text_files

TASKS = list(tasks.TASKS.values())


def _adder(folder):
    # Small and quick per step, with checkpoints every 2 steps: a kill lands while one is written
    # about as often as between them. Carried state and a schedule: all of it must resume.
    return ["--digits", "4", "--hidden", "16", "--batch_size", "32", "--eval_size", "200", "--device", "cpu",
            "--threads", "1", "--h0", "randn", "--carry_state", "--schedule", "multistep", "--milestones", "100,250"]


def _sentiment(folder):
    write_text_files(folder)
    return text_flags(folder)


# How to make a small run of each task on the command line (writing its data into the folder):
# (flags, the steps a run takes to be killed mid-way, its eval interval).
SMALL = {tasks.ADDER.name: (_adder, 300, 50), tasks.SENTIMENT.name: (_sentiment, 200, 50)}
# What a user gives every sweep of the paper preset (its data files, where the task reads files).
PAPER_FILES = {tasks.ADDER.name: {},
               tasks.SENTIMENT.name: {"corpus_path": "aclImdb_v1.tar.gz", "vectors": "glove.6B.zip"}}


@pytest.fixture(params=[t.name for t in TASKS])
def task(request):
    return tasks.TASKS[request.param]


def _argv(backend, flags, *more):
    return [sys.executable, "-m", f"{backend}_impl", *flags, *more]


def _env(folder):
    return {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}


def _scores(record):
    """Everything of a record that does not time."""
    curve = [{k: v for k, v in p.items() if k not in ("elapsed_s", "train_s")} for p in record["curve"]]
    return curve, record["final"], record["lengths"], record["probe"], {k: record[k] for k in tasks.of(record).extra_fields}


def test_every_task_says_how_to_make_a_small_run():
    assert set(SMALL) == set(PAPER_FILES) == set(tasks.TASKS)


def test_the_registry_names_code_that_exists(task):
    assert task.config.TASK == task.name and task.config().task == task.name
    run = command(task)
    assert callable(run.run)
    helps = {name for t in TASKS for name in command(t).HELP}
    assert {f.name for f in dataclasses.fields(task.config)} <= helps  # every field is a flag with its help
    for backend in BACKENDS:
        assert hasattr(module(backend, task.trainer_module), "Trainer")
        if backend in task.config.SEED_GROUPS:
            assert hasattr(module(backend, task.trainer_module), "SeedGroup")


def test_a_killed_run_resumes_and_ends_as_the_uninterrupted_run(task, backend, tmp_path):
    """The command line for real: a run of the task trains and leaves a valid, summarised record;
    the same run, SIGKILLed once a few checkpoints are on disk (mid-write or not) and rerun,
    ends with that record bit for bit, and leaves no checkpoint behind."""
    make, steps, every = SMALL[task.name]
    flags = [*make(tmp_path), "--steps", str(steps), "--eval_every", str(every)]
    plain = subprocess.run(_argv(backend, flags, "--out", str(tmp_path / "plain.json")), capture_output=True,
                           text=True, env=_env(tmp_path), timeout=300)
    assert plain.returncode == 0, plain.stderr
    expected = json.loads((tmp_path / "plain.json").read_text())
    assert (expected["task"], expected["backend"], expected["status"]) == (task.name, backend, "ok")
    assert [p["step"] for p in expected["curve"]] == list(range(every, steps + 1, every))
    assert list(expected["final"]) == list(task.final) and expected["final"]["step"] == steps
    assert all(expected[k] is not None for k in task.extra_fields)
    section, key = task.accuracy_at
    assert task.accuracy(expected) == expected[section][key] is not None
    assert f"{backend} " in plain.stdout and "steps/s (median)" in plain.stdout  # the summary

    ckpt_dir = tmp_path / "ckpt"
    checkpoints = Checkpoints(Checkpointing(2, str(ckpt_dir)), backend,
                              task.config.from_dict(expected["config"]).to_json())
    argv = _argv(backend, flags, "--checkpoint_every", "2", "--checkpoint_dir", str(ckpt_dir), "--out",
                 str(tmp_path / "run.json"))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    deadline = time.monotonic() + 120
    while max(checkpoints.files(), default=0) < every + 10:  # killed past the first eval, before the end
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run.json").exists()
    left = checkpoints.files()
    assert left and max(left) < steps

    rerun = subprocess.run(argv, capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    [resumed] = record["timing"]["resumed_from"]
    assert resumed in left and resumed > every
    assert "resumed from the checkpoint of step" in rerun.stdout
    assert record["status"] == "ok" and _scores(record) == _scores(expected)
    assert list(ckpt_dir.iterdir()) == []  # the finished run took its checkpoints and any torn temporary


def test_the_backends_agree_on_a_batch_and_in_training(task):
    """The task's equivalence check (compare/equivalence/<task>.py) on one variant, in float64;
    tests/test_equivalence_*.py run the others, and break a backend to see each check fail."""
    result = EQUIVALENCE[task.name].check("lstm", 1, "float64")
    assert result.violations() == []


def test_every_sweep_of_the_task_expands_in_both_presets_with_its_findings(task):
    sweeps = [name for name, sweep in SWEEPS.items() if sweep.task == task.name]
    assert sweeps and task.name in report.SECTIONS and task.name in EQUIVALENCE
    for name in sweeps:
        assert name in FINDINGS[task.name]
        for preset in PRESETS:
            runs = expand(SWEEPS[name], preset, list(BACKENDS), 1, PAPER_FILES[task.name] if preset == "paper" else {})
            assert runs and all(type(r.config) is task.config for r in runs)
            assert {r.backend for r in runs} == set(BACKENDS)
