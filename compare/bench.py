"""How fast is each backend, and how close to the machine's limit?

    python -m compare.bench --quick                 # about a minute
    python -m compare.bench --json bench.json       # every case, 1 and 2 threads, 3 repeats

It also times K seeds of the canonical config trained together by one vmapped JAX program
(--vmap_seeds, default 4) against K single runs one after another.

Each measurement runs in its own process (this module with --worker), pinned to the same cores
for both backends, interleaved A B A B over repeats. A worker reports: import and model-build
time; compile (JAX's ahead-of-time compile; PyTorch is eager) and first-step time; the
steady-state step time as the median over timed blocks (the device is synchronised at the end
of each block: JAX `block_until_ready`, PyTorch `torch.cuda.synchronize` on a GPU); the same
framework's fp32 matmul peak at the same thread count; and, for the canonical config, the time
to solve (first training step, compile included, to the first eval at 100 % exact; evals
excluded; it runs first, and its compile time is the one reported for the config). Achieved
GFLOP/s counts the matmul FLOPs of a training step from the shapes.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from absl import flags
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.app import check_writable, fail, run_app
from common.backends import BACKENDS, module
from common.files import write_atomic
from common.config import DEVICES, MAX_SEEDS_PER_PROGRAM, Config, ConfigError
from common.params import GATES, head_input_size, rnn_input_size
from common.threads import available_cores, host_threads, pin_threads
from compare import baselines, devices, text_bench

CASES = {
    "canonical": Config(),
    "lstm": Config(cell="lstm"),
    "gru": Config(cell="gru"),
    "digits100": Config(data="uniform", digits=100),
    "digits1000": Config(data="uniform", digits=1000),
}
QUICK_CASES = ("canonical", "digits100")
ALL_CASES = [*CASES, *text_bench.CASES]  # the adder's, then the sentiment model's (compare/text_bench.py)
SOLVE_LR = 1e-2  # time to solve is measured at the reports' best learning rate


def flops_per_step(cfg: Config) -> float:
    """Matmul FLOPs of one training step: forward, and twice that for the backward pass."""
    per_position = 2 * head_input_size(cfg) * cfg.base
    if cfg.cell != "none":
        rows = GATES[cfg.cell] * cfg.hidden
        per_position += sum(2 * rows * (rnn_input_size(cfg, k) + cfg.hidden) for k in range(cfg.layers))
    return 3 * per_position * cfg.batch_size * cfg.positions


# ---------------------------------------------------------------- worker (one backend, one case)

PEAK_SIZE = {"cpu": 1024, "gpu": 4096}
PEAK_BLOCK = {"cpu": 1, "gpu": 10}  # matmuls per timed block: a GPU's launch and sync are not free


def _matmul_peak(backend: str, device, kind: str, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of an N x N matmul in this framework, on the trainer's device (its
    precision settings apply: full fp32 unless --tf32), on this process's cores.

    N and the matmuls per timed block depend on the device: a single 1024^2 matmul on an H200
    takes ~80 us, so its timing was mostly launch and sync (measured: 13.7 TFLOP/s through JAX,
    25 through PyTorch, for the same cuBLAS work)."""
    size, block = PEAK_SIZE[kind], PEAK_BLOCK[kind]
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        a = jax.device_put(jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32), device)
        mm = jax.jit(lambda x, y: x @ y)
        mm(a, a).block_until_ready()
        run = lambda: [mm(a, a) for _ in range(block)][-1].block_until_ready()  # noqa: E731
    else:
        import torch

        a = torch.randn(size, size, device=device)
        sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
        run = lambda: ([a @ a for _ in range(block)], sync())  # noqa: E731
        run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return block * 2 * size**3 / best / 1e9


def _time_steps(step, sync, batches, blocks: int, block_steps: int) -> list[float]:
    """Seconds per step for each timed block (device synchronised at each block's end)."""
    return _time_arms({"step": (lambda i: step(batches[i % len(batches)]), sync)}, blocks, block_steps)["step"]


