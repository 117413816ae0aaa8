"""compare.bench.scaling: the crossover of two speed curves, the modes each case times, and
(slow) the quick scaling run end to end: a row for every length x cell x framework, and a plot."""

import json
import subprocess
import sys

import pytest

from compare.bench.scaling import CASES, case_modes, config, crossover_line, crossovers

POSITIONS = [10, 30, 100, 300, 1000]


def test_a_crossing_is_interpolated_in_log_space():
    jax = [200, 100, 30, 10, 3]
    torch = [100, 80, 40, 12, 3.6]  # JAX faster at 10 and 30, slower from 100
    [at] = crossovers(POSITIONS, jax, torch)
    assert 30 < at < 100
    # log(jax/torch) is log 1.25 at 30 and log 0.75 at 100: the zero lies that share of the way
    share = 0.22314 / (0.22314 + 0.28768)
    assert at == pytest.approx(30 * (100 / 30) ** share, rel=1e-4)
    assert crossover_line(POSITIONS, jax, torch, ("JAX", "PyTorch")) == \
        f"at {at:.0f} positions: JAX faster below, PyTorch above"


def test_crossing_twice_names_each_leader_in_turn():
    assert crossover_line(POSITIONS, [3, 2, 1, 1, 2], [2, 2.5, 1.5, 0.8, 1], ("JAX", "PyTorch")).endswith(
        "positions: JAX faster first, then PyTorch, then JAX")


def test_no_crossing_names_who_is_faster_throughout():
    assert crossovers(POSITIONS, [2, 2, 2, 2, 2], [1, 1, 1, 1, 1.9]) == []
    assert crossover_line(POSITIONS, [1, 1, 1, 1, 1], [2, 3, 4, 5, 6], ("JAX", "PyTorch")) == \
        "none in 10..1000: PyTorch faster throughout"


def test_touching_is_not_crossing_but_passing_through_equal_is():
    assert crossovers(POSITIONS, [2, 1, 2, 2, 2], [1, 1, 1, 1, 1]) == []  # touches at 30
    assert crossover_line(POSITIONS, [1, 2, 2, 2, 2], [1, 1, 1, 1, 1], ("JAX", "PyTorch")) == \
        "none in 10..1000: JAX faster throughout"  # equal at the first length only
    assert crossovers(POSITIONS, [3, 2, 1, 0.5, 0.5], [1, 1, 1, 1, 1]) == [pytest.approx(100)]  # equal at 100, then below


def test_each_case_times_the_modes_it_compares():
    assert len(CASES) == len(set(CASES))
    cfg, modes = case_modes("scale-rnn-1000", "jax", "cpu")
    assert (cfg.cell, cfg.positions, cfg.data) == ("rnn", 1000, "uniform") and "plain unroll=best" in modes
    assert "plain unroll=best" not in case_modes("scale-lstm-1000", "jax", "cpu")[1]  # unroll 1 is its best
    assert config("rnn", 10).data == "handout"  # the handout's own model at its length
    assert "plain graphs" not in case_modes("scale-rnn-10", "torch", "cpu")[1]
    assert "plain graphs" in case_modes("scale-rnn-10", "torch", "gpu")[1]
    assert case_modes("unroll-rnn-10", "torch", "cpu")[1] == []  # JAX's variants only
    # Our trainers at their best: JAX everywhere, PyTorch's CUDA graph on a GPU only.
    assert "best" in case_modes("scale-rnn-10", "jax", "cpu")[1]
    assert "best" not in case_modes("scale-rnn-10", "torch", "cpu")[1]
    assert "best" in case_modes("scale-rnn-10", "torch", "gpu")[1]


def test_the_best_mode_is_a_valid_config_that_says_its_steps_per_call():
    from compare.bench.scaling import best_config, steps_per_call

    short, long = config("rnn", 10), config("lstm", 1000)
    assert (best_config("jax", short).unroll, best_config("jax", long).unroll) == (0, 1)  # full; lstm: 1
    assert best_config("jax", config("rnn", 100)).unroll == 1
    assert steps_per_call("jax", "best", short) == best_config("jax", short).steps_per_call > 1
    assert steps_per_call("jax", "default", short) == steps_per_call("torch", "best", short) == 1
    assert best_config("torch", short).graphs


@pytest.mark.slow
def test_quick_scaling_rows_every_length_cell_and_framework_and_plots(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "compare.bench", "--scaling", "--quick", "--json", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert not [r for r in rows if "error" in r]
    assert {(r["positions"], r["cell"], r["backend"]) for r in rows} == \
        {(p, c, b) for p in (10, 100) for c in ("rnn", "lstm") for b in ("jax", "torch")}
    assert all(r["steps_per_s"] > 0 and r["first_s_cold"] > 0 for r in rows)
    assert {r["mode"] for r in rows if r["cell"] == "rnn"} == {"default", "plain", "plain unroll=best"}
    assert (tmp_path / "bench-scaling-cpu.png").stat().st_size > 0
    assert "crossover" in result.stdout


@pytest.mark.parametrize("flag", ["--thread_counts=x", "--plot=/no/such/folder/s.png"])
def test_scaling_refuses_bad_input_in_one_line_before_measuring(flag):
    result = subprocess.run([sys.executable, "-m", "compare.bench", "--scaling", flag],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
