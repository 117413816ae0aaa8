"""Figures for the report (matplotlib, written as PNG)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.patches
import matplotlib.ticker

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import tasks  # noqa: E402
from common.files import replacing  # noqa: E402
from compare.stats import CURVE_TOLERANCE, DIFFERENT, Estimate, Group, contended  # noqa: E402

COLOURS = {"jax": "tab:blue", "torch": "tab:orange"}
STYLES = {"jax": "-", "torch": "--"}  # dashed on top of solid: identical curves stay visible
_COLUMNS = 5



def save(fig: matplotlib.figure.Figure, path: Path) -> None:
    """Write the PNG whole or not at all (a full disk leaves no empty file), and free the figure."""
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)

def bootstrap_band(values: list[float], resamples: int = 2000) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean over seeds. It stays inside the values'
    range (an accuracy band never leaves [0, 1], as a t-interval over 3 seeds does); seeded, so a
    report redrawn from the same records draws the same band."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float(v.mean())
    means = np.random.default_rng(0).choice(v, (resamples, len(v))).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _mean_band(group: Group, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per eval step: mean over seeds and its bootstrap band (lo, hi)."""
    by_step: dict[int, list[float]] = {}
    last_step = max((r["curve"][-1]["step"] for r in group.records if r["curve"]), default=0)
    every = group.records[0]["config"]["eval_every"]
    for r in group.records:
        if not r["curve"]:
            continue
        points = {p["step"]: p[key] for p in r["curve"]}
        if r["status"] == "ok":  # stopped once solved: it stays where it ended
            value = r["curve"][-1][key]
            points.update({s: value for s in range(r["curve"][-1]["step"] + every, last_step + 1, every)})
        for step, value in points.items():
            by_step.setdefault(step, []).append(value)
    steps = np.array(sorted(by_step))
    bands = np.array([bootstrap_band(by_step[s]) for s in steps]).reshape(-1, 2)
    return steps, np.array([np.mean(by_step[s]) for s in steps]), bands[:, 0], bands[:, 1]


# The training loss a curve plots: the mean since the previous eval where the records have it
# (issue 27), else the loss of the one batch of each eval step (records written before).
TRAIN_LOSS = {"train_loss_mean": "training loss (mean since last eval)",
              "loss": "training loss (the eval step's batch)"}


def train_loss_key(groups: dict[str, Group]) -> str:
    """The key of the training loss one panel plots: the interval mean when every run has it."""
    points = [p for g in groups.values() for r in g.records for p in r["curve"]]
    return "train_loss_mean" if all("train_loss_mean" in p for p in points) else "loss"


