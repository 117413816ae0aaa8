"""The command line as a user meets it: subprocesses, exit codes, what lands on disk."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import gpu_available, small_disk


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
    (["--config", ""], "--config='': needs a value"),
    (["--out", ""], "--out='': needs a value"),
    (["--layers", "1000"], "layers=1000: must be in [1, 32]"),
    (["--hidden", "100000"], "hidden=100000"),
    (["--batch_size", "100000000"], "needs about"),
    (["--digits", "10000000"], "needs about"),
    (["--eval_size", "1000000000"], "needs about"),
    (["--test_lengths", "100000000"], "test_lengths up to 100000000"),
    (["--checkpoint_every", "-1"], "--checkpoint_every=-1: must be >= 0"),
    (["--checkpoint_every", "5"], "--checkpoint_every=5: needs --checkpoint_dir"),
    (["--checkpoint_every", "5", "--checkpoint_dir", "/dev/null/ck"], "--checkpoint_dir=/dev/null/ck"),
    (["--checkpoint_every", "5", "--checkpoint_dir", ""], "--checkpoint_dir='': needs a value"),
    (["--checkpoint_every", "5", "--task", "sentiment"], "--checkpoint_every=5: needs --checkpoint_dir"),
    (["--max_len", "5"], "--max_len: a flag of --task sentiment, not of --task adder"),
    (["--task", "sentiment", "--cell", "none"], "cell='none': must be one of rnn, lstm, gru"),
    (["--task", "sentiment", "--config", "missing.json"], "--config=missing.json"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(backend, tmp_path, args, named):
    out = [] if "--out" in args else ["--out", str(tmp_path / "run.json")]
    result = cli(backend, *args, *out, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_seeds_together_only_where_the_task_has_a_seed_group(tmp_path):
    result = cli("jax", "--task", "sentiment", "--vmap_seeds", "2", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == "error: --vmap_seeds=2: jax trains one sentiment seed at a time"
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
    assert set(record["curve"][0]) == {"step", "loss", "train_loss_mean", "exact_acc", "digit_acc", "elapsed_s",
                                       "train_s"}
    timing = record["timing"]
    for key in ("compile_s", "step_s_median", "steps_per_s", "solve_step", "solve_s"):
        assert key in timing
    assert timing["steps_per_s"] > 0 and (timing["compile_s"] is None) == (backend == "torch")
    on_gpu = gpu_available()  # --device auto takes a GPU where there is one
    assert record["env"]["device"] == ("gpu" if on_gpu else "cpu")
    assert record["env"]["threads"] == (min(8, len(os.sched_getaffinity(0))) if on_gpu else 1)
    assert record["env"]["thread_policy"].startswith("auto: " + ("GPU" if on_gpu else "CPU"))
    assert "never reached 100% exact" in result.stdout or "100% exact at step" in result.stdout


def test_a_config_file_that_is_not_utf8(backend, tmp_path):
    (tmp_path / "c.json").write_bytes(b'{"digits": "\xff"}')
    result = cli(backend, "--config", str(tmp_path / "c.json"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --config={tmp_path / 'c.json'}: not UTF-8 text (byte 12: b'\\xff')"


def test_a_record_the_disk_cannot_take_is_told_apart_from_a_failed_run(tmp_path):
    """The worker trains, then cannot write its record: exit status EXIT_NO_RECORD, one line."""
    from common.cli import EXIT_NO_RECORD

    out = tmp_path / "run.json"
    result = subprocess.run(small_disk(512, ["-m", "torch_impl", "--steps", "4", "--eval_every", "2",
                                             "--out", str(out)]), capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_NO_RECORD
    assert result.stderr.strip() == f"error: cannot write {out}: File too large"
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_of_seeds_trained_together_are_refused(tmp_path):
    result = cli("jax", "--vmap_seeds", "2", "--checkpoint_every", "5", "--checkpoint_dir", "ck", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("error: --checkpoint_every=5 with --vmap_seeds=2: checkpoints are of "
                                     "single runs")
    assert list(tmp_path.iterdir()) == []


def test_a_serve_request_may_ask_for_checkpoints(tmp_path):
    """The warm worker takes a request's "checkpoint" object: it runs with it (and leaves no
    checkpoint behind once done), and a bad one is that run's refusal, not the worker's end."""
    small = {"digits": 3, "hidden": 8, "batch_size": 8, "steps": 6, "eval_every": 3, "eval_size": 16,
             "device": "cpu", "threads": 1}
    requests = [{"config": small, "seeds": 1, "out": str(tmp_path / "good.json"), "log": str(tmp_path / "good.log"),
                 "checkpoint": {"every": 2, "dir": str(tmp_path / "ckpt")}},
                {"config": small, "seeds": 1, "out": str(tmp_path / "bad.json"), "log": str(tmp_path / "bad.log"),
                 "checkpoint": {"every": -1, "dir": str(tmp_path / "ckpt")}}]
    worker = subprocess.run([sys.executable, "-m", "torch_impl", "--serve", "--threads", "1", "--device", "cpu"],
                            input="".join(json.dumps(r) + "\n" for r in requests), capture_output=True, text=True,
                            timeout=300)
    assert worker.returncode == 0, worker.stderr
    assert [json.loads(line) for line in worker.stdout.splitlines()] == [{"done": r["out"]} for r in requests]
    good, bad = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("good", "bad"))
    assert good["status"] == "ok" and [p["step"] for p in good["curve"]] == [3, 6]
    assert good["timing"]["checkpoint_s"] > 0 and good["timing"]["resumed_from"] == []
    assert list((tmp_path / "ckpt").iterdir()) == []
    assert bad["status"] == "error" and bad["error"].startswith("refused: --checkpoint_every=-1: must be >= 0")


def test_a_serve_request_for_a_sentiment_run_may_ask_for_checkpoints(tmp_path):
    """compare.run checkpoints long sentiment runs as it does adder runs (CheckpointPolicy)."""
    request = {"task": "sentiment", "config": {"hidden": 8, "batch_size": 16, "steps": 4, "eval_every": 2,
                                               "device": "cpu", "threads": 1},
               "seeds": 1, "out": str(tmp_path / "run.json"), "log": str(tmp_path / "run.log"),
               "checkpoint": {"every": 1, "dir": str(tmp_path / "ckpt")}}
    worker = subprocess.run([sys.executable, "-m", "torch_impl", "--serve", "--threads", "1", "--device", "cpu"],
                            input=json.dumps(request) + "\n", capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "ok" and [p["step"] for p in record["curve"]] == [2, 4]
    assert record["timing"]["checkpoint_s"] > 0 and record["timing"]["resumed_from"] == []
    assert list((tmp_path / "ckpt").iterdir()) == []


@pytest.mark.parametrize("backend, request_", [
    ("jax", {"task": "sentiment", "config": {"steps": 2, "device": "cpu", "threads": 1}}),
    ("torch", {"config": {"digits": 3, "hidden": 8, "steps": 2, "device": "cpu", "threads": 1}}),
])
def test_a_serve_request_for_seeds_its_backend_cannot_train_together_is_refused_seed_by_seed(
        tmp_path, backend, request_):
    """A JAX worker once answered a sentiment request for K seeds with one record, and
    compare.run --vmap_seeds lost the other K - 1 runs unnoticed."""
    out = tmp_path / "runs.json"
    request = {**request_, "config": {**request_["config"], "seed": 3}, "seeds": 2, "out": str(out),
               "log": str(tmp_path / "run.log")}
    worker = subprocess.run([sys.executable, "-m", f"{backend}_impl", "--serve", "--threads", "1", "--device", "cpu"],
                            input=json.dumps(request) + "\n", capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr
    records = json.loads(out.read_text())
    assert isinstance(records, list) and [r["config"]["seed"] for r in records] == [3, 4]
    assert all(r["status"] == "error" and r["error"].startswith("refused: 2 seeds in one request") for r in records)


# --- Every entry point, fuzzed: it runs, or it refuses with one line and writes nothing. ------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from common.config import (ACTIVATIONS, CELLS, CONTROLS, DATASETS, DTYPES, H0_MODES,  # noqa: E402
                           INITS, ORDERS, SCHEDULES)

_BAD_INTS = ["0", "-1", "1e7", "x", "", "1.5", "99999999999999"]
_BAD_WORDS = ["", "nope", "RNN"]


def _ints(*valid, bad=()):
    return list(valid), [*_BAD_INTS, *bad]


def _words(valid):
    return list(valid), _BAD_WORDS


_TOO_BIG = "1000000000"  # sizes the memory estimate must refuse
_SIZES = dict(digits=_ints("2", "3", bad=[_TOO_BIG]), layers=_ints("1", "2", bad=["33"]),
              hidden=_ints("4", "8", bad=[_TOO_BIG]), embed=_ints("2", "3", bad=[_TOO_BIG]),
              batch_size=_ints("2", "5", bad=[_TOO_BIG]), steps=_ints("1", "3"))
# Per entry point: tiny valid sizes first (so a valid command finishes in seconds), then the
# flags the fuzzer draws, each with (valid values, invalid values).
ENTRY_POINTS = {
    "jax_impl": (["--steps", "2", "--eval_every", "1", "--eval_size", "8", "--batch_size", "4", "--digits", "3",
                  "--hidden", "4", "--embed", "2", "--layers", "1", "--device", "cpu", "--out", "run.json"],
                 dict(**_SIZES, eval_every=_ints("1", "2"), eval_size=_ints("4", bad=["10000000000"]),
                      lr=(["0.01", "1"], ["0", "-1", "nan", "inf", "x", ""]), cell=_words(CELLS),
                      activation=_words(ACTIVATIONS), order=_words(ORDERS), data=_words(DATASETS),
                      h0=_words(H0_MODES), schedule=_words(SCHEDULES), init=_words(INITS), dtype=_words(DTYPES),
                      control=_words(CONTROLS), base=_ints("2", "10", bad=["37"]),
                      milestones=(["1", "1,2"], ["2,1", "x", "0"]),
                      test_lengths=(["", "3", "3,5"], ["0", "x", "100000000"]),
                      device=(["cpu"], ["", "tpu"]), threads=_ints("0", "1"),
                      vmap_seeds=_ints("1", "2", bad=["65"]),
                      config=(["good.json"], ["", "missing.json", "bad.json", "latin1.json", "file.txt"]),
                      out=(["run.json"], ["", "nodir/run.json", ".", "file.txt/run.json"]))),
    # --nocalibrate: a dry run would otherwise time each new shape first (compare/estimate.py)
    "compare.run": (["--dry_run", "--nocalibrate", "--set", "device=cpu", "--sweep", "ablation"],
                    dict(sweep=(["layers", "ablation", "all"], ["", "nope"]),
                         backends=(["jax", "torch", "jax,torch"], ["jax,jax", "tf", ""]),
                         seeds=(["1", "3", "auto"], [*_BAD_INTS, "1001", "Auto"]),
                         max_seeds=_ints("3", "12", bad=["2", "1001"]), preset=_words(["quick", "paper"]),
                         jobs=_ints("1", bad=["100000"]), controls=_words(["reorder", "ulp", "none"]),
                         confirm64=_words(["auto", "all", "none"]),
                         set=(["digits=5", "steps=2", "hidden=8"],
                              ["digits=0", "hidden=100000", "layers=33", "colour=red", "seed=1", "lr=x", "",
                               "test_lengths=100000000"]),
                         out=(["o", "deeper/o"], ["", "file.txt", "file.txt/o"]))),
    "compare.probe": (["--steps", "2", "--digits", "3"],
                      dict(backend=_words(["jax", "torch"]), cell=(["rnn", "gru", "lstm"], ["none", "", "x"]),
                           layers=_ints("1", bad=["33"]), digits=_ints("2", "3", bad=[_TOO_BIG]),
                           order=_words(ORDERS), steps=_ints("1", "2"), lr=(["0.01"], ["0", "x"]),
                           seed=_ints("0", "1", bad=["4294967296"]),
                           out=(["p"], ["", "file.txt", "file.txt/p"]))),
    "compare.equivalence": (["--cell", "rnn-tanh", "--layers", "1", "--dtype", "float64"],
                            dict(cell=(["rnn-tanh", "gru"], ["", "transformer", "rnn"]),
                                 layers=(["1", "1,2"], ["0", "33", "x", ""]),
                                 dtype=_words(["float64"]), device=(["cpu"], ["gpu", "", "x"]),
                                 json=(["eq.json"], ["", "nodir/eq.json", "."]))),
    "compare.bench": (["--quick", "--cases", "canonical", "--device", "cpu"],
                      dict(cases=(["canonical"], ["", "nope", "canonical,nope"]),
                           device=(["cpu"], ["gpu", "", "x"]), thread_counts=(["1", "0"], ["", "x", "100000"]),
                           repeats=_ints("1", "2"), vmap_seeds=(["0", "2"], ["1", "65", "", "x"]),
                           json=(["b.json"], ["", "nodir/b.json"]))),
    "compare.gpu_check": (["--out", "g", "--device", "cpu", "--small"],
                          dict(out=(["g"], ["", "file.txt"]), budget_s=(["1", "60"], ["0", "-1", "x", "nan"]),
                               device=(["cpu"], ["gpu", "", "x"]))),
}
ENTRY_POINTS["torch_impl"] = (ENTRY_POINTS["jax_impl"][0],
                              {k: v for k, v in ENTRY_POINTS["jax_impl"][1].items() if k != "vmap_seeds"})
# A command still going after this long has started its work (the bench and the GPU check run
# for minutes): it counts as running and is stopped.
_RUNNING_AFTER_S = 12


def _workspace(path):
    (path / "good.json").write_text('{"digits": 3, "steps": 2}')
    (path / "bad.json").write_text('{"digits": ')
    (path / "latin1.json").write_bytes(b'{"cell": "r\xe9seau"}')
    (path / "file.txt").write_text("a file where a folder is expected")
    return {p for p in path.rglob("*")}


@st.composite
def command_lines(draw, entry):
    """The entry point's tiny valid base, then up to 4 of its flags: all valid, or at least one
    invalid; sometimes a stray argument."""
    base, pools = ENTRY_POINTS[entry]
    names = draw(st.lists(st.sampled_from(sorted(pools)), max_size=4, unique=True))
    broken = set(draw(st.lists(st.sampled_from(names), unique=True))) if names and draw(st.booleans()) else set()
    argv = list(base)
    for name in names:
        valid, invalid = pools[name]
        argv.append(f"--{name}={draw(st.sampled_from(invalid if name in broken else valid))}")
    return argv + draw(st.sampled_from([[], [], [], ["stray"]]))


def _check(entry, argv):
    import signal
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        before = _workspace(cwd)
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "ADDER_JAX_CACHE": ""}
        proc = subprocess.Popen([sys.executable, "-m", entry, *argv], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=_RUNNING_AFTER_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return  # running: neither a traceback nor a refusal in its first seconds
        assert "Traceback" not in err, (argv, err)
        if proc.returncode == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
            assert {p for p in cwd.rglob("*")} == before, (argv, "a refused command wrote files")
        else:
            assert proc.returncode == 0, (argv, proc.returncode, err)


def _fuzz_entry(entry, max_examples):
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=max_examples < 20,
              suppress_health_check=[HealthCheck.too_slow])
    @given(argv=command_lines(entry))
    def one(argv):
        _check(entry, argv)

    one()


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_command_line_runs_or_refuses_in_one_line(entry):
    """Three examples per entry point (derandomized: the same ones every run); `-m slow` draws
    many more at random."""
    _fuzz_entry(entry, 3)


@pytest.mark.slow
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_command_line_runs_or_refuses_in_one_line_many(entry):
    _fuzz_entry(entry, 40)
