"""summary.csv, report.md and the plots, rebuilt from results.jsonl after every sweep."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from common.cli import write_atomic
from common.config import Config
from compare import plots
from compare.findings import CHECKS, accuracy_at, probe_accuracy
from compare.stats import Group, agreement, group_records
from compare.sweeps import SWEEPS


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "–" if x is None else f"{x:{spec}}"


def _solve_text(g: Group) -> str:
    if not g.solve_step().n:
        return "–"
    if not g.solved:
        return f"never (cap {g.cap})"
    unsolved = g.solve_step().n - g.solved
    return f"{g.solve_step()}" + (f" ({unsolved} never, counted as {g.cap})" if unsolved else "")


def _summary_rows(sweep: str, groups: dict[str, dict[str, Group]]) -> list[dict[str, Any]]:
    rows = []
    for label, by_backend in groups.items():
        agree = agreement(label, by_backend["jax"], by_backend["torch"]) \
            if {"jax", "torch"} <= set(by_backend) else None
        for backend, g in sorted(by_backend.items()):
            final, solve = g.final_exact(), g.solve_step()
            speed, compile_s = g.timing("run_steps_per_s"), g.timing("compile_s")
            rows.append({
                "sweep": sweep, "config": label, "backend": backend, "runs": len(g.records),
                "ok": g.count("ok"), "diverged": g.count("diverged"), "errors": g.count("error"),
                "solved": g.solved, "final_exact_mean": final.mean, "final_exact_ci95": final.ci,
                "solve_step_mean": solve.mean, "solve_step_ci95": solve.ci, "step_cap": g.cap,
                "run_steps_per_s_mean": speed.mean, "run_steps_per_s_ci95": speed.ci,
                "compile_s_mean": compile_s.mean,
                "loss_curve_gap": agree.curve_gap if agree else None,
                "curves": agree.curves if agree else "",
                "final_exact_differs": agree.final_differs if agree else None,
                "solve_step_differs": agree.solve_differs if agree else None,
            })
    return rows


def _lengths_table(groups: dict[str, dict[str, Group]], lengths: list[int]) -> list[str]:
    """Exact match at multiples of the training length N and at fixed lengths (jax / torch)."""
    trained = {label: next(iter(g.values())).records[0]["config"]["digits"] for label, g in groups.items()}
    factors = [f for f in (1, 2, 10, 100, 1000) if all(n * f in lengths for n in trained.values())]
    fixed = [n for n in (10, 100, 1000, 10000) if n in lengths]
    columns = [(f"{f}N" if f > 1 else "N", lambda n, f=f: n * f) for f in factors] + \
              [(f"{n} digits", lambda _, n=n: n) for n in fixed]
    lines = ["**Length generalisation**: exact match on fresh sums, trained on N digits, mean over seeds "
             "(jax / torch).", "", "| config | " + " | ".join(c for c, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for label, by_backend in groups.items():
        cells = []
        for _, length in columns:
            values = [accuracy_at(by_backend[b], length(trained[label])) if b in by_backend else None
                      for b in ("jax", "torch")]
            cells.append(" / ".join("–" if v is None else f"{v:.3f}" for v in values))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def _sweep_section(name: str, records: list[dict[str, Any]], out_dir: Path) -> tuple[str, list]:
    sweep = SWEEPS[name]
    groups = group_records(records)
    lines = [f"## `{name}`: {sweep.about}", ""]
    cfg, defaults = records[0]["config"], Config().to_dict()
    fixed = {k: v for k, v in cfg.items() if k not in records[0]["point"] and k != "seed"
             and v != defaults[k]}
    lines += [f"Settings besides the swept one(s), where they differ from the handout defaults: "
              f"`{', '.join(f'{k}={v}' for k, v in sorted(fixed.items())) or 'none'}`", ""]

    lines += ["| config | backend | runs (ok/diverged/error) | reached 100 % | final exact match | "
              "steps to 100 % | steps/s | compile s |",
              "|---|---|---|---|---|---|---|---|"]
    for label, by_backend in groups.items():
        for backend, g in sorted(by_backend.items()):
            lines.append(f"| {label} | {backend} | {len(g.records)} ({g.count('ok')}/{g.count('diverged')}/"
                         f"{g.count('error')}) | {g.solved}/{len(g.records)} | {g.final_exact()} | "
                         f"{_solve_text(g)} | {g.timing('run_steps_per_s')} | {g.timing('compile_s')} |")
    lines.append("")
    shared = max((r["timing"] or {}).get("runs_in_program", 1) for r in records)
    if shared > 1:
        lines += [f"Steps/s counts steps of single runs: JAX trained up to {shared} seeds at once in "
                  "one vmapped program (`--vmap_seeds`), so its figure is the group's steps/s times "
                  "the seeds in it.", ""]

    agreements = [agreement(label, g["jax"], g["torch"]) for label, g in groups.items()
                  if {"jax", "torch"} <= set(g)]
    if agreements:
        lines += ["**Agreement, JAX vs PyTorch.** Same seed = same initial weights and batches, so "
                  "the loss curves should overlap: *loss gap* is the largest gap between them, as a "
                  "fraction of the starting loss (agree ≤ 2 %). *Differs* means the two backends' "
                  "means are further apart than their 95 % intervals allow.", "",
                  "| config | loss gap | exact-match gap | curves | final accuracy differs | "
                  "steps to 100 % differ |", "|---|---|---|---|---|---|"]
        yes_no = {True: "**yes**", False: "no", None: "n/a"}
        for a in agreements:
            lines.append(f"| {a.label} | {_fmt(a.curve_gap, '.2%')} | {_fmt(a.acc_gap, '.3f')} | "
                         f"{a.curves} | {yes_no[a.final_differs]} | {yes_no[a.solve_differs]} |")
        bad = [a for a in agreements if not a.ok]
        lines += ["", f"Configs where the backends disagree: {', '.join(a.label for a in bad)}."
                  if bad else "The backends agree on every config of this sweep.", ""]

    findings = CHECKS[name](groups)
    if findings:
        lines += ["**The study's findings vs ours.**", "", "| the study | ours | verdict |", "|---|---|---|"]
        lines += [f"| {f.claim} | {f.ours} | {f.verdict} |" for f in findings]
        lines.append("")

    lengths = sorted({p["digits"] for r in records for p in r.get("lengths", [])})
    if lengths:
        lines += _lengths_table(groups, lengths)

    if any(r.get("probe") for r in records):
        lines += ["**Carry probe**: held-out accuracy of a linear probe predicting the carry out of "
                  "each position from each layer's hidden state, mean over seeds (jax / torch); "
                  "*digits alone* is how often a_i + b_i ≥ base gives the carry.", "",
                  "| config | best layer | digits alone |", "|---|---|---|"]
        for label, by_backend in groups.items():
            found = [probe_accuracy(by_backend[b]) if b in by_backend else None for b in ("jax", "torch")]
            best = " / ".join("–" if v is None else f"{v[0]:.4f}" for v in found)
            local = next((f"{v[1]:.4f}" for v in found if v), "–")
            lines.append(f"| {label} | {best} | {local} |")
        lines.append("")

    title = f"{name}: {sweep.about}"
    plots.curves(groups, title, out_dir / f"{name}_curves.png")
    lines.append(f"![curves]({name}_curves.png)")
    if sweep.is_heatmap:
        x, y = list(records[0]["point"])
        plots.heatmap(groups, x, y, title, out_dir / f"{name}_heatmap.png")
        lines.append(f"![heatmap]({name}_heatmap.png)")
    if lengths:
        plots.lengths(groups, title, out_dir / f"{name}_lengths.png")
        lines.append(f"![lengths]({name}_lengths.png)")
    plots.timing(groups, title, out_dir / f"{name}_timing.png")
    lines += [f"![timing]({name}_timing.png)", ""]
    return "\n".join(lines), _summary_rows(name, groups)


def write(out_dir: Path, records: list[dict[str, Any]], header: list[str]) -> None:
    """Rebuild summary.csv, report.md and the PNGs from these records (one or more sweeps)."""
    by_sweep: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_sweep.setdefault(r["sweep"], []).append(r)
    sections, rows = [], []
    for name in (n for n in SWEEPS if n in by_sweep):
        text, sweep_rows = _sweep_section(name, by_sweep[name], out_dir)
        sections.append(text)
        rows += sweep_rows

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out_dir / "summary.csv", buf.getvalue())
    write_atomic(out_dir / "report.md", "\n".join(header + [""] + sections))