def curves(groups: dict[str, dict[str, Group]], title: str, path: Path,
           verdicts: dict[str, str] | None = None) -> None:
    """Loss and accuracy (exact match; test accuracy for sentiment) of both backends per config:
    mean over seeds and its bootstrap band; each panel titled with the config and its verdict.
    The loss panel shows the training loss (TRAIN_LOSS) and, for sentiment, the test loss."""
    labels = list(groups)
    cols = min(_COLUMNS, len(labels))
    blocks = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(3.4 * cols, 5.2 * blocks), squeeze=False,
                             sharex=False)
    first = next(iter(next(iter(groups.values())).values())).records[0]
    accuracy_key = tasks.of(first).accuracy_key
    test_loss = any("test_loss" in point for point in first["curve"])  # a held-out loss, where recorded
    for i, label in enumerate(labels):
        top, col = 2 * (i // cols), i % cols
        loss_ax, acc_ax = axes[top, col], axes[top + 1, col]
        loss_key = train_loss_key(groups[label])
        series = [(loss_ax, loss_key, ""), (acc_ax, accuracy_key, "")]
        if test_loss:
            series.append((loss_ax, "test_loss", " test"))
        for backend, group in sorted(groups[label].items()):
            for ax, key, what in series:
                steps, mean, lo, hi = _mean_band(group, key)
                if not len(steps):
                    continue
                ax.plot(steps, mean, STYLES.get(backend, "-"), color=COLOURS.get(backend), label=backend + what,
                        lw=1.4, **({"marker": "o", "ms": 2.5} if what else {}))
                ax.fill_between(steps, lo, hi, color=COLOURS.get(backend), alpha=0.2, lw=0)
            diverged = group.count("diverged")
            if diverged:
                loss_ax.annotate(f"{backend}: {diverged} diverged", (0.02, 0.05 + 0.1 * (backend == "torch")),
                                 xycoords="axes fraction", fontsize=7, color=COLOURS.get(backend))
        verdict = (verdicts or {}).get(label)
        loss_ax.set_title(label + (f"\n{verdict}" if verdict else ""), fontsize=8,
                          color="tab:red" if verdict == DIFFERENT else "black")
        loss_ax.set_yscale("log")
        lo, hi = loss_ax.get_ylim()
        if hi / lo < 10:  # within one decade only minor ticks exist: label them plainly
            loss_ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
        loss_ax.set_ylabel(TRAIN_LOSS[loss_key] + ("\nand test loss (dots)" if test_loss else ""), fontsize=8)
        acc_ax.set_ylabel("test accuracy" if accuracy_key == "test_acc" else "exact match (held out)", fontsize=8)
        acc_ax.set_xlabel("step", fontsize=8)
        acc_ax.set_ylim(-0.03, 1.03)
        for ax in (loss_ax, acc_ax):
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    for j in range(len(labels), blocks * cols):
        axes[2 * (j // cols), j % cols].axis("off")
        axes[2 * (j // cols) + 1, j % cols].axis("off")
    handles, names = axes[0, 0].get_legend_handles_labels()
    handles.append(matplotlib.patches.Patch(color="grey", alpha=0.3))
    names.append("95 % bootstrap interval of the mean over seeds")
    fig.suptitle(title, fontsize=11, y=0.995)
    fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.965), fontsize=8, ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save(fig, path)


def gaps(series: list[tuple[str, list[int], list[float]]], title: str, path: Path) -> None:
    """One parted config: the cross-framework loss gap and each backend's gap to its
    rounding-noise control, against step (log scale): chaos grows both alike."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, steps, values in series:
        positive = [(s, v) for s, v in zip(steps, values) if v > 0]
        if positive:
            ax.plot(*zip(*positive), marker="o", ms=3, lw=1.4, label=name,
                    color="black" if name.startswith("jax vs torch") else None)
    ax.axhline(CURVE_TOLERANCE, color="tab:red", lw=0.8, ls=":", label=f"tolerance {CURVE_TOLERANCE:.0%}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("|Δ loss| / starting loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)


def heatmap(groups: dict[str, dict[str, Group]], x: str, y: str, title: str, path: Path) -> None:
    """Mean steps to 100 % exact over two swept fields, one panel per backend ('cap' = never)."""
    backends = sorted({b for g in groups.values() for b in g})
    first = next(iter(groups.values()))
    xs = sorted({g[b].point[x] for g in groups.values() for b in g})
    ys = sorted({g[b].point[y] for g in groups.values() for b in g})
    fig, axes = plt.subplots(1, len(backends), figsize=(4.2 * len(backends), 3.6), squeeze=False)
    cap = next(iter(first.values())).cap
    for ax, backend in zip(axes[0], backends):
        grid = np.full((len(ys), len(xs)), np.nan)
        unsolved = np.zeros_like(grid, dtype=bool)
        for g in groups.values():
            if backend in g:
                group = g[backend]
                i, j = ys.index(group.point[y]), xs.index(group.point[x])
                grid[i, j] = group.solve_step().mean
                unsolved[i, j] = group.solved == 0
        im = ax.imshow(grid, cmap="viridis_r", vmin=0, vmax=cap, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, "never" if unsolved[i, j] else f"{v:.0f}", ha="center", va="center",
                        fontsize=8, color="white" if v < cap / 2 else "black")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs], fontsize=8)
        ax.set_yticks(range(len(ys)), [str(v) for v in ys], fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(backend)
        fig.colorbar(im, ax=ax, label=f"steps to 100 % (cap {cap})")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save(fig, path)


# A run's compile_cache (common.training.Trainer): compiled here, or loaded (a persistent-cache hit,
# or another seed's programs already in the worker's memory). Apart, since one cold compile among
# cache hits is no spread: a mean with a t-interval drew 0.29 ± 1.24 s, below zero.
COMPILE_KINDS = {"compiled": "compiled", "hit": "from cache", "memory": "from cache"}


def compile_spans(group: Group) -> dict[str, tuple[float, float, float, int]]:
    """The group's compile seconds by kind ('compiled', 'from cache'): (median, min, max, runs) over
    its runs that were timed alone; none for eager runs (PyTorch compiles nothing)."""
    by_kind: dict[str, list[float]] = {}
    for r in group.records:
        timing = r["timing"] or {}
        kind = COMPILE_KINDS.get(timing.get("compile_cache") or "", "compiled")
        if timing.get("compile_s") is not None and not contended(r):
            by_kind.setdefault(kind, []).append(timing["compile_s"])
    return {kind: (float(np.median(v)), min(v), max(v), len(v)) for kind, v in by_kind.items()}


def compile_text(group: Group) -> str:
    """compile_spans for a table: '1.20 compiled, 0.03 from cache (x2)', '–' where eager."""
    spans = compile_spans(group)
    return ", ".join(f"{med:.2f} {kind}" + (f" (x{n})" if n > 1 else "")
                     for kind, (med, _, _, n) in sorted(spans.items())) or "–"


def timing(groups: dict[str, dict[str, Group]], title: str, path: Path) -> None:
    """Steady-state steps/s per config and backend (mean, 95 % CI), and compile seconds, compiled
    and from cache apart (median, whiskers min to max: never below zero)."""
    labels = list(groups)
    backends = sorted({b for g in groups.values() for b in g})
    fig, (speed_ax, compile_ax) = plt.subplots(1, 2, figsize=(max(7, 1.3 * len(labels) + 3), 3.8))
    width = 0.8 / len(backends)
    x = np.arange(len(labels))
    for k, backend in enumerate(backends):
        at = x + (k - (len(backends) - 1) / 2) * width
        est = [groups[label][backend].timing("run_steps_per_s") if backend in groups[label]
               else Estimate(None, None, 0) for label in labels]
        speed_ax.bar(at, [e.mean or 0 for e in est], width, yerr=[e.ci or 0 for e in est],
                     color=COLOURS.get(backend), label=backend, capsize=2)
        spans = [compile_spans(groups[label][backend]) if backend in groups[label] else {} for label in labels]
        for kind, hatch, shift in (("compiled", None, -width / 4), ("from cache", "///", width / 4)):
            xs = [a + shift for a, s in zip(at, spans) if kind in s]
            med, lo, hi = (np.array([s[kind][i] for s in spans if kind in s]) for i in range(3))
            if len(xs):
                compile_ax.bar(xs, med, width / 2, yerr=[med - lo, hi - med], color=COLOURS.get(backend),
                               hatch=hatch, alpha=0.6 if hatch else 1.0, capsize=2,
                               label=f"{backend}, {kind}")
    speed_ax.set_ylabel("training steps/s per run (median step)")
    compile_ax.set_ylabel("compile s: median, min-max (PyTorch: eager)")
    if compile_ax.get_legend_handles_labels()[0]:  # none where every run was timed under contention
        compile_ax.legend(fontsize=7)
    for ax in (speed_ax, compile_ax):
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    speed_ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save(fig, path)


def lengths(groups: dict[str, dict[str, Group]], title: str, path: Path) -> None:
    """Exact match vs test length (log axis): a panel per value of the first swept field,
    a line per value of the second (if any) and backend (JAX solid, PyTorch dashed)."""
    first = next(iter(groups.values()))
    fields = list(next(iter(first.values())).point)
    panels = sorted({next(iter(g.values())).point[fields[0]] for g in groups.values()}, key=str)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, panel in zip(axes[0], panels):
        members = [g for g in groups.values() if next(iter(g.values())).point[fields[0]] == panel]
        for i, by_backend in enumerate(members):
            colour = cmap(i / max(1, len(members) - 1))
            for backend, group in sorted(by_backend.items()):
                by_len: dict[int, list[float]] = {}
                for r in group.records:
                    for p in r.get("lengths", []):
                        by_len.setdefault(p["digits"], []).append(p["exact_acc"])
                if not by_len:
                    continue
                xs = sorted(by_len)
                label = " ".join(f"{k}={v}" for k, v in group.point.items() if k != fields[0])
                ax.plot(xs, [np.mean(by_len[x]) for x in xs], STYLES.get(backend, "-"), color=colour,
                        marker="o", ms=3, label=f"{label} ({backend})" if backend == "jax" else None)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{fields[0]}={panel}", fontsize=9)
        ax.set_xlabel("test operand digits")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("exact match (mean over seeds)")
    axes[0, -1].legend(fontsize=6, title="solid jax, dashed torch", title_fontsize=6)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save(fig, path)
