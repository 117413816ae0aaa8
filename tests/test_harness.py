"""compare.run end to end on tiny sweeps: outputs, resume after a kill, bad input."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from compare.run import next_stage, parse_override
from compare.sequential import Design
from compare.stats import DIFFERENT, NOISE, agreements
from compare.sweeps import SWEEPS, expand, follow_ups
from common.config import ConfigError
from tests.conftest import gpu_available, small_disk

TINY = ["--seeds", "1", "--set", "steps=10", "--set", "eval_every=5", "--set", "eval_size=50"]


def harness(*args, **kw):
    # --nocalibrate: these sweeps are too small to be worth timing first (tests/test_estimate.py
    # calibrates); with it, a test's time is its runs'.
    return subprocess.run([sys.executable, "-m", "compare.run", "--nocalibrate", *args], capture_output=True,
                          text=True, timeout=600, **kw)


def records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_tiny_sweep_writes_every_output(tmp_path):
    out = tmp_path / "abl"
    result = harness("--sweep", "ablation", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    recs = records(out)
    assert sorted((r["backend"], r["label"]) for r in recs) == [
        ("jax", "cell=none"), ("jax", "cell=rnn"), ("torch", "cell=none"), ("torch", "cell=rnn")]
    assert all(r["status"] == "ok" and r["config"]["steps"] == 10 for r in recs)
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert {(r["config"], r["backend"]) for r in rows} == {(r["label"], r["backend"]) for r in recs}
    assert all(r["verdict"] == "same trajectory" for r in rows)  # shared init + same batches, 10 steps
    report = (out / "report.md").read_text()
    assert "## `ablation`" in report and "The study's findings vs ours" in report
    for png in ("ablation_curves.png", "ablation_timing.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "scratch").exists()


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "h0"
    args = ["--sweep", "h0", *TINY, "--backends", "torch", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "compare.run", "--nocalibrate", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (results.exists() and results.read_text().count("\n") >= 2):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = results.read_text().count("\n")
    assert 2 <= finished < 5, "the sweep should have been killed halfway"
    with results.open("a") as f:  # as if the kill had cut a line short
        f.write('{"key": "h0-torch-')

    result = harness(*args)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {finished} of 5 runs" in result.stdout
    keys = [r["key"] for r in records(out)]
    assert len(keys) == 5 and len(set(keys)) == 5


@pytest.mark.parametrize("args, message", [
    (["--sweep", "nope"], "--sweep=nope: unknown sweep"),
    (["--sweep", "layers", "--backends", "jax,tf"], "--backends=jax,tf"),
    (["--sweep", "layers", "--set", "digits"], "--set digits: expected FIELD=VALUE"),
    (["--sweep", "layers", "--set", "colour=red"], "--set colour=red"),
    (["--sweep", "layers", "--set", "digits=0"], "digits=0: must be >= 1"),
    (["--sweep", "layers", "--set", "digits=many"], "--set digits=many: 'many' is not a valid digits"),
    (["--sweep", "layers", "--set", "layers=3"], "sweep layers varies layers itself"),
    (["--sweep", "layers", "--seeds", "0"], "--seeds=0"),
    (["--sweep", "layers", "--seeds", "some"], "--seeds=some: must be in [1, 1000] or auto"),
    (["--sweep", "layers", "--max_seeds", "6"], "--max_seeds=6: only with --seeds auto"),
    (["--sweep", "layers", "--seeds", "auto", "--max_seeds", "2"], "--max_seeds=2: must be in [3, 1000]"),
    (["--sweep", "layers", "--preset", "huge"], "--preset=huge"),
    ([], "--sweep is required"),
    (["--sweep", "layers", "--checkpoint_every", "-1"], "--checkpoint_every=-1: must be >= 0"),
    (["--sweep", "layers", "--checkpoint_dir", "/dev/null"], "--checkpoint_dir=/dev/null"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    result = harness(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_long_runs_checkpoint_and_the_rest_do_not(tmp_path):
    from compare.runner import CheckpointPolicy
    from compare.sweeps import Run
    from common.config import Config
    from common.sentiment.config import TextConfig

    def unit(cfg, seeds=1):
        return [Run("s", "jax", cfg.replace(seed=k), ()) for k in range(seeds)]

    auto, every = CheckpointPolicy(None, tmp_path), CheckpointPolicy(40, tmp_path)
    long, short = Config(steps=3000), Config(steps=999)
    assert auto.for_unit(unit(long)) == {"every": 500, "dir": str(tmp_path)}
    assert auto.for_unit(unit(short)) is None
    assert every.for_unit(unit(short)) == {"every": 40, "dir": str(tmp_path)}
    assert every.for_unit(unit(Config(steps=40))) is None  # no step before the last would save
    assert CheckpointPolicy(0, tmp_path).for_unit(unit(long)) is None
    assert every.for_unit(unit(long, seeds=2)) is None  # a vmapped group of seeds
    assert every.for_unit(unit(TextConfig(steps=3000))) == {"every": 40, "dir": str(tmp_path)}  # either task


def test_a_sweep_killed_mid_run_resumes_that_run_from_its_checkpoint(tmp_path):
    """The driver and its workers killed (SIGKILL to the whole group) while a long run trains:
    the rerun resumes that run from its latest checkpoint, and its curve is the one an
    uninterrupted sweep gets."""
    args = ["--sweep", "ablation", "--seeds", "1", "--backends", "jax", "--jobs", "1", "--set", "steps=1000",
            "--set", "eval_every=50", "--set", "eval_size=50", "--checkpoint_every", "50"]
    plain = tmp_path / "plain"
    assert harness(*args, "--checkpoint_every", "0", "--out", str(plain)).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "compare.run", "--nocalibrate", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints, deadline = out / "checkpoints", time.time() + 300
    while time.time() < deadline and not any(checkpoints.glob("*-000000[5-9]?0.ckpt.npz")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(checkpoints.glob("*.ckpt.npz")), "killed before its first checkpoint"

    result = harness(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    resumed = {r["key"]: r for r in records(out)}
    uninterrupted = {r["key"]: r for r in records(plain)}
    assert resumed.keys() == uninterrupted.keys()
    assert any(r["timing"]["resumed_from"] for r in resumed.values())
    def strip(r):
        return [{k: v for k, v in p.items() if k not in ("elapsed_s", "train_s")} for p in r["curve"]]
    assert all(strip(resumed[k]) == strip(uninterrupted[k]) for k in resumed)
    assert not list(checkpoints.glob("*.ckpt.npz"))  # finished runs delete theirs


def test_overrides_are_typed():
    assert parse_override("digits=50") == ("digits", 50)
    assert parse_override("lr=0.02") == ("lr", 0.02)
    assert parse_override("carry_state=true") == ("carry_state", True)
    assert parse_override("milestones=10,20") == ("milestones", (10, 20))
    with pytest.raises(ConfigError, match="carry_state=maybe"):
        parse_override("carry_state=maybe")


def test_every_sweep_expands_to_valid_configs_in_both_presets():
    imdb = {"corpus_path": "aclImdb_v1.tar.gz", "vectors": "glove.6B.zip"}  # paper text sweeps read files
    for sweep in SWEEPS.values():
        for preset in ("quick", "paper"):
            files = imdb if (sweep.task, preset) == ("sentiment", "paper") else {}
            runs = expand(sweep, preset, ["jax", "torch"], 2, files)
            assert len({r.key for r in runs}) == len(runs) > 0
            assert {r.config.seed for r in runs} == {0, 1} and {r.config.task for r in runs} == {sweep.task}
    with pytest.raises(ConfigError, match="corpus_path='': corpus=imdb needs the path of its files"):
        expand(SWEEPS["text-cells"], "paper", ["jax"], 1, {})
    with pytest.raises(ConfigError, match="--set digits=…: not a field of sweep text-cells's sentiment runs"):
        expand(SWEEPS["text-cells"], "quick", ["jax"], 1, {"digits": 5})


def test_a_tiny_sentiment_sweep_end_to_end_and_resumed(tmp_path):
    from tests.conftest import write_text_files

    write_text_files(tmp_path)
    out = tmp_path / "text"
    sets = ["corpus=csv", f"corpus_path={tmp_path / 'texts.csv'}", f"vectors={tmp_path / 'vectors.txt'}",
            "csv_positive=pos", "csv_negative=neg", "hidden=8", "batch_size=16", "eval_batch=40",
            "steps=40", "eval_every=20", "lr=0.01"]
    args = ["--sweep", "text-layers", "--seeds", "2", "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = harness(*args, env=env)
    assert result.returncode == 0, result.stderr
    recs = [r for r in records(out) if r.get("role", "main") == "main"]
    assert sorted((r["backend"], r["label"], r["config"]["seed"]) for r in recs) == [
        (b, f"layers={n}", k) for b in ("jax", "torch") for n in (1, 2) for k in (0, 1)]
    assert all(r["task"] == "sentiment" and r["status"] == "ok" and r["best"]["test_acc"] > 0.8 for r in recs)
    report = (out / "report.md").read_text()
    assert "## `text-layers`" in report and "The lab's findings vs ours" in report and "| layers=2 | torch |" in report
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert {r["measures"] for r in rows} == {"best test accuracy / steps to within 1 point of the best"}
    assert all(r["verdict"] for r in rows)
    again = harness(*args, env=env)
    assert again.returncode == 0 and "resuming: 8 of 8 runs" in again.stdout


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_a_gpu_sweep_without_a_gpu_fails_before_any_run(tmp_path):
    result = harness("--sweep", "layers", "--set", "device=gpu", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: device='gpu': jax sees no GPU"]
    assert not (tmp_path / "out").exists()


def test_every_run_of_a_sweep_gets_the_one_resolved_device(tmp_path):
    out = tmp_path / "abl"
    result = harness("--sweep", "ablation", *TINY, "--backends", "torch", "--out", str(out))
    assert result.returncode == 0, result.stderr
    expected = "gpu" if gpu_available() else "cpu"
    assert {r["config"]["device"] for r in records(out)} == {expected}
    assert {r["env"]["device"] for r in records(out)} == {expected}
    assert "- device auto: " in (out / "report.md").read_text()


# A sitecustomize.py on PYTHONPATH runs in every worker the harness starts: it breaks PyTorch's
# Adam (eps 1e-1 instead of 1e-8) as the worker imports torch_impl.core, without touching the code.
_BREAK_TORCH_ADAM = '''
import importlib.abc, importlib.util, sys

class _Break(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch_impl.core":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            make = module.make_optimizer
            def broken(*args, **kwargs):
                opt, sched = make(*args, **kwargs)
                for group in opt.param_groups:
                    group["eps"] = 1e-1
                return opt, sched
            module.make_optimizer = broken
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Break())
'''


def verdicts(out):
    return {r["config"]: r["verdict"] for r in csv.DictReader((out / "summary.csv").open())}


def test_rounding_chaos_is_not_called_a_difference(tmp_path):
    # The parting is certain by construction, not found on one CPU: at lr 0.5 the tanh RNN is
    # chaotic even in float64 (its float64 curves part by 140 % within 300 steps), so the rounding
    # difference between any two float32 kernels grows to O(1), and JAX's and PyTorch's kernels
    # differ at rounding level on every CPU. Measured on AVX-512 and with the kernels capped at
    # AVX2: both configs part by step 20 (gaps 0.61-0.94 of the starting loss), each one's reorder
    # control parts by 1.9-2.2: rounding noise, never DIFFERENT, and no float64 run needed. (The
    # quick preset's relu run, used before, parts on some CPUs and not on others.)
    out = tmp_path / "carry"
    result = harness("--sweep", "carry", "--seeds", "1", "--set", "lr=0.5", "--set", "steps=100",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert verdicts(out) == {"carry_state=False": NOISE, "carry_state=True": NOISE}
    follow = {(r["backend"], r["role"], r["config"]["control"], r["label"]) for r in records(out) if r["role"] != "main"}
    assert follow == {(b, "control", "reorder", label) for b in ("jax", "torch")
                      for label in ("carry_state=False", "carry_state=True")}
    assert (out / "carry_gap.png").read_bytes()[:4] == b"\x89PNG"


def test_a_broken_backend_is_called_different(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(_BREAK_TORCH_ADAM)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    out = tmp_path / "act"
    result = harness("--sweep", "activation", "--seeds", "1", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert verdicts(out)["activation=tanh"] == "DIFFERENT"
    # Resumed, nothing runs again, and the verdict still reads the first invocation's follow-ups.
    again = harness("--sweep", "activation", "--seeds", "1", "--out", str(out), env=env)
    assert again.returncode == 0 and "(all resumed: none ran)" in (out / "report.md").read_text()
    assert verdicts(out)["activation=tanh"] == "DIFFERENT"


def test_follow_ups_read_their_controls_before_asking_for_float64():
    # layers=4 parts at seed 0 (a 20 % gap). First its controls are asked for; once they have
    # run and explain the gap, nothing more; where they do not, float64 of that seed.
    runs = [r for r in expand(SWEEPS["layers"], "quick", ["jax", "torch"], 1, {}) if r.label == "layers=4"]

    def record(run, last_loss):
        return {"key": run.key, "sweep": run.sweep, "label": run.label, "point": dict(run.point),
                "role": run.role, "backend": run.backend, "config": run.config.to_dict(), "status": "ok",
                "diverged_step": None, "final": {"exact_acc": 1.0}, "timing": {"solve_step": 100},
                "curve": [{"step": 20, "loss": 2.0, "exact_acc": 0.0}, {"step": 40, "loss": last_loss,
                                                                        "exact_acc": 1.0}]}

    done = {r.key: record(r, 1.0 if r.backend == "jax" else 1.4) for r in runs}
    first = follow_ups(runs, done, "reorder", "auto")
    assert {(r.backend, r.role, r.config.control) for r in first} == {("jax", "control", "reorder"),
                                                                      ("torch", "control", "reorder")}
    explained = {**done, **{r.key: record(r, 1.3 if r.backend == "jax" else 1.4) for r in first}}
    assert {r.role for r in follow_ups(runs, explained, "reorder", "auto")} == {"control"}  # nothing new
    unexplained = {**done, **{r.key: record(r, 1.001 if r.backend == "jax" else 1.4) for r in first}}
    again = [r for r in follow_ups(runs, unexplained, "reorder", "auto") if r.key not in unexplained]
    assert {(r.backend, r.role, r.config.dtype) for r in again} == {("jax", "confirm64", "float64"),
                                                                    ("torch", "confirm64", "float64")}

    def new(records, control="reorder", confirm64="auto"):
        return [r for r in follow_ups(runs, records, control, confirm64) if r.key not in records]

    # float64 agrees (to 1e-9): settled, no float64 control.
    agree64 = {**unexplained, **{r.key: record(r, 1.0 if r.backend == "jax" else 1.0 + 1e-9) for r in again}}
    assert new(agree64) == []
    # float64 parts (15 %): each backend's reorder control again, in float64, once each.
    apart64 = {**unexplained, **{r.key: record(r, 1.0 if r.backend == "jax" else 1.3) for r in again}}
    third = new(apart64)
    assert sorted((r.backend, r.role, r.config.dtype, r.config.control, r.config.seed) for r in third) == [
        ("jax", "control64", "float64", "reorder", 0), ("torch", "control64", "float64", "reorder", 0)]
    assert new(apart64, "none") == [] and new(apart64, confirm64="none") == []
    # Once they ran, nothing more, whether they explain the float64 gap or not.
    for jax_loss, verdict in ((1.1, NOISE), (1.0 + 1e-9, DIFFERENT)):  # 5 % explains 15 %; 5e-10 does not
        ran = {**apart64, **{r.key: record(r, jax_loss if r.backend == "jax" else 1.3) for r in third}}
        assert new(ran) == [] and [a.verdict for a in agreements(list(ran.values()))] == [verdict]


def test_follow_ups_of_a_sentiment_sweep_ask_for_float64_controls_too():
    # text-length cell=rnn filler=10 parted: its float64 controls are TextConfigs in float64.
    runs = [r for r in expand(SWEEPS["text-length"], "quick", ["jax", "torch"], 2, {})
            if r.label == "cell=rnn filler=10"]

    def record(run, loss):
        return {"key": run.key, "sweep": run.sweep, "label": run.label, "point": dict(run.point), "task": "sentiment",
                "role": run.role, "backend": run.backend, "config": run.config.to_dict(), "status": "ok",
                "diverged_step": None, "best": {"test_acc": 0.7, "step_within_1_point": 150},
                "curve": [{"step": 150, "loss": 0.7, "test_acc": 0.5}, {"step": 600, "loss": loss, "test_acc": 0.7}]}

    def losses(rs, jax_loss, torch_loss):  # seed 0 stays together; seed 1 parts
        return {r.key: record(r, torch_loss if r.backend == "torch" and r.config.seed == 1 else jax_loss)
                for r in rs}

    done = losses(runs, 0.40, 0.53)                   # 19 % of the starting loss
    controls = follow_ups(runs, done, "ulp", "auto")
    done |= losses(controls, 0.40 + 0.003, 0.53)      # 0.43 %
    float64 = [r for r in follow_ups(runs, done, "ulp", "auto") if r.key not in done]
    done |= losses(float64, 0.40, 0.4357)             # 5.1 %
    control64 = [r for r in follow_ups(runs, done, "ulp", "auto") if r.key not in done]
    assert {(r.backend, r.role, r.config.dtype, r.config.control, r.config.seed, type(r.config).__name__)
            for r in control64} == {("jax", "control64", "float64", "ulp", 1, "TextConfig"),
                                    ("torch", "control64", "float64", "ulp", 1, "TextConfig")}


def _mark_failed(out, key):
    """Rewrite one record as the error a killed worker leaves (as an operator would find it)."""
    lines = (out / "results.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    for r in recs:
        if r["key"] == key:
            r.update(status="error", error="worker killed by SIGKILL: no output")
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_errors_are_retried_and_the_latest_record_counts(tmp_path):
    out = tmp_path / "abl"
    args = ["--sweep", "ablation", *TINY, "--backends", "torch", "--out", str(out)]
    assert harness(*args).returncode == 0
    failed = records(out)[0]["key"]
    _mark_failed(out, failed)

    kept = harness(*args, "--noretry_errors")
    assert kept.returncode == 1 and "1 run(s) failed" in kept.stdout
    assert len(records(out)) == 2

    retried = harness(*args)
    assert retried.returncode == 0, retried.stderr
    assert "retrying 1 that failed before" in retried.stdout
    assert "retried 1 run(s) that had failed before" in retried.stdout
    recs = records(out)
    assert [r["key"] for r in recs].count(failed) == 2  # append-only: the old line stays
    assert recs[-1]["key"] == failed and recs[-1]["status"] == "ok"
    assert "1 run(s) that had failed were retried" in (out / "report.md").read_text()


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path):
    from compare.runner import lock_out

    out = tmp_path / "abl"
    out.mkdir()
    held = lock_out(out)  # as a running sweep holds it
    result = harness("--sweep", "ablation", *TINY, "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: --out={out}: another sweep (pid {os.getpid()}) is writing "
                                     f"there; wait for it or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
    held.close()  # the kernel drops the lock with the holder, whatever kills it
    assert lock_out(out)


def test_ctrl_c_is_one_line_and_ends_the_workers(tmp_path):
    out = tmp_path / "h0"
    proc = subprocess.Popen([sys.executable, "-m", "compare.run", "--nocalibrate", "--sweep", "h0", *TINY,
                             "--set", "steps=400", "--backends", "torch", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    logs = out / "logs"
    deadline = time.time() + 120
    while time.time() < deadline and not (logs.exists() and any(logs.iterdir())):
        time.sleep(0.05)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == "interrupted; rerun the same command to resume"
    alive = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout
    assert alive == "", "a worker outlived the sweep"


def test_a_full_disk_is_one_line_and_leaves_every_file_whole(tmp_path):
    """RLIMIT_FSIZE makes every write past 4 KB fail as a full disk does (EFBIG), in the harness
    and its workers alike."""
    out = tmp_path / "abl"
    result = subprocess.run(small_disk(4096, ["-m", "compare.run", "--nocalibrate", "--sweep", "ablation", *TINY,
                                              "--set", "device=cpu", "--out", str(out)]),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and last.endswith(": File too large"), result.stderr
    assert str(out) in last
    for r in records(out):  # every line whole; a run whose worker could not write its record says so
        assert r["status"] == "ok" or "could not write its run record" in r["error"]
    leftovers = [p.name for p in out.rglob("*") if p.is_file() and p.parent.name != "logs"  # streams: may be empty
                 and (p.stat().st_size == 0 or ".tmp" in p.name)]
    assert leftovers == [] or leftovers == [".lock"]


def test_dry_run_lists_the_runs_and_writes_nothing(tmp_path):
    result = harness("--sweep", "ablation", *TINY, "--set", "device=cpu", "--dry_run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 already done, 4 to run" in result.stdout
    assert "torch cell=none seed 0" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_without_calibrating_estimates_from_the_cache_alone_and_says_what_it_lacks(tmp_path):
    cache, cwd = tmp_path / "cache", tmp_path / "cwd"
    cwd.mkdir()
    result = harness("--sweep", "ablation", *TINY, "--set", "device=cpu", "--dry_run",  # --nocalibrate
                     cwd=cwd, env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert re.search(r"estimate: 0 s wall for 0 runs at \d job\(s\)", text)
    assert "4 run(s) of 4 uncalibrated shape(s): not counted" in text
    assert list(cwd.iterdir()) == [] and not (cache / "rnn-adder").exists()  # nor the estimate's cache


def test_a_dry_run_of_seeds_auto_says_its_stages_and_the_worst_case():
    result = harness("--sweep", "ablation", "--seeds", "auto", "--set", "device=cpu", "--dry_run")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert ("in stages of 3, 6, 12 seeds: 12 runs at the first stage, at most 48 = configs x 2 backends x "
            "12 seeds") in text
    assert "0 already done, 12 to run" in text and "seed 3" not in text


def test_the_next_stage_adds_seeds_only_to_configs_still_undecided():
    from tests.test_sequential import staged_records

    design = Design.up_to(12)
    first = expand(SWEEPS["ablation"], "quick", ["jax", "torch"], 3, {})
    done = staged_records()
    added = next_stage(first, done, design, 1, "reorder", expand(SWEEPS["ablation"], "quick", ["jax", "torch"], 6, {}))
    assert sorted((r.label, r.backend, r.config.seed) for r in added) == \
        [("cell=none", b, s) for b in ("jax", "torch") for s in (3, 4, 5)]
    decided = {k: r for k, r in done.items() if r["label"] == "cell=rnn"}
    assert next_stage(first, decided, design, 1, "reorder", first) == []


@pytest.mark.parametrize("args, message", [
    (["--backends", "jax,jax"], "--backends=jax,jax: jax is named twice"),
    (["--jobs", "1000000000"], "--jobs=1000000000: must be in [0, "),
    (["--seeds", "100000"], "--seeds=100000: must be in [1, 1000]"),
    (["--out", ""], "--out='': needs a value"),
    (["--set", "hidden=100000"], "needs about"),
    (["--set", "layers=1000"], "layers=1000: must be in [1, 32]"),
    (["extra"], "unexpected argument 'extra'"),
])
def test_runaway_and_empty_input_is_refused(tmp_path, args, message):
    result = harness("--sweep", "ablation", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


# Faults for the crash tests, injected like _BREAK_TORCH_ADAM: a segfault, an exception, and an
# allocation past a memory cap, each in one chosen run of the torch workers.
_FAULTS = '''
import importlib.abc, importlib.util, sys

class _Faults(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch_impl.adder":
            return None
        sys.meta_path.remove(self)
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))  # the cap
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            step = module.Trainer.step
            def faulty(self, batch):
                fault = (self.cfg.cell, self.cfg.seed)
                if fault == ("rnn", 1):
                    import ctypes
                    ctypes.string_at(0)  # segfault
                if fault == ("none", 0):
                    raise RuntimeError("injected")
                if fault == ("none", 2):
                    import numpy
                    numpy.ones(16 * 2**30, numpy.uint8)  # past the cap
                return step(self, batch)
            module.Trainer.step = faulty
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Faults())
'''


def test_a_crash_a_raise_and_an_exhausted_memory_each_cost_one_run(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(_FAULTS)
    out = tmp_path / "abl"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.getcwd()}"}
    # One slot, so the run after the crash is that slot's (with two, which slot takes (rnn, 2) was
    # a race between the crash and the other slot's run: it failed once under the AVX2 caps).
    result = harness("--sweep", "ablation", "--seeds", "3", "--set", "steps=10", "--set", "eval_every=5",
                     "--set", "eval_size=50", "--backends", "torch", "--jobs", "1", "--out", str(out), env=env)
    assert result.returncode == 1
    by_run = {(r["config"]["cell"], r["config"]["seed"]): r for r in records(out)}
    assert len(by_run) == 6
    assert by_run[("rnn", 1)]["error"].startswith("worker killed by SIGSEGV")
    assert by_run[("none", 0)]["error"] == "RuntimeError: injected"
    assert by_run[("none", 2)]["error"].startswith("MemoryError: Unable to allocate 16.0 GiB")
    fine = [r for k, r in by_run.items() if k not in {("rnn", 1), ("none", 0), ("none", 2)}]
    assert [r["status"] for r in fine] == ["ok"] * 3
    # The worker that raised went on; the one that crashed was replaced by a fresh one.
    assert by_run[("none", 1)]["warm"] and not by_run[("rnn", 2)]["warm"]


def test_a_warm_worker_leaks_nothing_from_one_run_into_the_next(tmp_path, backend):
    """X, then Y (float64, another cell, lr, schedule, h0, carried state), then X again in one
    worker: X's second curve is X's first, bit for bit, and both are a fresh process's. X draws
    its weights from the framework's own generator (init=native), so a generator that is not
    reseeded per run fails this."""
    from compare.runner import Worker
    from compare.sweeps import Run
    from common.config import Config

    x = Config(steps=12, eval_every=4, eval_size=64, batch_size=16, digits=5, device="cpu", init="native")
    y = x.replace(dtype="float64", cell="gru", lr=0.05, schedule="multistep", milestones=(6,),
                  h0="randn", init="shared", carry_state=True, seed=3)
    runs = [Run("t", backend, cfg, (("k", k),)) for k, cfg in enumerate([x, y, x])]
    worker = Worker(backend, 1, "cpu", [0], tmp_path / "worker.log")
    curves = []
    try:
        for run in runs:
            worker.submit([run], tmp_path, tmp_path)
            while not worker.finished():
                time.sleep(0.01)
            [record] = worker.records()
            assert record["status"] == "ok", record["error"]
            curves.append(record["curve"])
    finally:
        worker.close()
    fresh = subprocess.run([sys.executable, "-m", f"{backend}_impl", "--config", "/dev/stdin",
                            "--out", str(tmp_path / "fresh.json")], input=x.to_json(), text=True,
                           capture_output=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    losses = lambda curve: [(p["step"], p["loss"], p["exact_acc"]) for p in curve]  # noqa: E731
    assert losses(curves[2]) == losses(curves[0])
    assert losses(json.loads((tmp_path / "fresh.json").read_text())["curve"]) == losses(curves[0])
    assert losses(curves[1]) != losses(curves[0])


def test_auto_jobs_fill_the_cores_on_a_cpu_and_stay_at_one_on_a_gpu(monkeypatch):
    from common import memory
    from compare.run import auto_jobs

    cpu = expand(SWEEPS["layers"], "quick", ["jax", "torch"], 2, {"device": "cpu"})
    assert auto_jobs(cpu, 8, 1) == 8
    assert auto_jobs(expand(SWEEPS["layers"], "quick", ["jax"], 1, {"device": "cpu", "threads": 3}), 8, 1) == 2
    assert auto_jobs(expand(SWEEPS["layers"], "quick", ["jax"], 1, {"device": "gpu"}), 8, 1) == 1
    # Memory for three of the largest run side by side, not four: three jobs.
    need = max(memory.estimate(r.config).total() for r in cpu) + memory.FRAMEWORK_BYTES
    monkeypatch.setattr(memory, "available_host_bytes", lambda: int(3.5 * need))
    assert auto_jobs(cpu, 8, 1) == 3


def test_the_paper_text_sweeps_read_imdb_and_glove_files(tmp_path):
    """The path a user with the real files takes, on files in their real layouts: an aclImdb_v1.tar.gz
    and a glove.6B.zip holding glove.6B.100d.txt (tiny ones)."""
    import zipfile

    from tests.test_sentiment_corpora import imdb_archive

    reviews = {(split, label): {f"{i}_{7 if label == 'pos' else 2}.txt":
                                (b"a great lovely film " if label == "pos" else b"a bad dull film ") * (i % 3 + 1)
                                for i in range(12)}
               for split in ("train", "test") for label in ("pos", "neg")}
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(imdb_archive(reviews))
    words = {"a": 0.0, "great": 1.0, "lovely": 1.0, "film": 0.0, "bad": -1.0, "dull": -1.0}
    lines = "".join(f"{w} {v} " + " ".join(["0.01"] * 99) + "\n" for w, v in words.items())
    with zipfile.ZipFile(tmp_path / "glove.6B.zip", "w") as z:
        z.writestr("glove.6B.100d.txt", lines)
    args = ["--sweep", "text-cells", "--preset", "paper", "--seeds", "1", "--out", str(tmp_path / "out"),
            "--set", f"corpus_path={tmp_path / 'aclImdb_v1.tar.gz'}", "--set", f"vectors={tmp_path / 'glove.6B.zip'}"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    dry = harness(*args, "--dry_run", env=env)
    assert dry.returncode == 0 and "6 runs" in dry.stdout, dry.stderr
    small = ["--set", "steps=4", "--set", "eval_every=2", "--set", "hidden=8", "--set", "batch_size=8"]
    result = harness(*args, *small, "--backends", "torch", env=env)
    assert result.returncode == 0, result.stderr
    recs = records(tmp_path / "out")
    assert len(recs) == 3 and all(r["status"] == "ok" and r["config"]["corpus"] == "imdb" for r in recs)
    assert all(r["config"]["vectors_member"] == "glove.6B.100d.txt" for r in recs)
    assert "the offline default" not in (tmp_path / "out" / "report.md").read_text()


def test_a_text_sweep_without_the_text_extra_is_one_line_before_any_run(monkeypatch):
    import importlib.util

    from compare.run import check_data_packages

    runs = expand(SWEEPS["text-layers"], "quick", ["jax"], 1, {})
    check_data_packages(runs)  # installed here: nothing to say
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wordllama" else real(name, *a))
    with pytest.raises(ConfigError, match=r"^sweep text-layers reads its data from the package wordllama, which "
                                          r"is missing: pip install -e '\.\[text\]'$"):
        check_data_packages(runs)
    check_data_packages(expand(SWEEPS["layers"], "quick", ["jax"], 1, {}))  # the adder needs none of it
