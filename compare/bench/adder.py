"""The adder's speed (compare.bench's adder cases): the handout's model and four variations, timed
three ways in interleaved blocks: on pre-made batches (the kernel-level figure), as a run gets it
(each step makes its batch), and the same model in a plain hand-written loop (baselines.py).

The canonical config also times its solve (first training step, compile included, to the first
eval at 100 % exact; evals excluded; it runs first, and its compile time is the one reported for
the config), and K of its seeds trained together by one vmapped JAX program against K single
runs one after another (`vmap_worker`, `vmap_row`). Achieved GFLOP/s counts the matmul FLOPs of
a training step from the shapes.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.backends import module
from common.config import Config
from common.params import GATES, head_input_size, rnn_input_size
from common.threads import available_cores
from compare.bench import baselines
from compare.bench.core import matmul_peak, spawn, time_arms

CASES = {
    "canonical": Config(),
    "lstm": Config(cell="lstm"),
    "gru": Config(cell="gru"),
    "digits100": Config(data="uniform", digits=100),
    "digits1000": Config(data="uniform", digits=1000),
}
QUICK_CASES = ("canonical", "digits100")
SOLVE_LR = 1e-2  # time to solve is measured at the reports' best learning rate


def flops_per_step(cfg: Config) -> float:
    """Matmul FLOPs of one training step: forward, and twice that for the backward pass."""
    per_position = 2 * head_input_size(cfg) * cfg.base
    if cfg.cell != "none":
        rows = GATES[cfg.cell] * cfg.hidden
        per_position += sum(2 * rows * (rnn_input_size(cfg, k) + cfg.hidden) for k in range(cfg.layers))
    return 3 * per_position * cfg.batch_size * cfg.positions


def _time_steps(step, sync, batches, blocks: int, block_steps: int) -> list[float]:
    """Seconds per step for each timed block (device synchronised at each block's end)."""
    return time_arms({"step": (lambda i: step(batches[i % len(batches)]), sync)}, blocks, block_steps)["step"]


def vmap_worker(case: str, device: str, threads: int, seeds: int, quick: bool) -> dict[str, Any]:
    """JAX: the step time of `seeds` seeds trained together by one vmapped program."""
    from common.data import train_batch
    from jax_impl.adder import SeedGroup

    cfgs = [CASES[case].replace(device=device, threads=threads, seed=k) for k in range(seeds)]
    batches = [[train_batch(c, k) for c in cfgs] for k in range(1, 5)]
    group = SeedGroup(cfgs)
    compile_s = group.compile(batches[0])
    group.step(batches[0])
    step_times = _time_steps(group.step, group.views[0].loss, batches, 5, 5 if quick else 15)
    return {"backend": "jax", "case": case, "seeds": seeds, "compile_s": compile_s,
            "step_s": statistics.median(step_times), "env": group.views[0].env()}


def worker(backend: str, case: str, device: str, threads: int, quick: bool) -> dict[str, Any]:
    from common.data import train_batch
    from common.loop import fit

    cfg = CASES[case].replace(device=device, threads=threads)
    start = time.perf_counter()
    train = module(backend, "adder")
    import_s = time.perf_counter() - start

    start = time.perf_counter()
    batches = [train_batch(cfg, k) for k in range(1, 5)]
    data_s = (time.perf_counter() - start) / len(batches)

    # The canonical case first trains to 100 % at SOLVE_LR, so that run meets the compilation
    # cache as a user's would: empty on the first repeat. The lr is not part of the compiled
    # program, so the timed trainer then reuses it (its compile is reported as warm).
    solve_cfg = cfg.replace(lr=SOLVE_LR, eval_every=10, steps=500, stop_when_solved=True)
    first_cfg = solve_cfg if case == "canonical" else cfg
    start = time.perf_counter()
    trainer = train.Trainer(first_cfg)  # the first build pays the frameworks' lazy imports
    build_s = time.perf_counter() - start
    solve: dict[str, Any] = {}
    if case == "canonical":
        timing = fit(solve_cfg, trainer)["timing"]
        solve = {"solve_step": timing["solve_step"], "solve_s": timing["solve_train_s"],
                 "solve_with_evals_s": timing["solve_s"], "compile_s": timing["compile_s"],
                 "first_step_s": timing["first_step_s"]}
        trainer = train.Trainer(cfg)
    compile_s = trainer.compile(batches[0])

    start = time.perf_counter()
    trainer.step(batches[0])
    trainer.loss()
    first_step_s = time.perf_counter() - start

    # Three ways to time a step, blocks interleaved: the kernel-level figure (pre-made batches,
    # cycled), what a run gets (each step makes its own batch, as common.loop.fit does), and
    # the same model in a plain hand-written loop (baselines.py), also making its batches.
    later = itertools.count(len(batches) + 1)
    arms = {"step_s": (lambda i: trainer.step(batches[i % len(batches)]), trainer.loss),
            "e2e_step_s": (lambda i: trainer.step(train_batch(cfg, next(later))), trainer.loss)}
    if baselines.supports(cfg):
        plain_step, plain_loss = baselines.plain_loop(backend, cfg, device)
        plain_step()  # JAX compiles here
        plain_loss()
        arms["plain_step_s"] = (lambda i: plain_step(), plain_loss)
    long = cfg.digits >= 1000
    blocks, block_steps = (3, 2) if long else (5, 10 if quick else 30)
    times = time_arms(arms, blocks, block_steps)
    env = trainer.env()
    return {"backend": backend, "case": case, "import_s": import_s, "build_s": build_s,
            "data_s": data_s, "compile_s": compile_s, "first_step_s": first_step_s,
            **{name: statistics.median(t) for name, t in times.items()}, "step_s_all": times["step_s"],
            "peak_gflops": matmul_peak(backend, trainer.device, env["device"]), "env": env,
            "flops": flops_per_step(cfg), **solve}


def warm_vs_fresh(backend: str, repeats: int, console: Console) -> dict[str, Any]:
    """The canonical config's steady steps/s in a fresh worker process and in a warm one (which
    trains another config between its samples, as in a sweep), interleaved A B A B on one core:
    compare.run's warm workers must time runs as fresh processes do."""
    from compare.runner import Worker
    from compare.sweeps import Run

    x = CASES["canonical"].replace(steps=300, eval_every=100, device="cpu", threads=1)
    y = x.replace(cell="gru", layers=1, steps=50, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def steps_per_s(worker: Worker, cfg: Config) -> float:
            worker.submit([Run("ab", backend, cfg, (("cfg", cfg.to_json()),))], folder, folder)
            while not worker.finished():
                time.sleep(0.005)
            [record] = worker.records()
            if record["status"] != "ok":
                raise RuntimeError(f"{backend} worker: {record['error']}")
            return record["timing"]["steps_per_s"]

        core = available_cores()[:1]
        warm = Worker(backend, 1, "cpu", core, folder / "warm.log")
        fresh_s, warm_s = [], []
        try:
            steps_per_s(warm, y)
            for r in range(repeats):
                console.print(f"{backend}: warm vs fresh, repeat {r + 1}/{repeats}")
                fresh = Worker(backend, 1, "cpu", core, folder / "fresh.log")
                try:
                    fresh_s.append(steps_per_s(fresh, x))
                finally:
                    fresh.close()
                steps_per_s(warm, y)
                warm_s.append(steps_per_s(warm, x))
        finally:
            warm.close()
    return {"backend": backend, "fresh": fresh_s, "warm": warm_s,
            "ratio": statistics.median(warm_s) / statistics.median(fresh_s)}


def vmap_row(case: str, device: str, threads: int, seeds: int, repeats: int, quick: bool,
             single_step_s: float) -> dict[str, Any]:
    """K seeds in one vmapped program against K runs one after another (JAX's own step time)."""
    with tempfile.TemporaryDirectory() as cache_dir:
        samples = [spawn("jax", case, device, threads, quick, cache_dir, seeds) for _ in range(repeats)]
    ok = [s for s in samples if "error" not in s]
    row = {"case": case, "threads": threads, "backend": "jax-vmap", "seeds": seeds}
    if not ok:
        return {**row, "error": samples[0]["error"]}
    group_step_s = statistics.median(s["step_s"] for s in ok)
    warm = [s["compile_s"] for s in samples[1:] if "error" not in s]
    return {**row, "device": ok[0]["env"]["device"], "group_step_s": group_step_s,
            "single_step_s": single_step_s,
            "compile_cold_s": None if "error" in samples[0] else samples[0]["compile_s"],
            "compile_warm_s": statistics.median(warm) if warm else None,
            "speedup": seeds * single_step_s / group_step_s}


def print_vmap_table(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title="JAX: K seeds in one vmapped program vs K runs one after another")
    for col in ("case", "device", "thr", "K", "group step ms", "per seed ms", "single run step ms",
                "speed-up", "compile s cold/warm"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("case", "device") else "right")
    f = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
    for r in rows:
        if "error" in r:
            table.add_row(r["case"], "", str(r["threads"]), str(r["seeds"]), f"error: {escape(r['error'])}")
            continue
        table.add_row(r["case"], r["device"], str(r["threads"]), str(r["seeds"]),
                      f"{1e3 * r['group_step_s']:.2f}", f"{1e3 * r['group_step_s'] / r['seeds']:.2f}",
                      f"{1e3 * r['single_step_s']:.2f}", f"x{r['speedup']:.2f}",
                      f"{f(r['compile_cold_s'])} / {f(r['compile_warm_s'])}")
    console.print(table)


def print_e2e_table(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title="What a run gets: steps/s with each step making its batch, against pre-made "
                        "batches and a plain hand-written loop")
    for col in ("case", "thr", "backend", "pre-made", "run (e2e)", "e2e / pre-made", "plain loop",
                "run / plain"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("case", "backend") else "right")
    f = lambda x: "–" if x is None else f"{x:.1f}"  # noqa: E731
    ratio = lambda x, y: "–" if x is None or y is None else f"{x / y:.3f}"  # noqa: E731
    for r in rows:
        table.add_row(r["case"], str(r["threads"]), r["backend"], f(r["steps_per_s"]), f(r["e2e_steps_per_s"]),
                      ratio(r["e2e_steps_per_s"], r["steps_per_s"]), f(r["plain_steps_per_s"]),
                      ratio(r["e2e_steps_per_s"], r["plain_steps_per_s"]))
    console.print(table)
    console.print("pre-made = the kernel-level figure (four batches made before timing, cycled); run (e2e) "
                  "= each step makes its own batch with common.data.train_batch, as a run does; plain "
                  "loop = compare.bench.baselines, the same model written plainly (the reports' PyTorch loop, a "
                  "jit + lax.scan loop), making its own batches too. Blocks of the three interleaved.")
