"""How fast is each backend, and how close to the machine's limit? (`python -m compare.bench`,
__main__.py.) core.py times a step and the machine's matmul peak for any workload; adder.py and
sentiment.py are the two workloads' cases (baselines.py: the adder's plain hand-written loops);
this module runs the cases of both and prints their tables.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.backends import BACKENDS
from compare.bench import adder, sentiment
from compare.bench.core import PEAK_SIZE, measure

ALL_CASES = [*adder.CASES, *sentiment.CASES]
QUICK_CASES = [*adder.QUICK_CASES, *sentiment.QUICK_CASES]


def bench(cases: list[str], device: str, thread_counts: list[int], repeats: int, quick: bool,
          vmap_seeds: list[int], status=None, done=None) -> list[dict[str, Any]]:
    """Every measurement, as rows (one per case x threads x backend, and per vmapped K).
    `done(rows so far)` is called after each case, so a stopped bench keeps what it measured."""
    say = status.update if status else (lambda _: None)
    results = []
    for case in cases:
        for threads in thread_counts:
            summaries = measure(case, device, threads, repeats, quick, say)
            for backend, s in summaries.items():
                flops = adder.flops_per_step(adder.CASES[case]) if case in adder.CASES else None  # text: in s
                results.append({"case": case, "threads": threads, "backend": backend, "flops_per_step": flops, **s})
            if case == "canonical" and "error" not in summaries["jax"]:
                for k in vmap_seeds:
                    say(f"{case}, {threads} thread(s), {k} seeds in one vmapped program")
                    results.append(adder.vmap_row(case, device, threads, k, repeats, quick,
                                                  summaries["jax"]["step_s"]))
            if done:
                done(results)
    return results


def print_tables(console: Console, results: list[dict[str, Any]]) -> None:
    _print_speed_table(console, [r for r in results if r["backend"] in BACKENDS])
    adder.print_e2e_table(console, [r for r in results if r["backend"] in BACKENDS and "error" not in r
                                    and r["case"] in adder.CASES])
    sentiment.print_table(console, [r for r in results if r["case"] in sentiment.CASES and "error" not in r])
    adder.print_vmap_table(console, [r for r in results if r["backend"] == "jax-vmap"])


def _print_speed_table(console: Console, results: list[dict[str, Any]]) -> None:
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
                  f"to the first eval at 100 % exact (lr {adder.SOLVE_LR}, eval every 10 steps, evals not counted). "
                  f"cold = first repeat, empty JAX compilation cache; warm = later repeats, reusing it.")
