"""Each framework at its best, and how it scales with the sequence (`python -m compare.bench
--scaling`, `--variants`): steps/s of a training step, each step making its batch as a run
does (end to end), for every mode of a framework side by side in one worker process, the modes'
timed blocks interleaved. A mode is our trainer (`default`) or a plain hand-written loop
(baselines.py) with its variants: JAX's scan unroll, PyTorch's torch.compile and CUDA graphs.
Each mode's first step (build, compile or capture, one step) is timed apart from the steps.

--scaling: positions 10, 30, 100, 300 and 1000 (the operands' digits plus the carry), rnn and
lstm; JAX's trainer and plain loop at unroll 1 and at `best_unroll`, PyTorch's trainer and the
plain nn.RNN/nn.LSTM loop (and, on a GPU, that loop in a CUDA graph). --variants: what decided
`best_unroll` (the plain JAX loop at 10 and 1000 positions over unroll factors) and whether
torch.compile of the plain loop wins (with Dynamo's own account of what it compiled).
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import time
from typing import Any

from common import tasks
from common.backends import BACKENDS, module
from common.config import Config
from compare.bench import baselines
from compare.bench.core import interleave, time_arms

POSITIONS = (10, 30, 100, 300, 1000)
QUICK_POSITIONS = (10, 100)
CELLS = ("rnn", "lstm")
COMPILE_RNN_UP_TO = 10  # positions up to which the scaling case times torch.compile with allow_rnn
BLOCK_S = {False: 0.5, True: 0.15}  # a timed block's rough length (by --quick)


def config(cell: str, positions: int) -> Config:
    """The handout's model at `positions`: its own data up to 10, uniform operands beyond (as
    the digits100 case: the handout's operands are 9 digits)."""
    digits = positions - 1
    return Config(cell=cell, digits=digits, data="handout" if digits <= 9 else "uniform")


def best_unroll(cell: str, positions: int) -> int:
    """The scan unroll the scaling case times the plain JAX loop at besides 1 (--variants and
    --scaling, 1 thread, fastest timed block; medians are within this shared box's noise):
    rnn full at 10 positions (x1.18 over 1 in two runs), 8 from 30 on (x1.02-1.08 at 1000, 2 to
    8 alike; it loses 5-20 % at 30 to 300, where 1 is best); lstm 1 (2 alike at 100 positions,
    8 half the speed)."""
    if cell == "lstm":
        return 1
    return positions if positions <= 10 else 8


# Training steps per call of our JAX trainer's best mode (`steps_per_call`; common/config.py):
# measured on the canonical config, 1 thread, x1.12 at 10 and x1.15 at 50 over 1 (a quiet run).
BEST_STEPS_PER_CALL = 10


def scaling_modes(backend: str, device: str, cell: str, positions: int, quick: bool = False) -> list[str]:
    """Our trainer as it comes (`default`) and at its best (`best`: JAX's unroll and steps per
    call; PyTorch's CUDA graph, on a GPU only), the plain loop and its variants."""
    if backend == "jax":  # one curve, whichever factor is best there (none where 1 is)
        return ["default", "best", "plain"] + (["plain unroll=best"] if best_unroll(cell, positions) > 1 else [])
    # Inductor unrolls every position of a traced nn.RNN: its compile takes 40 s (rnn) to 2 min
    # (lstm) at 10 positions on a loaded CPU core, and grows with the length.
    compiled = ["plain compile allow_rnn"] if positions <= COMPILE_RNN_UP_TO and not quick else []
    graphs = ["best", "plain graphs"] if device == "gpu" else []
    return ["default", "plain", *compiled, *graphs]


def best_config(backend: str, cfg: Config) -> Config:
    """Our trainer's best mode for `cfg` (what `best` times): PyTorch's CUDA graph; JAX's steps
    per call, with the scan fully unrolled at 10 positions (rnn x1.14-1.25 on the command line)
    and not beyond: our trainer's rnn at 100 positions ran 0.86-0.97x at unroll 8 (measured on
    the command line, 1 thread, twice each), unlike the plain loop (`best_unroll`)."""
    if backend == "torch":
        return cfg.replace(graphs=True)
    full = cfg.cell == "rnn" and cfg.positions <= 10
    return cfg.replace(unroll=0 if full else 1, steps_per_call=BEST_STEPS_PER_CALL)


