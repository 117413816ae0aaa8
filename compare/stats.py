"""From run records to per-config summaries and JAX-vs-PyTorch agreement verdicts."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from typing import Any

# Two-sided 95 % Student t quantiles by degrees of freedom (n - 1); the normal 1.96 past 30.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# Curves "agree" when the largest loss gap stays under this fraction of the starting loss.
CURVE_TOLERANCE = 0.02


def t95(dof: int) -> float:
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


@dataclasses.dataclass(frozen=True)
class Estimate:
    mean: float | None
    ci: float | None  # half-width of the 95 % interval; None with fewer than 2 values
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Estimate:
        if not values:
            return cls(None, None, 0)
        mean = statistics.fmean(values)
        ci = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)) \
            if len(values) > 1 else None
        return cls(mean, ci, len(values))

    def __str__(self) -> str:
        if self.mean is None:
            return "–"
        digits = ".3f" if abs(self.mean) < 10 else ".0f"
        return f"{self.mean:{digits}}" + (f" ± {self.ci:{digits}}" if self.ci is not None else "")

    def differs_from(self, other: Estimate, resolution: float = 0.0) -> bool | None:
        """Means further apart than the two intervals allow; None if either has no interval.

        `resolution` is the measurement's granularity (e.g. the eval interval for steps to
        100 %): two zero-variance groups one eval apart do not count as different.
        """
        if self.ci is None or other.ci is None:
            return None
        return abs(self.mean - other.mean) > max(math.hypot(self.ci, other.ci), resolution)


@dataclasses.dataclass
class Group:
    """All seeds of one config point on one backend."""
    label: str
    point: dict[str, Any]
    backend: str
    records: list[dict[str, Any]]

    @property
    def cap(self) -> int:
        return self.records[0]["config"]["steps"]

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.records)

    @property
    def solved(self) -> int:
        return sum(bool(r["timing"] and r["timing"]["solve_step"]) for r in self.records)

    def final_exact(self) -> Estimate:
        # A diverged run scores 0: it ends with a non-finite loss, not with an answer.
        return Estimate.of([0.0 if r["status"] == "diverged" else r["final"]["exact_acc"] or 0.0
                            for r in self.records if r["status"] != "error"])

    def solve_step(self) -> Estimate:
        """Steps to 100 % exact, counting a run that never got there as the step cap."""
        return Estimate.of([(r["timing"] or {}).get("solve_step") or self.cap
                            for r in self.records if r["status"] != "error"])

    def timing(self, key: str) -> Estimate:
        values = (_timing_value(r["timing"], key) for r in self.records if r["timing"])
        return Estimate.of([v for v in values if v is not None])


def _timing_value(timing: dict[str, Any], key: str) -> float | None:
    if key == "run_steps_per_s" and key not in timing and timing.get("steps_per_s"):
        return timing["steps_per_s"]  # a record from before seeds could share a program
    return timing.get(key)


def group_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Group]]:
    """label -> backend -> Group, in the order the records' points first appear."""
    groups: dict[str, dict[str, Group]] = defaultdict(dict)
    for r in records:
        g = groups[r["label"]].setdefault(r["backend"], Group(r["label"], r["point"], r["backend"], []))
        g.records.append(r)
    return groups


@dataclasses.dataclass
class Agreement:
    label: str
    curve_gap: float | None       # max |Δ loss| / first loss, over seeds and eval steps
    acc_gap: float | None         # max |Δ exact accuracy| over seeds and eval steps
    curves: str                   # "agree", "DISAGREE (…)", or why it does not apply
    final_differs: bool | None    # across seeds, beyond the CIs
    solve_differs: bool | None

    @property
    def ok(self) -> bool:
        return not self.curves.startswith("DISAGREE") and not self.final_differs and not self.solve_differs


def _curve_gaps(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
    by_step = {p["step"]: p for p in b["curve"]}
    pairs = [(p, by_step[p["step"]]) for p in a["curve"] if p["step"] in by_step]
    if not pairs:
        return 0.0, 0.0
    start = max(pairs[0][1]["loss"], 1e-12)
    loss_gap = max(abs(p["loss"] - q["loss"]) for p, q in pairs) / start
    acc_gap = max(abs(p["exact_acc"] - q["exact_acc"]) for p, q in pairs)
    return loss_gap, acc_gap


def agreement(label: str, jax: Group, torch: Group) -> Agreement:
    """(1) Same seed => same init and batches: how far apart are the two loss curves?
    (2) Across seeds: do final accuracy and steps to 100 % differ beyond their CIs?"""
    curves, loss_gap, acc_gap = "agree", None, None
    if jax.records[0]["config"]["init"] != "shared":
        curves = "n/a (native init: different starting weights)"
    else:
        by_seed = {r["config"]["seed"]: r for r in torch.records}
        problems, gaps = [], []
        for a in jax.records:
            b = by_seed.get(a["config"]["seed"])
            if b is None:
                continue
            seed = a["config"]["seed"]
            if "error" in (a["status"], b["status"]):
                problems.append(f"seed {seed} errored")
            elif a["status"] != b["status"] or a["diverged_step"] != b["diverged_step"]:
                problems.append(f"seed {seed}: jax {a['status']} vs torch {b['status']}")
            else:
                gaps.append(_curve_gaps(a, b))
        if gaps:
            loss_gap, acc_gap = max(g[0] for g in gaps), max(g[1] for g in gaps)
            if loss_gap > CURVE_TOLERANCE:
                problems.append(f"loss gap {loss_gap:.1%} of the starting loss")
        if problems:
            curves = "DISAGREE (" + "; ".join(problems) + ")"
    return Agreement(label, loss_gap, acc_gap, curves,
                     jax.final_exact().differs_from(torch.final_exact()),
                     jax.solve_step().differs_from(torch.solve_step(),
                                                   resolution=jax.records[0]["config"]["eval_every"]))
