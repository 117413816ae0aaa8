"""`python -m <backend> --task sentiment`: a run on each backend from a CSV and vectors on disk,
the two agreeing; bad input is one line, exit 2, nothing written."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from compare.equivalence.core import BOUNDS

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]
NEUTRAL = ["the", "film", "plot", "was", "and", "acting", "a", "it"]


def _files(tmp_path):
    """A CSV of 400 short texts whose label follows their sentiment words, and 8-d vectors in
    which those words point two ways (a few words left without a vector)."""
    rng = np.random.default_rng(0)
    rows = ["text,label"]
    for i in range(400):
        label = i % 2
        words = list(rng.choice(NEUTRAL, rng.integers(2, 12))) + list(rng.choice(POSITIVE if label else NEGATIVE, 2))
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{'pos' if label else 'neg'}")
    (tmp_path / "texts.csv").write_text("\n".join(rows) + "\n")
    vectors = []
    for word in POSITIVE + NEGATIVE + NEUTRAL[:-2]:
        direction = 1.0 if word in POSITIVE else -1.0 if word in NEGATIVE else 0.0
        values = np.concatenate([[direction], 0.1 * rng.standard_normal(7)])
        vectors.append(word + " " + " ".join(f"{v:.6f}" for v in values))
    (tmp_path / "vectors.txt").write_text("\n".join(vectors) + "\n")


def _run(tmp_path, backend, *flags):
    return subprocess.run(_argv(tmp_path, backend, *flags), capture_output=True, text=True, env=_env(tmp_path),
                          timeout=300)


def _env(tmp_path):
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _argv(tmp_path, backend, *flags):
    args = ["--task", "sentiment", "--corpus", "csv", f"--corpus_path={tmp_path / 'texts.csv'}",
            "--csv_positive", "pos", "--csv_negative", "neg", f"--vectors={tmp_path / 'vectors.txt'}",
            "--hidden", "16", "--batch_size", "16", "--eval_batch", "40", "--steps", "60", "--eval_every", "20",
            "--lr", "0.01", "--threads", "1", "--device", "cpu", *flags]
    return [sys.executable, "-m", f"{backend}_impl", *args]


def test_both_backends_learn_the_same_run_from_files(tmp_path):
    _files(tmp_path)
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
    (["--digits", "5"], "error: --digits: a flag of the adder, not of --task sentiment"),
    (["--csv_text", "body"], "no column 'body' in the header (columns: text, label)"),
    (["--csv_positive", "good"], "label 'pos' is neither positive ['good'] nor negative ['neg']"),
    (["--batch_size", "1000"], "batch_size=1000: must be between 1 and the 320 training texts"),
    (["--hidden", "300000"], "hidden=300000, batch_size=16, eval_batch=40, vocabulary 20 x 8 needs about"),
])
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, flags, message):
    _files(tmp_path)
    out = tmp_path / "record.json"
    result = _run(tmp_path, "torch", f"--out={out}", *flags)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def _scores(record):
    """Everything of a record that does not time."""
    return ([(p["step"], p["loss"], p["train_loss_mean"], p["test_acc"], p["test_loss"]) for p in record["curve"]],
            record["best"], record["lengths"])


def test_a_run_killed_with_sigkill_resumes_and_ends_as_if_never_killed(backend, tmp_path):
    """As the adder's (tests/test_cli.py): SIGKILL once a few checkpoints are on disk (mid-write
    or not), rerun the same command, and the record is that of a run never killed."""
    import signal
    import time

    from common.checkpoint import Checkpointing, Checkpoints
    from common.sentiment.config import TextConfig

    _files(tmp_path)
    ckpt_dir = tmp_path / "ckpt"
    longer = ["--steps", "200", "--eval_every", "50"]
    plain = _run(tmp_path, backend, *longer, f"--out={tmp_path / 'plain.json'}")
    assert plain.returncode == 0, plain.stderr
    expected = json.loads((tmp_path / "plain.json").read_text())
    checkpoints = Checkpoints(Checkpointing(2, str(ckpt_dir)), backend,
                              TextConfig.from_dict(expected["config"]).to_json())

    argv = _argv(tmp_path, backend, *longer, "--checkpoint_every=2", f"--checkpoint_dir={ckpt_dir}",
                 f"--out={tmp_path / 'run.json'}")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    deadline = time.monotonic() + 120
    while max(checkpoints.files(), default=0) < 60:  # killed past the first eval, before the end
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run.json").exists()
    left = checkpoints.files()
    assert left and max(left) < 200

    rerun = subprocess.run(argv, capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    [resumed] = record["timing"]["resumed_from"]
    assert resumed in left and resumed >= 60
    assert "resumed from the checkpoint of step" in rerun.stdout
    assert record["status"] == "ok" and _scores(record) == _scores(expected) and len(record["curve"]) == 4
    assert list(ckpt_dir.iterdir()) == []  # the finished run took its checkpoints and any torn temporary


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
