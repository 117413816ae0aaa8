"""compare.bench.adder: the FLOP count, and (slow) one real measurement end to end."""

import json
import subprocess
import sys

import pytest

from common.config import Config
from compare.bench.adder import CASES, flops_per_step


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
        assert r["flops_per_step"] == flops_per_step(CASES["canonical"])
    jax_row = next(r for r in rows if r["backend"] == "jax")
    assert jax_row["compile_cold_s"] > 0 and jax_row["compile_warm_s"] is not None
