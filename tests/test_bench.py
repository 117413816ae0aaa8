"""compare.bench: the FLOP count, and (slow) one real measurement end to end."""

import json
import subprocess
import sys

import pytest

from common.config import Config
from compare.bench import CASES, add_efficiency, flops_per_step


def test_flops_per_step_from_shapes():
    # handout: 2 layers of 64x(64+64) weights + a 64x10 head, per position; x3 for fwd + bwd
    per_position = 2 * 64 * 128 * 2 + 2 * 64 * 10
    assert flops_per_step(CASES["canonical"]) == 3 * per_position * 200 * 10
    assert flops_per_step(Config(cell="lstm")) > 3.5 * flops_per_step(Config())
    assert flops_per_step(Config(data="uniform", digits=99)) == 10 * flops_per_step(Config())


@pytest.mark.slow
def test_bench_measures_both_backends(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "compare.bench", "--quick", "--cases", "canonical",
                             "--thread_counts", "1", "--json", str(out)], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert {r["backend"] for r in rows} == {"jax", "torch", "jax-vmap"}
    vmap = next(r for r in rows if r["backend"] == "jax-vmap")
    assert vmap["seeds"] == 4 and vmap["group_step_s"] > 0 and vmap["speedup"] > 0
    rows = [r for r in rows if r["backend"] != "jax-vmap"]
    for r in rows:
        assert r["steps_per_s"] > 0 and 0 < r["efficiency"] <= 1.5 and r["solve_step"]
        assert r["e2e_steps_per_s"] > 0 and r["plain_steps_per_s"] > 0  # what a run gets; the baseline
    jax_row = next(r for r in rows if r["backend"] == "jax")
    assert jax_row["compile_cold_s"] > 0 and jax_row["compile_warm_s"] is not None


def test_efficiency_uses_the_peak_of_the_device_each_backend_ran_on():
    row = lambda device, peak, gflops: {"device": device, "peak_gflops": peak, "gflops": gflops}  # noqa: E731
    same = {"jax": row("cpu", 100.0, 30.0), "torch": row("cpu", 80.0, 20.0)}
    add_efficiency(same)  # one device: the better framework's peak is the yardstick for both
    assert same["jax"]["efficiency"] == 0.3 and same["torch"]["efficiency"] == 0.2
    mixed = {"jax": row("cpu", 100.0, 30.0), "torch": row("gpu", 50000.0, 500.0)}
    add_efficiency(mixed)  # never a CPU run against a GPU's peak
    assert mixed["jax"]["efficiency"] == 0.3 and mixed["torch"]["efficiency"] == 0.01
    failed = {"jax": {"error": "boom"}, "torch": row("cpu", 80.0, 20.0)}
    add_efficiency(failed)
    assert failed["torch"]["efficiency"] == 0.25 and "efficiency" not in failed["jax"]


def test_an_error_in_the_table_keeps_its_brackets():
    """Rich reads [..] as markup: 'jax[cuda13]' in an error used to print as 'jax'."""
    import io

    from rich.console import Console

    from compare.bench import print_tables

    buf = io.StringIO()
    message = "device='gpu': JAX sees no GPU (is a CUDA jaxlib installed, e.g. jax[cuda13]?)"
    print_tables(Console(file=buf, width=400), [{"case": "canonical", "threads": 1, "backend": "jax",
                                                 "error": message}])
    assert "jax[cuda13]?)" in buf.getvalue()


def test_timed_arms_take_turns_block_by_block():
    from compare.bench import _time_arms

    calls = []
    arm = lambda name: (lambda i: calls.append((name, i)), lambda: calls.append((name, "sync")))  # noqa: E731
    times = _time_arms({"a": arm("a"), "b": arm("b")}, blocks=2, block_steps=2)
    assert [len(t) for t in times.values()] == [2, 2]
    assert calls == [("a", 0), ("a", 1), ("a", "sync"), ("b", 0), ("b", 1), ("b", "sync")] * 2


def test_text_cases_count_real_tokens_and_bucketing_cuts_padding():
    from compare import text_bench

    cfg = text_bench.CASES["text-lstm-1024"]
    per_token = 2 * 4 * 1024 * (100 + 1024)  # one layer: 4 gates of (in + hidden) x hidden
    assert text_bench.flops_per_step(cfg, 1000) == 3 * per_token * 1000 + 3 * 2 * 1024 * 64
    random, bucketed = text_bench.batches("random"), text_bench.batches("bucketed")
    for batch in random + bucketed:
        assert len(batch) == 64 and 50 <= batch.lengths.min() and batch.lengths.max() <= 400
        assert batch.ids.shape[1] <= 400 and (batch.ids[:, :50] > 1).all()
    share = lambda group: sum(text_bench.pad_share(b) for b in group) / len(group)  # noqa: E731
    assert share(random) > 0.4 and share(bucketed) < 0.25  # uniform 50..400: ~45 % pad unsorted, ~22 % bucketed


@pytest.mark.slow
def test_bench_measures_a_text_case(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "compare.bench", "--quick", "--cases", "text-rnn-256",
                             "--thread_counts", "1", "--vmap_seeds", "0", "--json", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert {r["backend"] for r in rows} == {"jax", "torch"}
    for r in rows:
        assert r["gflops"] > 0 and r["bucketed_gflops"] > 0 and r["pad_share"] > r["bucketed_pad_share"]
    torch_row = next(r for r in rows if r["backend"] == "torch")  # the lab's packed sequence beside it
    assert torch_row["packed_random_step_s"] > 0 and torch_row["packed_bucketed_step_s"] > 0
    assert "Sentiment model: batches of 64 texts" in result.stdout