def _time_arms(arms: dict[str, tuple[Callable[[int], None], Callable[[], Any]]], blocks: int,
               block_steps: int) -> dict[str, list[float]]:
    """Seconds per step for each timed block of each arm ({name: (step(i), sync)}), the arms'
    blocks interleaved A B C A B C so that a drift in the machine's speed hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(blocks):
        for name, (step, sync) in arms.items():
            start = time.perf_counter()
            for i in range(block_steps):
                step(i)
            sync()
            times[name].append((time.perf_counter() - start) / block_steps)
    return times


def vmap_worker(case: str, device: str, threads: int, seeds: int, quick: bool) -> dict[str, Any]:
    """JAX: the step time of `seeds` seeds trained together by one vmapped program."""
    from common.data import train_batch
    from jax_impl.train import SeedGroup

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
    train = module(backend, "train")
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
    # the same model in a plain hand-written loop (compare.baselines), also making its batches.
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
    times = _time_arms(arms, blocks, block_steps)
    env = trainer.env()
    return {"backend": backend, "case": case, "import_s": import_s, "build_s": build_s,
            "data_s": data_s, "compile_s": compile_s, "first_step_s": first_step_s,
            **{name: statistics.median(t) for name, t in times.items()}, "step_s_all": times["step_s"],
            "peak_gflops": _matmul_peak(backend, trainer.device, env["device"]), "env": env, **solve}


# ---------------------------------------------------------------- parent: interleave, aggregate

def _spawn(backend: str, case: str, device: str, threads: int, quick: bool, cache_dir: str,
           seeds: int = 1) -> dict[str, Any]:
    cores = available_cores()[:threads]
    cmd = [sys.executable, "-m", "compare.bench", "--worker", f"--backend={backend}", f"--case={case}",
           f"--device={device}", f"--threads={threads}", f"--seeds={seeds}"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "ADDER_JAX_CACHE": cache_dir},
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"backend": backend, "case": case, "threads": threads, "error": tail}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "threads": threads}


def _summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repeats of every figure; spread of the step time."""
    ok = [s for s in samples if "error" not in s]
    if not ok:
        return {"error": samples[0]["error"]}
    med = lambda key: statistics.median(s[key] for s in ok) if ok[0].get(key) is not None else None  # noqa: E731
    step_s = med("step_s")
    out = {k: med(k) for k in ("import_s", "build_s", "data_s", "first_step_s", "step_s", "e2e_step_s",
                               "plain_step_s", "peak_gflops", "solve_s", "solve_with_evals_s", "solve_step")}
    # The first repeat starts from an empty persistent compilation cache, the others reuse it
    # (a failed first repeat leaves no cold figure rather than passing a warm one off as cold).
    cold = samples[0] if "error" not in samples[0] else {}
    warm = [s["compile_s"] for s in samples[1:] if "error" not in s and s["compile_s"] is not None]
    out.update(compile_cold_s=cold.get("compile_s"), compile_warm_s=statistics.median(warm) if warm else None,
               solve_cold_s=cold.get("solve_s"))
    warm_solves = [s["solve_s"] for s in samples[1:] if "error" not in s and s.get("solve_s") is not None]
    if warm_solves:
        out["solve_s"] = statistics.median(warm_solves)  # warm cache
    flops = med("flops") or flops_per_step(CASES[ok[0]["case"]])  # a text case counts its real tokens
    if ok[0].get("bucketed_step_s"):
        out.update({k: med(k) for k in ("bucketed_step_s", "pad_share", "bucketed_pad_share",
                                        "packed_random_step_s", "packed_bucketed_step_s")})
        out["bucketed_gflops"] = med("bucketed_flops") / out["bucketed_step_s"] / 1e9
    all_steps = [t for s in ok for t in s["step_s_all"]]
    per_s = lambda key: 1 / out[key] if out[key] else None  # noqa: E731
    out.update(e2e_steps_per_s=per_s("e2e_step_s"), plain_steps_per_s=per_s("plain_step_s"))
    out.update(step_s_min=min(all_steps), step_s_max=max(all_steps), steps_per_s=1 / step_s,
               gflops=flops / step_s / 1e9, repeats=len(ok), env=ok[0]["env"],
               device=ok[0]["env"]["device"])
    return out


def add_efficiency(summaries: dict[str, dict[str, Any]]) -> None:
    """Efficiency against the matmul peak of the device each backend ran on: the better of the
    two frameworks' peaks where both ran on one device (one yardstick for both), a backend's
    own peak where they did not (never a CPU run measured against a GPU's peak)."""
    ok = {b: s for b, s in summaries.items() if "error" not in s}
    for s in ok.values():
        same_device = [o["peak_gflops"] for o in ok.values() if o["device"] == s["device"]]
        s["machine_peak_gflops"] = max(same_device)
        s["efficiency"] = s["gflops"] / s["machine_peak_gflops"]
        if "bucketed_gflops" in s:
            s["bucketed_efficiency"] = s["bucketed_gflops"] / s["machine_peak_gflops"]


