"""How fast is each backend, and how close to the machine's limit?

    python -m compare.bench --quick                 # about a minute
    python -m compare.bench --json bench.json       # every case, 1 and 2 threads, 3 repeats
    python -m compare.bench --scaling --json s.json # steps/s against positions, 10..1000; a plot
    python -m compare.bench --variants              # the plain loops' unroll and torch.compile

Every case of both workloads (compare/bench/adder.py: the handout's model and four variations;
compare/bench/sentiment.py: the text classifier), each backend in its own worker process
(this command with --worker), pinned to the same cores, interleaved A B A B over repeats
(compare/bench/core.py). It also times K seeds of the canonical config trained together by one
vmapped JAX program (--vmap_seeds, default 4) against K single runs one after another.
--scaling and --variants run compare/bench/scaling.py's cases instead.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from absl import flags
from rich.console import Console

from common.app import check_writable, fail, run_app
from common.backends import BACKENDS
from common.config import DEVICES, MAX_SEEDS_PER_PROGRAM, Config, ConfigError
from common.files import write_atomic
from common.threads import available_cores, host_threads, pin_threads
from compare import devices
from compare.bench import ALL_CASES, QUICK_CASES, adder, bench, print_tables, scaling, sentiment


def main(argv: list[str]) -> None:
    F = flags.FLAGS
    if F.warm_vs_fresh:
        console = Console(highlight=False)
        for backend in BACKENDS:
            r = adder.warm_vs_fresh(backend, F.warm_vs_fresh, console)
            console.print(f"{backend}: steps/s fresh {[round(v) for v in r['fresh']]}, warm "
                          f"{[round(v) for v in r['warm']]}; medians {statistics.median(r['fresh']):.1f} vs "
                          f"{statistics.median(r['warm']):.1f}, warm/fresh {r['ratio']:.3f}")
        return
    if F.worker:
        if F.backend not in BACKENDS or F.case not in ALL_CASES + scaling.CASES:
            fail(f"--worker needs --backend ({', '.join(BACKENDS)}) and --case ({', '.join(ALL_CASES)}, "
                 f"or a --scaling/--variants case)")
        if not 1 <= F.threads <= len(available_cores()) or not 1 <= F.seeds <= MAX_SEEDS_PER_PROGRAM:
            fail(f"--threads={F.threads}, --seeds={F.seeds}: need 1 <= threads <= {len(available_cores())} "
                 f"and 1 <= seeds <= {MAX_SEEDS_PER_PROGRAM}")
        pin_threads(F.threads)
        if F.case in scaling.CASES:
            print(json.dumps(scaling.worker(F.backend, F.case, F.device, F.threads, F.quick)))
        elif F.case in sentiment.CASES:
            print(json.dumps(sentiment.worker(F.backend, F.case, F.device, F.threads, F.quick)))
        elif F.seeds > 1:
            print(json.dumps(adder.vmap_worker(F.case, F.device, F.threads, F.seeds, F.quick)))
        else:
            print(json.dumps(adder.worker(F.backend, F.case, F.device, F.threads, F.quick)))
        return
    cases = (QUICK_CASES if F.quick else ALL_CASES) if not F.cases else F.cases
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
    for path, flag in ((F.json, "--json"), (F.plot, "--plot")):
        try:
            if path:
                check_writable(path, flag=flag)  # fail now, not after the measurements
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
    if F.scaling or F.variants:
        run_scaling(console, device, [int(t) for t in F.thread_counts] or [1 if device == "cpu" else 0],
                    F.repeats or (1 if F.quick else 2), save)
        return
    with console.status("") as status:
        results = bench(cases, device, thread_counts, repeats, F.quick, vmap_seeds, status, save)
    print_tables(console, results)
    if F.json:
        console.print(f"written to {F.json}")


def plot_path(device: str) -> Path | None:
    """Where --scaling's plot goes: --plot, or beside --json (<name>-scaling-<device>.png)."""
    F = flags.FLAGS
    if F.plot or not F.json:
        return Path(F.plot) if F.plot else None
    return Path(F.json).with_name(f"{Path(F.json).stem}-scaling-{device}.png")


def run_scaling(console: Console, device: str, counts: list[int], repeats: int, save) -> None:
    """--scaling and --variants: their table, crossover and plot (beside --json, or --plot)."""
    F = flags.FLAGS
    positions = scaling.QUICK_POSITIONS if F.quick else scaling.POSITIONS
    cases = [f"scale-{c}-{p}" for c in scaling.CELLS for p in positions] if F.scaling else []
    cases += list(scaling.VARIANTS) if F.variants else []
    rows = []
    with console.status("") as status:
        for threads in sorted({t or host_threads(Config(device=device)) for t in counts}):
            for case in cases:
                rows += scaling.measure([case], device, threads, repeats, F.quick, status.update)
                if save:
                    save(rows)
    scaling.print_table(console, rows)
    path = plot_path(device)
    if path and F.scaling and scaling.plot(rows, path):
        console.print(f"plot: {path}")
    if F.json:
        console.print(f"written to {F.json}")


def define_flags() -> None:
    flags.DEFINE_bool("quick", False, f"cases {', '.join(QUICK_CASES)}, 2 repeats, shorter timing")
    flags.DEFINE_list("cases", [], f"cases to run (default: all): {', '.join(ALL_CASES)}")
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
    flags.DEFINE_bool("scaling", False, "instead of the cases: steps/s against positions (10..1000; --quick: "
                      "10 and 100, 1 repeat), rnn and lstm, every mode; 1 thread on a CPU unless --thread_counts")
    flags.DEFINE_bool("variants", False, "instead of the cases: the plain loops' variants on a CPU or GPU (JAX's "
                      "scan unroll at 10 and 1000 positions, torch.compile, CUDA graphs on a GPU)")
    flags.DEFINE_string("plot", None, "--scaling: write the plot here (default: beside --json, "
                        "<name>-scaling-<device>.png)")
    flags.DEFINE_bool("worker", False, "internal: measure one backend and case, print JSON")
    flags.DEFINE_string("backend", None, "internal (--worker)")
    flags.DEFINE_string("case", None, "internal (--worker)")
    flags.DEFINE_integer("threads", 1, "internal (--worker)")
    flags.DEFINE_integer("seeds", 1, "internal (--worker): > 1 times a vmapped SeedGroup")


if __name__ == "__main__":
    run_app(main, define_flags)
