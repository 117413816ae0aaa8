"""compare.estimate: the cost model's arithmetic, the schedule it simulates, its per-machine cache,
and (one small real sweep) the estimate against the wall time measured."""

import json
import os
import re
import subprocess
import sys

import pytest

from compare import estimate
from compare.estimate import Book, Figures, forecast, order, shape
from compare.sweeps import SWEEPS, Run, expand


def layers_runs(seeds=3, backends=("jax",)):
    return expand(SWEEPS["layers"], "quick", list(backends), seeds, {})


def book_of(tmp_path, runs, cost, **figures):
    """A book whose shapes cost `cost(run)` seconds of fixed time each, and nothing else."""
    book = Book("cpu", folder=tmp_path)
    for r in runs:
        fields = {"fixed_s": cost(r), "compile_s": 0.0, "first_step_s": 0.0, "step_s": 0.0, "eval_s": 0.0, **figures}
        book.shapes[shape(r)] = Figures(**fields)
    return book


def test_a_run_costs_fixed_compile_first_step_steps_and_evals():
    f = Figures(fixed_s=1.0, compile_s=2.0, first_step_s=0.5, step_s=0.01, eval_s=0.1)
    cfg = layers_runs(1)[0].config.replace(steps=300, eval_every=20)
    assert abs(f.run_s(cfg) - (1 + 2 + 0.5 + 299 * 0.01 + 15 * 0.1)) < 1e-9
    assert abs(f.run_s(cfg, compiled=True) - (f.run_s(cfg) - 2)) < 1e-9  # its worker holds the programs
    assert abs(f.run_s(cfg.replace(steps=13, eval_every=6)) - (3.5 + 12 * 0.01 + 3 * 0.1)) < 1e-9  # 6, 12, 13


def test_a_shape_is_what_changes_programs_or_step_cost():
    run = layers_runs(1)[0]
    same = [run.config.replace(seed=5), run.config.replace(lr=0.5), run.config.replace(steps=7, eval_every=7),
            run.config.replace(schedule="multistep", milestones=(3,)), run.config.replace(stop_when_solved=True)]
    other = [run.config.replace(layers=3), run.config.replace(digits=20), run.config.replace(dtype="float64"),
             run.config.replace(control="reorder"), run.config.replace(threads=2)]
    assert all(shape(Run("x", "jax", c, ())) == shape(run) for c in same)
    assert all(shape(Run("x", "jax", c, ())) != shape(run) for c in other)
    assert shape(Run("x", "torch", run.config, ())) != shape(run)


def test_the_forecast_lays_units_out_longest_first_on_the_slot_that_frees_first(tmp_path):
    runs = layers_runs(3)  # layers 1, 2, 3, 4, 10: 1..5 s each, 3 seeds
    rank = {1: 1, 2: 2, 3: 3, 4: 4, 10: 5}
    book = book_of(tmp_path, runs, lambda r: rank[r.config.layers])
    # Longest first, lowest free slot on a tie: 5 5 | 5 4 | 4 4 | 3 3 | 3 2 | 2 2 | 1 1 | 1 -> 23 and 22.
    plan = forecast(runs, book, jobs=2)
    assert plan.wall_s == 23 and sum(plan.by_sweep.values()) == 45 and plan.uncalibrated == []
    assert plan.by_config.most_common(1) == [(("layers", "layers=10"), 15)]
    assert forecast(runs, book, jobs=1).wall_s == 45


def test_a_worker_start_is_paid_once_per_slot_and_a_compile_once_per_worker_and_config(tmp_path):
    runs = layers_runs(4)
    runs = [r for r in runs if r.config.layers == 1]  # one config, seeds 0..3
    book = book_of(tmp_path, runs, lambda r: 1.0, compile_s=2.0)
    book.starts = {estimate.worker_key(runs[0]): 10.0}
    # Two slots, two seeds each: start 10, compile 2 once, 2 x 1 s of runs.
    assert forecast(runs, book, jobs=2).wall_s == 10 + 2 + 2
    # Another lr is another config: its programs come from the persistent cache (a compile again).
    other = [Run(r.sweep, r.backend, r.config.replace(lr=0.5), r.point) for r in runs[:1]]
    assert forecast(runs[:1] + other, book, jobs=1).wall_s == 10 + (2 + 1) * 2


