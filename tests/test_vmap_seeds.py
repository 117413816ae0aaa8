"""Seeds of one config trained together by one vmapped JAX program (`--vmap_seeds`)."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from common.config import Config
from common.loop import fit, fit_lockstep
from compare.runner import work_units
from compare.sweeps import SWEEPS, expand
from jax_impl.adder import SeedGroup, Trainer


def seeds_of(cfg, n):
    return [cfg.replace(seed=cfg.seed + k) for k in range(n)]


def losses(record):
    return np.array([p["loss"] for p in record["curve"]])


def test_a_group_trains_each_seed_as_it_would_alone():
    cfgs = seeds_of(Config(lr=1e-2, steps=60, eval_every=20, eval_size=300), 3)
    together = fit_lockstep(cfgs, SeedGroup(cfgs))
    for cfg, record in zip(cfgs, together):
        alone = fit(cfg, Trainer(cfg))
        assert record["timing"]["runs_in_program"] == 3
        assert [p["step"] for p in record["curve"]] == [p["step"] for p in alone["curve"]]
        # One program for three seeds reorders float32 work: equal up to rounding, not bitwise.
        np.testing.assert_allclose(losses(record), losses(alone), rtol=1e-4, atol=1e-6)
        assert [p["exact_acc"] for p in record["curve"]] == pytest.approx(
            [p["exact_acc"] for p in alone["curve"]], abs=0.01)
    assert len({tuple(losses(r)) for r in together}) == 3  # the seeds really differ


def test_a_solved_seed_stops_on_its_own_step():
    cfgs = [Config(lr=1e-2, steps=300, eval_every=10, eval_size=300, stop_when_solved=True, seed=s)
            for s in (4, 5)]  # these two are solved 20 steps apart (60 and 80 here)
    records = fit_lockstep(cfgs, SeedGroup(cfgs))
    solved = [record["timing"]["solve_step"] for record in records]
    assert None not in solved and solved[0] != solved[1]
    for cfg, record in zip(cfgs, records):
        assert record["curve"][-1]["step"] == record["timing"]["solve_step"]  # stopped on its own step
        # Alone it solves at the same eval, or, where the group's reordered float32 work flips one
        # borderline sum (at step 50 one of the 300 is still wrong), at a neighbouring one.
        alone = fit(cfg, Trainer(cfg))
        assert abs(record["timing"]["solve_step"] - alone["timing"]["solve_step"]) <= cfg.eval_every


def test_divergence_of_one_seed_leaves_the_others_alone():
    cfgs = seeds_of(Config(lr=1e-2, steps=40, eval_every=10, eval_size=200), 2)
    group = SeedGroup(cfgs)
    # Poison seed 1's weights: its loss is NaN from step 1; seed 0 must train on unharmed.
    poisoned = jax.tree.map(lambda x: x.at[1].set(np.nan), group.state["params"])
    group.state = {**group.state, "params": poisoned}
    first, second = fit_lockstep(cfgs, group)
    assert second["status"] == "diverged" and second["diverged_step"] == 1
    assert first["status"] == "ok" and np.isfinite(losses(first)).all()
    assert first["curve"][-1]["loss"] < 0.5 * first["curve"][0]["loss"]


def test_cli_writes_one_record_per_seed(tmp_path):
    out = tmp_path / "runs.json"
    result = subprocess.run([sys.executable, "-m", "jax_impl", "--vmap_seeds", "2", "--seed", "5",
                             "--steps", "20", "--eval_every", "10", "--eval_size", "100",
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert [r["config"]["seed"] for r in records] == [5, 6]
    assert all(r["status"] == "ok" and r["timing"]["runs_in_program"] == 2 for r in records)


@pytest.mark.parametrize("count", ["0", "65", "100000"])
def test_cli_rejects_a_bad_count(tmp_path, count):
    result = subprocess.run([sys.executable, "-m", "jax_impl", "--vmap_seeds", count,
                             "--out", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == f"error: --vmap_seeds={count}: must be in [1, 64]"
    assert not list(tmp_path.iterdir())


def test_harness_groups_at_most_the_cap_of_seeds_in_one_program():
    runs = expand(SWEEPS["layers"], "quick", ["jax"], 150, {})
    sizes = [len(u) for u in work_units([r for r in runs if r.label == "layers=1"], vmap_seeds=True)]
    assert sizes == [64, 64, 22]


def test_harness_groups_consecutive_jax_seeds_of_one_config():
    runs = expand(SWEEPS["layers"], "quick", ["jax", "torch"], 3, {})
    units = work_units(runs, vmap_seeds=True)
    assert sorted(len(u) for u in units if u[0].backend == "jax") == [3] * 5
    assert all(len(u) == 1 for u in units if u[0].backend == "torch")
    for unit in units:
        assert len({(r.backend, r.label, r.config.replace(seed=0)) for r in unit}) == 1
        assert [r.config.seed for r in unit] == list(range(unit[0].config.seed, unit[0].config.seed + len(unit)))
    # A resumed sweep with seed 1 done: seeds 0 and 2 are not consecutive, so they run apart.
    todo = [r for r in runs if not (r.backend == "jax" and r.config.seed == 1)]
    assert max(len(u) for u in work_units(todo, vmap_seeds=True)) == 1
    assert all(len(u) == 1 for u in work_units(runs, vmap_seeds=False))


def test_harness_with_vmap_seeds_records_every_run(tmp_path):
    out = tmp_path / "abl"
    result = subprocess.run([sys.executable, "-m", "compare.run", "--nocalibrate", "--sweep", "ablation",
                             "--seeds", "2", "--vmap_seeds", "--set", "steps=10", "--set", "eval_every=5",
                             "--set", "eval_size=50", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 8 and len({r["key"] for r in records}) == 8
    for r in records:
        assert r["status"] == "ok"
        assert r["timing"]["runs_in_program"] == (2 if r["backend"] == "jax" else 1)
    assert "vmapped program" in (out / "report.md").read_text()


def test_harness_groups_only_the_runs_of_a_backend_with_seed_groups_for_their_workload():
    # A text sweep with --vmap_seeds once sent JAX K seeds in one request and got one record
    # back: 1 of every K runs was recorded, and the sweep said done.
    runs = expand(SWEEPS["text-cells"], "quick", ["jax", "torch"], 3, {})
    assert all(len(u) == 1 for u in work_units(runs, vmap_seeds=True))


def test_seed_groups_are_declared_where_the_backends_have_them():
    from common import backends
    from common.sentiment.config import TextConfig

    for config, part in ((Config, "adder"), (TextConfig, "sentiment")):
        for backend in backends.BACKENDS:
            assert (backend in config.SEED_GROUPS) == hasattr(backends.module(backend, part), "SeedGroup")
