"""What the bench does for every workload: time a training step, and the machine's limit.

Each measurement runs in its own process (`python -m compare.bench --worker`), pinned to the same
cores for both backends, interleaved A B A B over repeats (`measure`). A worker reports: import
and model-build time; compile (JAX's ahead-of-time compile; PyTorch is eager) and first-step
time; the steady-state step time as the median over timed blocks (the device is synchronised at
the end of each block: JAX `block_until_ready`, PyTorch `torch.cuda.synchronize` on a GPU); the
FLOPs of a step; and the same framework's fp32 matmul peak at the same thread count
(`matmul_peak`), the yardstick of its efficiency. What a workload times is its module's:
adder.py, sentiment.py.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from common.backends import BACKENDS
from common.threads import available_cores

PEAK_SIZE = {"cpu": 1024, "gpu": 4096}
PEAK_BLOCK = {"cpu": 1, "gpu": 10}  # matmuls per timed block: a GPU's launch and sync are not free


def matmul_peak(backend: str, device, kind: str, repeats: int = 10) -> float:
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


def time_arms(arms: dict[str, tuple[Callable[[int], None], Callable[[], Any]]], blocks: int,
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


def spawn(backend: str, case: str, device: str, threads: int, quick: bool, cache_dir: str,
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


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
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
    flops = med("flops")  # the worker's count: a text case counts its real tokens only
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


def interleave(case: str, device: str, threads: int, repeats: int, quick: bool, say: Callable[[str], Any],
               backends: tuple[str, ...] = BACKENDS) -> dict[str, list[dict[str, Any]]]:
    """Each backend's worker samples of one case: each repeat a fresh worker process per backend,
    the order alternating A B, B A. The first repeat starts from an empty JAX compilation cache,
    the later ones reuse it."""
    samples: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory() as cache_dir:
        for r in range(repeats):
            for backend in (backends if r % 2 == 0 else backends[::-1]):
                say(f"{case}, {threads} thread(s), {backend}, repeat {r + 1}/{repeats}")
                samples[backend].append(spawn(backend, case, device, threads, quick, cache_dir))
    return samples


def measure(case: str, device: str, threads: int, repeats: int, quick: bool,
            say: Callable[[str], Any]) -> dict[str, dict[str, Any]]:
    """Both backends on one case at one thread count (`interleave`): each backend's summary,
    with its efficiency."""
    summaries = {b: summarise(s) for b, s in interleave(case, device, threads, repeats, quick, say).items()}
    add_efficiency(summaries)
    return summaries