def bench(cases: list[str], device: str, thread_counts: list[int], repeats: int, quick: bool,
          vmap_seeds: list[int], status=None, done=None) -> list[dict[str, Any]]:
    """Every measurement, as rows (one per case x threads x backend, and per vmapped K).
    `done(rows so far)` is called after each case, so a stopped bench keeps what it measured."""
    say = status.update if status else (lambda _: None)
    results = []
    for case in cases:
        for threads in thread_counts:
            samples = {b: [] for b in BACKENDS}
            with tempfile.TemporaryDirectory() as cache_dir:
                for r in range(repeats):
                    for backend in (BACKENDS if r % 2 == 0 else BACKENDS[::-1]):
                        say(f"{case}, {threads} thread(s), {backend}, repeat {r + 1}/{repeats}")
                        samples[backend].append(_spawn(backend, case, device, threads, quick, cache_dir))
            summaries = {b: _summarise(s) for b, s in samples.items()}
            add_efficiency(summaries)
            for backend, s in summaries.items():
                flops = None if case in text_bench.CASES else flops_per_step(CASES[case])  # text: in s
                results.append({"case": case, "threads": threads, "backend": backend, "flops_per_step": flops, **s})
            if case == "canonical" and "error" not in summaries["jax"]:
                for k in vmap_seeds:
                    say(f"{case}, {threads} thread(s), {k} seeds in one vmapped program")
                    results.append(_vmap_row(case, device, threads, k, repeats, quick,
                                             summaries["jax"]["step_s"]))
            if done:
                done(results)
    return results