def test_uncalibrated_runs_are_left_out_and_said(tmp_path):
    runs = layers_runs(1)
    book = book_of(tmp_path, runs[:3], lambda r: 1.0)
    plan = forecast(runs, book, jobs=1)
    assert plan.wall_s == 3 and len(plan.uncalibrated) == 2
    text = "\n".join(plan.lines("here"))
    assert "3 runs at 1 job(s) on here" in text and "2 run(s) of 2 uncalibrated shape(s): not counted" in text
    # Longest first, the unknown ones before them (they may be long).
    assert [order(book)([r])[0] for r in runs] == [0, 0, 0, 1, 1]


def test_runs_that_stop_when_solved_are_counted_at_their_cap_and_said(tmp_path):
    runs = expand(SWEEPS["heatmap-layers-carry"], "quick", ["torch"], 1, {})
    plan = forecast(runs, book_of(tmp_path, runs, lambda r: 1.0), jobs=1)
    assert plan.capped == len(runs) == 8
    assert "8 run(s) stop when solved: counted at their cap, an upper bound" in "\n".join(plan.lines("here"))


def test_the_book_is_per_machine_in_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("ADDER_JAX_CACHE", raising=False)
    runs = layers_runs(1)
    book = Book("cpu")
    assert book.path.parent == tmp_path / "rnn-adder" / "estimates"
    book.shapes[shape(runs[0])] = Figures(1.5, 0.0, 0.1, 0.01, 0.2)
    book.starts["torch threads=1 device=cpu"] = 2.0
    book.save()
    again = Book("cpu")
    assert again.shapes == book.shapes and again.starts == book.starts and again.missing(runs) == runs[1:]
    assert Book("NVIDIA H100").path != book.path and Book("NVIDIA H100").shapes == {}  # another device
    monkeypatch.setenv("ADDER_JAX_CACHE", "")  # every JAX compile cold: not this book's figures
    assert Book("cpu").path != book.path
    monkeypatch.delenv("ADDER_JAX_CACHE")
    machine = json.loads(book.path.read_text())["machine"]
    assert {"cpu", "cores", "device", "isa_caps", "python", "jax", "torch"} <= set(machine)
    book.path.write_text("{not json")
    assert Book("cpu").shapes == {}  # unreadable: calibrate afresh


def test_figures_come_from_a_calibration_record_and_its_compile_probe():
    timing = {"compile_s": 1.8, "train_s": 0.5, "eval_s": 0.2, "first_step_s": 0.06, "step_s_median": 0.04,
              "startup_s": 3.0, "build_s": 1.0}
    record = {"timing": timing, "curve": [{}, {}], "wall_s": 7.0, "warm": False}
    probe = {"status": "ok", "timing": {**timing, "compile_s": 0.3}}
    f = estimate.figures(record, probe, extra_build_s=0.9)
    # Its worker's start (3.0 + PyTorch-like 0.9 s of first build) and its cold compile are not the run's.
    assert abs(f.fixed_s - (7.0 - 3.9 - 1.8 - 0.5 - 0.2)) < 1e-9
    assert (f.compile_s, f.step_s, f.eval_s, f.first_step_s) == (0.3, 0.04, 0.1, 0.06)
    eager = {"timing": {**timing, "compile_s": None}, "curve": [{}], "wall_s": 1.0, "warm": True}
    assert estimate.figures(eager, None).compile_s == 0.0
    # A probe that failed leaves the calibration run's own compile (an upper bound).
    assert estimate.figures(record, {"status": "error"}).compile_s == 1.8