def steps_per_call(backend: str, mode: str, cfg: Config) -> int:
    """Training steps one call of a mode takes (a timed block's steps count calls)."""
    return best_config(backend, cfg).steps_per_call if mode == "best" else 1


SCALING = {f"scale-{cell}-{p}": (cell, p) for cell in CELLS for p in POSITIONS}
VARIANTS = {"unroll-rnn-10": ("jax", 10, ["plain unroll=full", "plain", "plain unroll=2", "plain unroll=4",
                                          "plain unroll=8"]),
            "unroll-rnn-1000": ("jax", 1000, ["plain", "plain unroll=2", "plain unroll=4", "plain unroll=8",
                                              "plain unroll=16"]),
            "unroll-lstm-100": ("jax", 100, ["plain", "plain unroll=2", "plain unroll=4", "plain unroll=8"]),
            "compile-rnn-10": ("torch", 10, ["plain", "plain compile", "plain compile allow_rnn"])}
CASES = [*SCALING, *VARIANTS]


def case_modes(case: str, backend: str, device: str, quick: bool = False) -> tuple[Config, list[str]]:
    """A case's config and the modes a backend times on it (none: the case is the other's)."""
    if case in SCALING:
        cell, positions = SCALING[case]
        return config(cell, positions), scaling_modes(backend, device, cell, positions, quick)
    owner, positions, modes = VARIANTS[case]
    # On a GPU the compile case also times the CUDA graph, PyTorch's other lever.
    extra = ["plain graphs"] if case.startswith("compile") and device == "gpu" else []
    return config(case.split("-")[1], positions), modes + extra if backend == owner else []


def _mode_loop(backend: str, mode: str, cfg: Config, device: str):
    """(step, sync) of one mode; `default` and `best` are our trainer, each step making its
    batch (`best` takes `steps_per_call` steps a call)."""
    if mode in ("default", "best"):
        from common.data import train_batch

        cfg = best_config(backend, cfg) if mode == "best" else cfg
        trainer = module(backend, tasks.ADDER.trainer_module).Trainer(cfg)
        later = itertools.count(1)
        trainer.compile(train_batch(cfg, 0))
        if cfg.steps_per_call > 1:
            return (lambda: trainer.step_many([train_batch(cfg, next(later)) for _ in range(cfg.steps_per_call)]),
                    trainer.loss)
        return lambda: trainer.step(train_batch(cfg, next(later))), trainer.loss
    words = mode.split()[1:]  # "plain", then its variant
    options = {"graphs": "graphs" in words, "compile": "compile" in words, "allow_rnn": "allow_rnn" in words}
    unroll = next((w.split("=")[1] for w in words if w.startswith("unroll=")), "1")
    if backend == "jax":
        best = best_unroll(cfg.cell, cfg.positions)
        return baselines.plain_loop("jax", cfg, device, unroll={"full": cfg.positions, "best": best}.get(unroll)
                                    or int(unroll))
    return baselines.plain_loop("torch", cfg, device, **options)


def worker(backend: str, case: str, device: str, threads: int, quick: bool) -> dict[str, Any]:
    """One backend's modes on one case: each mode's first step (build, compile or capture, and
    one step) timed apart, then the modes' steps in interleaved timed blocks."""
    cfg, modes = case_modes(case, backend, device, quick)
    cfg = cfg.replace(device=device, threads=threads)
    start = time.perf_counter()
    module(backend, tasks.ADDER.trainer_module)  # the framework's import is no mode's first step
    import_s = time.perf_counter() - start
    first_s, arms, notes = {}, {}, {}
    for mode in modes:
        start = time.perf_counter()
        step, sync = _mode_loop(backend, mode, cfg, device)
        step()
        sync()
        first_s[mode] = time.perf_counter() - start
        arms[mode] = (lambda i, step=step: step(), sync)
        if "compile" in mode:
            notes[mode] = baselines.dynamo_summary()
    # Size the blocks from one warm step of the slowest mode: a long sequence takes a second.
    warm = max(time_arms(arms, 1, 1)[mode][0] for mode in modes)
    block_steps = max(1, round(BLOCK_S[quick] / warm))
    times = time_arms(arms, 3 if quick else 5, block_steps)
    times = {mode: [t / steps_per_call(backend, mode, cfg) for t in ts] for mode, ts in times.items()}
    return {"backend": backend, "case": case, "import_s": import_s, "first_s": first_s, "step_s_all": times,
            "notes": notes, "env": {"device": device, "threads": threads}}