def warm_vs_fresh(backend: str, repeats: int, console: Console) -> dict[str, Any]:
    """The canonical config's steady steps/s in a fresh worker process and in a warm one (which
    trains another config between its samples, as in a sweep), interleaved A B A B on one core:
    compare.run's warm workers must time runs as fresh processes do."""
    from compare.runner import _Worker
    from compare.sweeps import Run

    x = CASES["canonical"].replace(steps=300, eval_every=100, device="cpu", threads=1)
    y = x.replace(cell="gru", layers=1, steps=50, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def steps_per_s(worker: _Worker, cfg: Config) -> float:
            worker.submit([Run("ab", backend, cfg, (("cfg", cfg.to_json()),))], folder, folder)
            while not worker.finished():
                time.sleep(0.005)
            [record] = worker.records()
            if record["status"] != "ok":
                raise RuntimeError(f"{backend} worker: {record['error']}")
            return record["timing"]["steps_per_s"]

        core = available_cores()[:1]
        warm = _Worker(backend, 1, "cpu", core, folder / "warm.log")
        fresh_s, warm_s = [], []
        try:
            steps_per_s(warm, y)
            for r in range(repeats):
                console.print(f"{backend}: warm vs fresh, repeat {r + 1}/{repeats}")
                fresh = _Worker(backend, 1, "cpu", core, folder / "fresh.log")
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


def main(argv: list[str]) -> None:
    F = flags.FLAGS
    if F.warm_vs_fresh:
        console = Console(highlight=False)
        for backend in BACKENDS:
            r = warm_vs_fresh(backend, F.warm_vs_fresh, console)
            console.print(f"{backend}: steps/s fresh {[round(v) for v in r['fresh']]}, warm "
                          f"{[round(v) for v in r['warm']]}; medians {statistics.median(r['fresh']):.1f} vs "
                          f"{statistics.median(r['warm']):.1f}, warm/fresh {r['ratio']:.3f}")
        return
    if F.worker:
        if F.backend not in BACKENDS or F.case not in ALL_CASES:
            fail(f"--worker needs --backend ({', '.join(BACKENDS)}) and --case ({', '.join(ALL_CASES)})")
        if not 1 <= F.threads <= len(available_cores()) or not 1 <= F.seeds <= MAX_SEEDS_PER_PROGRAM:
            fail(f"--threads={F.threads}, --seeds={F.seeds}: need 1 <= threads <= {len(available_cores())} "
                 f"and 1 <= seeds <= {MAX_SEEDS_PER_PROGRAM}")
        pin_threads(F.threads)
        if F.case in text_bench.CASES:
            print(json.dumps(text_bench.worker(F.backend, F.case, F.device, F.threads, F.quick, _matmul_peak)))
        elif F.seeds > 1:
            print(json.dumps(vmap_worker(F.case, F.device, F.threads, F.seeds, F.quick)))
        else:
            print(json.dumps(worker(F.backend, F.case, F.device, F.threads, F.quick)))
        return
    cases = (list(QUICK_CASES + text_bench.QUICK_CASES) if F.quick else list(ALL_CASES)) if not F.cases else F.cases
    unknown = [c for c in cases if c not in ALL_CASES]
    if unknown:
        fail(f"--cases={','.join(cases)}: unknown case {unknown[0]!r} (one of {', '.join(ALL_CASES)})")
    if not all(t.isdigit() for t in F.thread_counts):
        fail(f"--thread_counts={','.join(F.thread_counts)}: must be whole numbers (0: the run's policy)")
    if not all(t.isdigit() and int(t) <= len(available_cores()) for t in F.thread_counts):
        fail(f"--thread_counts={','.join(F.thread_counts)}: each must be in [0, {len(available_cores())}] "
             f"(the cores this process may use)")
    if not all(k.isdigit() and (int(k) == 0 or 2 <= int(k) <= MAX_SEEDS_PER_PROGRAM) for k in F.vmap_seeds):
        fail(f"--vmap_seeds={','.join(F.vmap_seeds)}: each must be 0 (skip) or in [2, {MAX_SEEDS_PER_PROGRAM}]")
    vmap_seeds = [int(k) for k in F.vmap_seeds if int(k)]
    if F.repeats < 0:
        fail(f"--repeats={F.repeats}: must be >= 1, or 0 for the default")
    repeats = F.repeats or (2 if F.quick else 3)  # >= 2: compile is timed cold, then warm
    if F.json:
        try:
            check_writable(F.json, flag="--json")  # fail now, not after the measurements
        except ConfigError as e:
            fail(str(e))
    try:
        device, note = devices.resolve(F.device, BACKENDS)
    except ConfigError as e:
        fail(str(e))
    # Default thread counts: 1 and 2 cores on a CPU; on a GPU, the host-core policy's count.
    counts = [int(t) for t in F.thread_counts] or ([1, 2] if device == "cpu" else [0])
    thread_counts = sorted({t or host_threads(Config(device=device)) for t in counts})

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(note)
    save = (lambda rows: write_atomic(Path(F.json), json.dumps(rows, indent=1) + "\n")) if F.json else None
    with console.status("") as status:
        results = bench(cases, device, thread_counts, repeats, F.quick, vmap_seeds, status, save)
    print_tables(console, results)
    if F.json:
        console.print(f"written to {F.json}")


def _vmap_row(case: str, device: str, threads: int, seeds: int, repeats: int, quick: bool,
              single_step_s: float) -> dict[str, Any]:
    """K seeds in one vmapped program against K runs one after another (JAX's own step time)."""
    with tempfile.TemporaryDirectory() as cache_dir:
        samples = [_spawn("jax", case, device, threads, quick, cache_dir, seeds) for _ in range(repeats)]
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


def print_tables(console: Console, results: list[dict[str, Any]]) -> None:
    _print_table(console, [r for r in results if r["backend"] in BACKENDS])
    _print_e2e_table(console, [r for r in results if r["backend"] in BACKENDS and "error" not in r
                               and r["case"] in CASES])
    _print_text_table(console, [r for r in results if r["case"] in text_bench.CASES and "error" not in r])
    _print_vmap_table(console, [r for r in results if r["backend"] == "jax-vmap"])


def _print_text_table(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title="Sentiment model: batches of 64 texts of 50..400 tokens, random lengths vs length "
                        "buckets (GFLOP/s of real tokens only)")
    for col in ("case", "thr", "backend", "compile s", "random: step s", "pad", "GFLOP/s", "eff.",
                "bucketed: step s", "pad", "GFLOP/s", "eff.", "bucketed speed-up", "PyTorch packed: step s random/bucketed"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("case", "backend") else "right")
    f = lambda x, spec: "–" if x is None else f"{x:{spec}}"  # noqa: E731
    for r in rows:
        table.add_row(r["case"], str(r["threads"]), r["backend"], f(r["compile_warm_s"] or r["compile_cold_s"], ".2f"),
                      f(r["step_s"], ".3f"), f"{r['pad_share']:.0%}", f(r["gflops"], ".1f"),
                      f"{r['efficiency']:.0%}", f(r["bucketed_step_s"], ".3f"), f"{r['bucketed_pad_share']:.0%}",
                      f(r["bucketed_gflops"], ".1f"), f"{r['bucketed_efficiency']:.0%}",
                      f"x{r['step_s'] / r['bucketed_step_s']:.2f}",
                      f"{f(r.get('packed_random_step_s'), '.3f')} / {f(r.get('packed_bucketed_step_s'), '.3f')}")
    console.print(table)
    console.print("pad: the share of a padded batch's positions that are padding (JAX's masked scan and "
                  "PyTorch's padded batch compute them); eff. = GFLOP/s of real tokens over the same run's "
                  "matmul peak. Compile: JAX, every batch width (warm cache; cold on the first repeat). "
                  "PyTorch packed: the lab's pack_padded_sequence (--pack), which computes real tokens only.")


def _print_vmap_table(console: Console, rows: list[dict[str, Any]]) -> None:
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


def _print_e2e_table(console: Console, rows: list[dict[str, Any]]) -> None:
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
                  "loop = compare.baselines, the same model written plainly (the reports' PyTorch loop, a "
                  "jit + lax.scan loop), making its own batches too. Blocks of the three interleaved.")