def test_figures_are_for_a_core_of_its_own_and_a_forecast_slows_them_by_the_contention_expected(tmp_path):
    timing = {"compile_s": None, "train_s": 0.5, "eval_s": 0.2, "first_step_s": 0.06, "step_s_median": 0.04,
              "startup_s": 0.0, "build_s": 0.0}
    alone = estimate.figures({"timing": timing, "curve": [{}], "wall_s": 1.0, "warm": True}, None)
    shared = estimate.figures({"timing": {**timing, "contention": 0.5}, "curve": [{}], "wall_s": 1.0,
                               "warm": True}, None)  # others had half the core: it ran at half speed
    assert all(abs(2 * getattr(shared, f) - getattr(alone, f)) < 1e-9
               for f in ("fixed_s", "first_step_s", "step_s", "eval_s"))
    runs = layers_runs(1)
    book = book_of(tmp_path, runs, lambda r: 1.0)
    assert forecast(runs, book, jobs=1, contention=0.5).wall_s == 2 * forecast(runs, book, jobs=1).wall_s
    assert "other processes taking ~50% of its cores" in " ".join(forecast(runs, book, 1, contention=0.5).lines("x"))


def test_a_sweep_calibrates_its_new_shapes_then_states_and_checks_its_estimate(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "compare.run", "--sweep", "ablation", "--seeds", "1", "--backends", "torch",
            "--set", "steps=10", "--set", "eval_every=5", "--set", "eval_size=50"]
    first = subprocess.run([*args, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=600,
                           env=env)
    assert first.returncode == 0, first.stderr
    text = " ".join(first.stdout.split())
    assert "calibrated 2 shape(s) just now" in text and "the runs' time estimate: estimated" in text
    again = subprocess.run([*args, "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=600,
                           env=env)
    assert again.returncode == 0 and "calibrated" not in again.stdout  # the cache knows both shapes


@pytest.mark.slow  # a timing bound: a benchmark's business, kept out of the default run
def test_on_a_small_sweep_the_estimate_is_near_the_wall_time_measured(tmp_path):
    """A real sweep, calibrated afresh: the estimate within a generous factor of the measured wall
    time of its runs (the figure on a real sweep is the README's; this guards the model's terms)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "compare.run", "--sweep", "ablation", "--seeds", "2",
                             "--set", "steps=200", "--set", "eval_size=200", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "calibrated 4 shape(s) just now" in text
    off = re.search(r"the runs' time estimate: estimated .*?, measured .*? \(([+-]\d+)%\)", text)
    assert off, text
    assert -50 <= int(off.group(1)) <= 100
    assert "- time estimate of those runs" in (tmp_path / "out" / "report.md").read_text()


def test_other_threads_take_a_fair_share_of_the_cores_once_they_do_not_all_fit():
    assert estimate.fair_share(0, jobs=2, cores=2) == 0.0  # the machine is the sweep's
    assert estimate.fair_share(2, jobs=1, cores=4) == 0.0  # room for all
    assert estimate.fair_share(2, jobs=2, cores=2) == 0.5
    assert abs(estimate.fair_share(4, jobs=2, cores=2) - 2 / 3) < 1e-12  # 6 threads on 2 cores
    assert 0.0 <= estimate.expected_contention(jobs=2, seconds=0.05) < 1.0


def test_the_verdict_says_how_far_off_and_the_contention_expected_and_seen():
    assert estimate.verdict(90, 100) == "estimated 90 s, measured 100 s (-10%)"
    runs = [{"timing": {"contention": c}} for c in (0.1, 0.5, 0.6)] + [None, {"status": "error"}]
    assert estimate.contention_seen(runs) == 0.5 and estimate.contention_seen([None]) is None
    assert estimate.verdict(300, 200, 0.5, 0.6).endswith("(+50%); other processes' share of the cores: "
                                                         "50% expected, 60% seen")