def measure(cases: list[str], device: str, threads: int, repeats: int, quick: bool, say) -> list[dict[str, Any]]:
    """Rows (case x backend x mode) of steps/s, each case's backends in fresh worker processes
    interleaved A B, B A over repeats, with the load average when the case ran."""
    rows = []
    for case in cases:
        load = os.getloadavg()[0]
        backends = tuple(b for b in BACKENDS if case_modes(case, b, device)[1])
        for backend, samples in interleave(case, device, threads, repeats, quick, say, backends).items():
            rows += summarise(case, backend, threads, samples, load)
    return rows


def summarise(case: str, backend: str, threads: int, samples: list[dict[str, Any]],
              load: float) -> list[dict[str, Any]]:
    """One row per mode: median step time over every timed block of every repeat; the first
    step cold (first repeat: empty JAX compilation cache) and warm (median of the others)."""
    cfg, _ = case_modes(case, backend, "cpu")
    base = {"case": case, "group": "scaling" if case in SCALING else "variants", "cell": cfg.cell,
            "positions": cfg.positions, "threads": threads, "backend": backend, "load": round(load, 2)}
    ok = [s for s in samples if "error" not in s]
    if not ok:
        return [{**base, "error": samples[0]["error"]}]
    rows = []
    for mode in ok[0]["first_s"]:
        steps = [t for s in ok for t in s["step_s_all"][mode]]
        warm = [s["first_s"][mode] for s in samples[1:] if "error" not in s]
        step_s = statistics.median(steps)
        rows.append({**base, "mode": mode, "device": ok[0]["env"]["device"], "step_s": step_s,
                     "steps_per_s": 1 / step_s, "step_s_min": min(steps), "step_s_max": max(steps),
                     "first_s_cold": samples[0]["first_s"][mode] if "error" not in samples[0] else None,
                     "first_s_warm": statistics.median(warm) if warm else None, "repeats": len(ok),
                     "import_s": statistics.median(s["import_s"] for s in ok),
                     **({"unroll": best_unroll(cfg.cell, cfg.positions)} if "unroll=best" in mode else {}),
                     **({"config": {k: getattr(best_config(backend, cfg), k) for k in Config.MODES}}
                        if mode == "best" else {}),
                     **({"note": ok[0]["notes"][mode]} if mode in ok[0]["notes"] else {})})
    return rows


def crossovers(positions: list[float], a: list[float], b: list[float]) -> list[float]:
    """Where curve a crosses curve b, interpolated in log-log space: each point where the sign
    of log(a/b) changes (a zero between two points of opposite sign is the crossing itself; a
    zero with the same sign either side is a touch, not a crossing)."""
    pts = [(math.log(p), math.log(x / y)) for p, x, y in zip(positions, a, b)]
    signed = [(lp, r) for lp, r in pts if r != 0]
    out = []
    for (p0, r0), (p1, r1) in zip(signed, signed[1:]):
        if (r0 > 0) != (r1 > 0):
            zeros = [lp for lp, r in pts if r == 0 and p0 < lp < p1]
            out.append(math.exp(zeros[0] if zeros else p0 + (p1 - p0) * r0 / (r0 - r1)))
    return out


def crossover_line(positions: list[float], a: list[float], b: list[float], names: tuple[str, str]) -> str:
    """The crossover in words: where, and who leads before and after each crossing; or who is
    faster throughout."""
    found = crossovers(positions, a, b)
    faster = lambda k: names[0] if a[k] >= b[k] else names[1]  # noqa: E731
    if not found:
        apart = max(range(len(a)), key=lambda k: abs(math.log(a[k] / b[k])))  # not a touching point
        return f"none in {positions[0]:g}..{positions[-1]:g}: {faster(apart)} faster throughout"
    leaders = [faster(0)] + [names[(names.index(faster(0)) + k) % 2] for k in range(1, len(found) + 1)]
    at = ", ".join(f"{p:.0f}" for p in found)
    if len(found) == 1:
        return f"at {at} positions: {leaders[0]} faster below, {leaders[1]} above"
    return f"at {at} positions: {leaders[0]} faster first, then " + ", then ".join(leaders[1:])