def _print_table(console: Console, results: list[dict[str, Any]]) -> None:
    table = Table(title="Training speed (medians over repeats; step time median over timed blocks)")
    for col in ("case", "device", "thr", "backend", "import s", "build s", "compile s cold/warm", "1st step s",
                "step ms", "range ms", "steps/s", "GFLOP/s", "peak", "eff.", "solve s cold/warm (step)"):
        table.add_column(col, no_wrap=True, justify="right" if col not in ("case", "device", "backend") else "left")
    f = lambda x, spec: "–" if x is None else f"{x:{spec}}"  # noqa: E731
    for r in results:
        if "error" in r:
            table.add_row(r["case"], "", str(r["threads"]), r["backend"], f"error: {escape(r['error'])}")
            continue
        solve = (f"{f(r['solve_cold_s'], '.2f')} / {f(r['solve_s'], '.2f')} ({r['solve_step']:.0f})"
                 if r.get("solve_step") else "–")
        compile_s = "–" if r["compile_cold_s"] is None and r["compile_warm_s"] is None else \
            f"{f(r['compile_cold_s'], '.2f')} / {f(r['compile_warm_s'], '.2f')}"
        table.add_row(r["case"], r["device"], str(r["threads"]), r["backend"], f(r["import_s"], ".2f"),
                      f(r["build_s"], ".2f"), compile_s, f(r["first_step_s"], ".3f"),
                      f(1e3 * r["step_s"], ".2f"), f"{1e3 * r['step_s_min']:.2f}–{1e3 * r['step_s_max']:.2f}",
                      f(r["steps_per_s"], ".1f"), f(r["gflops"], ".1f"), f(r["machine_peak_gflops"], ".0f"),
                      f(100 * r["efficiency"], ".0f") + "%", solve)
    console.print(table)
    console.print(f"FLOPs per step = 3 x forward matmul FLOPs; peak = best fp32 N x N matmul (N = "
                  f"{PEAK_SIZE['cpu']} on a CPU, {PEAK_SIZE['gpu']} on a GPU) of either framework on that "
                  f"device at that thread count, this run; solve = compile + training steps "
                  f"to the first eval at 100 % exact (lr {SOLVE_LR}, eval every 10 steps, evals not counted). "
                  f"cold = first repeat, empty JAX compilation cache; warm = later repeats, reusing it.")


def define_flags() -> None:
    flags.DEFINE_bool("quick", False, f"cases {', '.join(QUICK_CASES)}, 2 repeats, shorter timing")
    flags.DEFINE_list("cases", [], f"cases to run (default: all): {', '.join(CASES)}")
    flags.DEFINE_enum("device", "auto", DEVICES, "where both backends run (auto: a GPU if both see one)")
    flags.DEFINE_list("thread_counts", [], "host cores to measure at (default: 1,2 on a CPU; on a GPU, "
                      "the run policy's count; 0 = that count)")
    flags.DEFINE_integer("repeats", 0, "repeats per backend (0: 3, 2 with --quick)")
    flags.DEFINE_string("json", None, "also write the results to this JSON file")
    flags.DEFINE_list("vmap_seeds", ["4"], "also time these numbers of seeds of the canonical config, "
                      "each in one vmapped JAX program (0: skip)")
    flags.DEFINE_integer("warm_vs_fresh", 0, "instead of the cases: time the canonical config this many "
                         "times in a fresh and in a warm worker, interleaved (compare.run's warm workers)",
                         lower_bound=0, upper_bound=100)
    flags.DEFINE_bool("worker", False, "internal: measure one backend and case, print JSON")
    flags.DEFINE_string("backend", None, "internal (--worker)")
    flags.DEFINE_string("case", None, "internal (--worker)")
    flags.DEFINE_integer("threads", 1, "internal (--worker)")
    flags.DEFINE_integer("seeds", 1, "internal (--worker): > 1 times a vmapped SeedGroup")


if __name__ == "__main__":
    run_app(main, define_flags)