def curves(rows: list[dict[str, Any]], cell: str, threads: int) -> dict[tuple[str, str], dict[int, float]]:
    """{(backend, mode): {positions: steps/s}} of the scaling rows of one cell and thread count."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        if r["group"] == "scaling" and "error" not in r and (r["cell"], r["threads"]) == (cell, threads):
            out.setdefault((r["backend"], r["mode"]), {})[r["positions"]] = r["steps_per_s"]
    return out


def crossover_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per cell and thread count: where JAX's and PyTorch's curves cross, our trainers' (default)
    and each framework's best mode at each length."""
    lines = []
    for cell, threads in sorted({(r["cell"], r["threads"]) for r in rows if r["group"] == "scaling"}):
        c = curves(rows, cell, threads)
        best = {b: {} for b in BACKENDS}
        for (backend, _), curve in c.items():
            for p, v in curve.items():
                best[backend][p] = max(v, best[backend].get(p, 0))
        for label, (x, y) in (("default", (c.get(("jax", "default")), c.get(("torch", "default")))),
                              ("best mode", (best["jax"], best["torch"]))):
            common = sorted(set(x or {}) & set(y or {}))
            if len(common) >= 2:
                where = crossover_line(common, [x[p] for p in common], [y[p] for p in common], ("JAX", "PyTorch"))
                lines.append(f"{cell}, {threads} thread(s), {label}: crossover {where}")
    return lines


def print_table(console, rows: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Steps/s end to end (each step makes its batch) by mode; first step = build + "
                        "compile or capture + one step, cold / warm JAX cache")
    for col in ("case", "thr", "backend", "mode", "steps/s", "step ms", "range ms", "× plain",
                "first step s", "load"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("case", "backend", "mode") else "right")
    f = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
    plain = {(r["case"], r["threads"], r["backend"]): r["steps_per_s"] for r in rows if r.get("mode") == "plain"}
    for r in rows:
        if "error" in r:
            table.add_row(r["case"], str(r["threads"]), r["backend"], "", f"error: {escape(r['error'])}")
            continue
        base = plain.get((r["case"], r["threads"], r["backend"]))
        mode = r["mode"] + (f" ({r['unroll']})" if "unroll" in r else "") + (
            " (" + ", ".join(f"{k} {v}" for k, v in r["config"].items() if v != getattr(Config(), k)) + ")"
            if "config" in r else "")
        table.add_row(r["case"], str(r["threads"]), r["backend"], mode, f"{r['steps_per_s']:.2f}",
                      f"{1e3 * r['step_s']:.2f}", f"{1e3 * r['step_s_min']:.1f}–{1e3 * r['step_s_max']:.1f}",
                      f"{r['steps_per_s'] / base:.3f}" if base else "–",
                      f"{f(r['first_s_cold'])} / {f(r['first_s_warm'])}", f"{r['load']:.2f}")
    console.print(table)
    for mode, note in sorted({(r["mode"], r["note"]) for r in rows if "note" in r}):
        console.print(f"{mode}: {escape(note)}")
    for line in crossover_lines(rows):
        console.print(line)


def plot(rows: list[dict[str, Any]], path) -> bool:
    """Steps/s against positions, log-log, one panel per cell, one line per framework/mode (and
    thread count); False if there is nothing to draw."""
    from compare.plots import COLOURS, plt, save

    keys = sorted({(r["cell"], r["threads"]) for r in rows if r.get("group") == "scaling" and "error" not in r})
    cells = sorted({cell for cell, _ in keys}, key=CELLS.index)
    if not cells:
        return False
    device = next(r["device"] for r in rows if r.get("group") == "scaling" and "error" not in r)
    fig, axes = plt.subplots(1, len(cells), figsize=(5.5 * len(cells), 4.2), squeeze=False)
    styles = {"default": "-", "best": "-.", "plain": "--"}
    for ax, cell in zip(axes[0], cells):
        for threads in sorted({t for c, t in keys if c == cell}):
            for (backend, mode), curve in sorted(curves(rows, cell, threads).items()):
                ps = sorted(curve)
                ax.plot(ps, [curve[p] for p in ps], styles.get(mode, ":"), marker="o", ms=3,
                        color=COLOURS[backend], label=f"{backend} {mode}" + (f", {threads} thr" if threads > 1 else ""))
        ax.set(xscale="log", yscale="log", xlabel="positions", ylabel="steps/s", title=f"{cell} on the {device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)
    return True
