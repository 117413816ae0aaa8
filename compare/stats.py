"""From run records to per-config summaries and JAX-vs-PyTorch agreement verdicts."""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from common import tasks
from common.backends import BACKENDS
from common.threads import CONTENDED

# Two-sided 95 % Student t quantiles by degrees of freedom (n - 1); the normal 1.96 past 30.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


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
        return sum(bool(r["timing"] and r["timing"].get("solve_step")) for r in self.records)  # adder only

    def final_exact(self) -> Estimate:
        """The runs' accuracy (`accuracy`): final exact match for the adder, best test accuracy
        for sentiment."""
        return Estimate.of([accuracy(r) for r in self.records if r["status"] != "error"])

    def solve_step(self) -> Estimate:
        """How fast it learnt (`learning_step`): steps to 100 % exact for the adder (a run that never
        got there counts as the step cap); for sentiment, steps to within 1 point of the best."""
        return Estimate.of([learning_step(r, self.cap) for r in self.records if r["status"] != "error"])

    def timing(self, key: str) -> Estimate:
        """Over the runs whose timing was their own: a run that other processes competed with for
        its cores (contention above CONTENDED) is left out."""
        values = (_timing_value(r["timing"], key) for r in self.records if r["timing"] and not contended(r))
        return Estimate.of([v for v in values if v is not None])

    def contended(self) -> int:
        return sum(contended(r) for r in self.records)


def accuracy(r: dict[str, Any]) -> float:
    """A run's accuracy, as its task reads it (common.tasks.Task.accuracy)."""
    return tasks.of(r).accuracy(r)


def learning_step(r: dict[str, Any], cap: int) -> float:
    """How many steps it took, as its task reads it (common.tasks.Task.learning_step)."""
    return tasks.of(r).learning_step(r, cap)


def contended(record: dict[str, Any]) -> bool:
    """Was this run timed while other processes used its cores (common.threads.CoreWatch)?"""
    share = (record["timing"] or {}).get("contention")
    return share is not None and share > CONTENDED


def _timing_value(timing: dict[str, Any], key: str) -> float | None:
    if key == "run_steps_per_s" and key not in timing and timing.get("steps_per_s"):
        return timing["steps_per_s"]  # a record from before seeds could share a program
    return timing.get(key)


# What a record is for: a run of the sweep, a rounding-noise control of one, the float64 run
# that checks whether a float32 parting was rounding, or the float64 run's own rounding-noise
# control (the same control in float64) that checks whether a float64 parting was rounding
# (records from before roles are main runs).
MAIN, CONTROL, CONFIRM64, CONTROL64 = "main", "control", "confirm64", "control64"


def role(record: dict[str, Any]) -> str:
    return record.get("role", MAIN)


def group_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Group]]:
    """label -> backend -> Group of the sweep's own runs, in the order their points first appear."""
    groups: dict[str, dict[str, Group]] = defaultdict(dict)
    for r in records:
        if role(r) == MAIN:
            g = groups[r["label"]].setdefault(r["backend"], Group(r["label"], r["point"], r["backend"], []))
            g.records.append(r)
    return groups


def extra_runs(records: list[dict[str, Any]], kind: str) -> dict[str, dict[tuple[str, int], dict[str, Any]]]:
    """label -> (backend, seed) -> the record of that role (CONTROL, CONFIRM64 or CONTROL64)."""
    out: dict[str, dict[tuple[str, int], dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if role(r) == kind:
            out[r["label"]][(r["backend"], r["config"]["seed"])] = r
    return out


# --------------------------------------------------------------------- JAX vs PyTorch agreement

# Same-seed loss curves "take the same trajectory" while their largest gap stays under this
# fraction of the starting loss.
CURVE_TOLERANCE = 0.02
# Where same-seed curves part, three kinds of evidence say whether rounding explains it:
# - A control (common/controls.py): the same backend and seed, changed only at rounding level.
#   Its gap to the plain run is one draw of how far rounding carries this config. The parting is
#   explained when the cross-framework gap is at most NOISE_FACTOR times the larger of the two
#   backends' control gaps. Draws scatter widely: on the quick `all` sweep's 10 parted configs
#   the two backends' control gaps at one seed differed by up to 173x (relu), and the cross gap
#   was 0.57-1.56x the larger control gap in 9 of them, 20x in one (lstm, which float64 settles).
#   So a control can explain a parting, but a small control gap alone convicts nobody.
# - float64: the same seed on both backends in float64, whose rounding is 2^29 times finer. If
#   its curves stay within CURVE_TOLERANCE, the math agrees and float32 rounding made the parting.
#   Chaos amplifies float64 rounding too (there: layers 10 parted by 2.3 % in float64, lr 0.5 by
#   39 %), so float64 curves that part prove nothing by themselves either.
# - A float64 control (CONTROL64): where the float64 curves part, the float32 control's kind
#   (ulp: one float64 ulp, 2^-52 relative; reorder: the same row order) on each backend in
#   float64, read against that backend's float64 run by the same NOISE_FACTOR rule. Without it,
#   "the float32 control is small and float64 parts" convicted on two non-proofs: text-length
#   cell=rnn filler=10 (hidden 128, 600 steps) was called DIFFERENT with seed 1 parting by 19 %,
#   its float32 control by 0.42 % (one small draw) and float64 by 5.1 %; yet a float64 lockstep
#   trace of that seed keeps both backends' parameters within 2e-14 (relative) for 449 steps,
#   then the difference grows geometrically from rounding level (2e-13, 1.8e-12, 5e-11, 3e-10 ...
#   0.2 by step 500): chaos amplifying float64 rounding, not different math.
# DIFFERENT needs all three: the float32 control does not explain the gap, it survives in float64,
# and float64 rounding alone (the float64 control) does not explain the float64 gap. A float64
# parting without its float64 control (e.g. results.jsonl written before CONTROL64 existed, or
# --confirm64 none after the float64 runs) is UNEXPLAINED, never DIFFERENT: rerunning the same
# command resumes and makes the missing float64 controls.
NOISE_FACTOR = 3.0
# Across seeds, the frameworks are "the same" when the 90 % interval of the difference in means
# (two one-sided tests at 5 %) lies inside these margins.
ACCURACY_MARGIN = 0.02
SAME, NOISE, DIFFERENT, UNEXPLAINED, NONE = ("same trajectory", "parted within rounding noise", "DIFFERENT",
                                             "parted, not yet explained", "no verdict")
VERDICTS = (SAME, NOISE, DIFFERENT, UNEXPLAINED, NONE)


@dataclasses.dataclass(frozen=True)
class Parting:
    """How the loss curves of two runs of one seed compare."""
    seed: int
    gap: float                # max |Δ loss| / starting loss over the shared eval steps; inf if
    parted_at: int | None     # one diverged and the other did not; first step over tolerance
    acc_gap: float            # max |Δ exact accuracy| over the shared eval steps

    @property
    def parted(self) -> bool:
        return self.gap > CURVE_TOLERANCE


def parting(a: dict[str, Any], b: dict[str, Any]) -> Parting:
    """Compare two ok/diverged runs of one seed; a status or divergence-step mismatch parts them
    at the first divergence."""
    seed = a["config"]["seed"]
    if a["status"] != b["status"] or a["diverged_step"] != b["diverged_step"]:
        steps = [s for s in (a["diverged_step"], b["diverged_step"]) if s]
        return Parting(seed, math.inf, min(steps) if steps else None, 1.0)
    steps, gaps = gap_curve(a, b)
    if not steps:
        return Parting(seed, 0.0, None, 0.0)
    parted_at = next((step for step, gap in zip(steps, gaps) if gap > CURVE_TOLERANCE), None)
    key = tasks.of(a).accuracy_key
    return Parting(seed, max(gaps), parted_at, max(abs(p[key] - q[key]) for p, q in _shared_evals(a, b)))


def _shared_evals(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[dict, dict]]:
    by_step = {p["step"]: p for p in b["curve"]}
    return [(p, by_step[p["step"]]) for p in a["curve"] if p["step"] in by_step]


def gap_curve(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[int], list[float]]:
    """|Δ loss| / starting loss (b's) at each eval step both runs have."""
    pairs = _shared_evals(a, b)
    if not pairs:
        return [], []
    start = max(pairs[0][1]["loss"], 1e-12)
    return [p["step"] for p, _ in pairs], [abs(p["loss"] - q["loss"]) / start for p, q in pairs]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """jax − torch across seeds: the difference of means with its 95 % interval, and whether it
    is shown the same (90 % interval inside ±margin: two one-sided tests at 5 %), shown different
    (95 % interval excludes 0, by more than the measurement's resolution) or neither.

    Seeds pair up: seed k starts both backends from the same weights on the same batches, so
    where every seed ran on both, the interval is the paired one (of the per-seed differences);
    otherwise Welch's (unequal variances)."""
    diff: float | None
    ci95: tuple[float, float] | None
    margin: float
    verdict: str                 # "same", "different", "inconclusive"
    seeds_needed: int | None     # per backend, to decide an inconclusive one (None: cannot say)
    paired: bool = False

    def __str__(self) -> str:
        if self.diff is None:
            return "–"
        ci = f" [{self.ci95[0]:+.3g}, {self.ci95[1]:+.3g}]" if self.ci95 else ""
        more = f"; ~{self.seeds_needed} seeds would decide" if self.seeds_needed else ""
        return f"{self.diff:+.3g}{ci}: {self.verdict}{more}"


def _welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(difference of means, its standard error, Welch–Satterthwaite degrees of freedom)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else math.inf
    return statistics.fmean(a) - statistics.fmean(b), se, dof


def _t(p: float, dof: float) -> float:
    from scipy.stats import t  # noqa: PLC0415  (imported where needed: the workers never need it)

    return float(t.ppf(p, dof)) if math.isfinite(dof) else float(t.ppf(p, 1e9))


def compare_means(a: list[float], b: list[float], margin: float, resolution: float = 0.0,
                  paired: bool = False) -> Comparison:
    """Means of a and b (seeds of each backend; with `paired`, a[k] and b[k] are one seed), and
    two one-sided tests; see Comparison."""
    if len(a) < 2 or len(b) < 2:
        return Comparison(None, None, margin, "inconclusive", None, paired)
    if paired:
        d = [x - y for x, y in zip(a, b, strict=True)]
        diff, se, dof = statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d)), len(d) - 1
        if se == 0:
            dof = math.inf
    else:
        diff, se, dof = _welch(a, b)
    ci95 = (diff - _t(0.975, dof) * se, diff + _t(0.975, dof) * se)
    half90 = _t(0.95, dof) * se
    if abs(diff) + half90 < margin:
        return Comparison(diff, ci95, margin, "same", None, paired)
    if (ci95[0] > 0 or ci95[1] < 0) and abs(diff) > resolution:
        return Comparison(diff, ci95, margin, "different", None, paired)
    # Seeds per backend at which this spread would decide: the 90 % interval inside the margin
    # if the difference is smaller than the margin, else the 95 % interval clear of 0.
    spread = se * math.sqrt(len(a)) if paired else math.sqrt(statistics.variance(a) + statistics.variance(b))
    room, z = (margin - abs(diff), 1.645) if abs(diff) < margin else (abs(diff), 1.96)
    needed = math.ceil((z * spread / room) ** 2) if room > 0 and spread > 0 else None
    return Comparison(diff, ci95, margin, "inconclusive", max(needed, len(a) + 1) if needed else None, paired)


@dataclasses.dataclass
class Agreement:
    label: str
    verdict: str                     # one of VERDICTS
    why: str                         # the evidence, in one sentence
    worst: Parting | None            # the seed whose curves parted most
    noise_gap: float | None          # the larger backend's control gap at that seed
    float64_gap: float | None        # the float64 runs' gap at that seed
    final: Comparison                # final exact match, jax − torch across seeds
    solve: Comparison                # steps to 100 %, jax − torch across seeds
    errors: list[str]
    noise64_gap: float | None = None  # the larger backend's float64 control gap (to its float64 run)

    @property
    def curve_gap(self) -> float | None:
        return self.worst.gap if self.worst else None

    @property
    def acc_gap(self) -> float | None:
        return self.worst.acc_gap if self.worst else None

    @property
    def ok(self) -> bool:
        return self.verdict in (SAME, NOISE)


def _by_seed(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["config"]["seed"]: r for r in records}


def agreement(label: str, jax: Group, torch: Group,
              controls: dict[tuple[str, int], dict[str, Any]] | None = None,
              float64: dict[tuple[str, int], dict[str, Any]] | None = None,
              controls64: dict[tuple[str, int], dict[str, Any]] | None = None,
              compare: Callable[..., Comparison] | None = None) -> Agreement:
    """The verdict on one config: do the two frameworks train the same?

    (1) Same seed => same initial weights and batches: the loss curves should overlap. Where
    they part, the control runs ((backend, seed) -> record: the same backend, perturbed only at
    rounding level), the float64 runs of that seed and, where those part too, their float64
    controls say whether rounding explains it (see NOISE_FACTOR).
    (2) Across seeds: final exact match and steps to 100 %, shown the same, different or neither:
    by compare_means on every seed, or by `compare` (seed -> value of each backend's error-free
    runs, margin, resolution -> Comparison: compare.sequential's looks stage by stage).
    """
    controls, float64, controls64 = controls or {}, float64 or {}, controls64 or {}
    cfg = jax.records[0]["config"]
    cap = cfg["steps"]
    if compare is None:
        final = compare_means(*_seeds(jax, torch, accuracy), ACCURACY_MARGIN, paired=_paired(jax, torch))
        solve = compare_means(*_seeds(jax, torch, lambda r: learning_step(r, cap)),
                              margin=cfg["eval_every"], resolution=cfg["eval_every"], paired=_paired(jax, torch))
    else:
        a, b = _ok_seeds(jax), _ok_seeds(torch)
        final = compare({k: accuracy(r) for k, r in a.items()}, {k: accuracy(r) for k, r in b.items()},
                        ACCURACY_MARGIN)
        solve = compare({k: learning_step(r, cap) for k, r in a.items()},
                        {k: learning_step(r, cap) for k, r in b.items()}, cfg["eval_every"], cfg["eval_every"])
    errors = [f"{r['backend']} seed {r['config']['seed']} errored"
              for r in jax.records + torch.records if r["status"] == "error"]
    result = functools.partial(Agreement, label, final=final, solve=solve, errors=errors)
    if cfg["init"] != "shared":
        return result(NONE, "native init: the backends start from different weights, so only the "
                      "comparison across seeds applies", None, None, None)
    other = _by_seed(torch.records)
    partings = [parting(a, other[a["config"]["seed"]]) for a in jax.records
                if a["config"]["seed"] in other and "error" not in (a["status"], other[a["config"]["seed"]]["status"])]
    if not partings:
        return result(NONE, "no seed ran on both backends without an error", None, None, None)
    worst = max(partings, key=lambda p: p.gap)
    names = tasks.of(jax.records[0]).measures
    across = [f"{name} differs across seeds ({c})" for name, c in zip(names, (final, solve))
              if c.verdict == "different"]
    if not worst.parted:
        if across:
            return result(DIFFERENT, "; ".join(across), worst, None, None)
        return result(SAME, f"every seed's loss curves stay within {worst.gap:.2%} of the starting loss "
                      f"(tolerance {CURVE_TOLERANCE:.0%})", worst, None, None)

    seed = worst.seed
    noise = _control_gap(jax.records, torch.records, controls, seed)
    runs64 = [float64.get((backend, seed)) for backend in ("jax", "torch")]
    f64 = noise64 = None
    if all(r and r["status"] != "error" for r in runs64):  # an errored run is no evidence
        f64 = parting(*runs64).gap
        noise64 = _control_gap(runs64[:1], runs64[1:], controls64, seed)
    result = functools.partial(result, noise64_gap=noise64)
    at = f"seed {seed} parts at step {worst.parted_at}, gap {_pct(worst.gap)}"
    explained = noise is not None and worst.gap <= NOISE_FACTOR * noise
    if across:
        return result(DIFFERENT, "; ".join(across) + f"; {at}", worst, noise, f64)
    if f64 is not None and f64 <= CURVE_TOLERANCE:
        return result(NOISE, f"{at}; in float64 the same seed's curves stay within {f64:.1e} of each other",
                      worst, noise, f64)
    if explained:
        return result(NOISE, f"{at}; rounding alone (a control) parts a backend from itself by {_pct(noise)}",
                      worst, noise, f64)
    if f64 is not None and noise64 is not None and f64 <= NOISE_FACTOR * noise64:
        return result(NOISE, f"{at}; float64 parts too ({_pct(f64)}), but so does float64 rounding alone "
                      f"(a float64 control parts a backend from itself by {_pct(noise64)}): chaotic, not "
                      "different math", worst, noise, f64)
    control = ("no control run" if noise is None else
               f"its rounding-noise controls did not part ({_pct(noise)})" if math.isinf(worst.gap) else
               f"{worst.gap / noise:.1f}x its rounding-noise control ({_pct(noise)})" if noise else
               "its rounding-noise controls stay identical to their runs")
    if f64 is None:
        return result(UNEXPLAINED, f"{at}, {control}; no float64 run yet", worst, noise, f64)
    if noise is None:
        return result(UNEXPLAINED, f"{at}, {control}, float64 parts too ({_pct(f64)}); no control yet",
                      worst, noise, f64)
    if noise64 is None:
        return result(UNEXPLAINED, f"{at}, {control}, float64 parts too ({_pct(f64)}); no float64 control yet",
                      worst, noise, f64)
    control64 = (f"its float64 rounding-noise controls did not part ({_pct(noise64)})" if math.isinf(f64) else
                 f"{f64 / noise64:.1f}x its float64 rounding-noise control ({_pct(noise64)})" if noise64 else
                 "its float64 rounding-noise controls stay identical to their runs")
    return result(DIFFERENT, f"{at}, {control}, and the float64 curves part too ({_pct(f64)}), {control64}",
                  worst, noise, f64)


def agreements(records: list[dict[str, Any]], compare: Callable[..., Comparison] | None = None) -> list[Agreement]:
    """The verdict on every config of these records (one sweep) that ran on both backends
    (`compare`: see agreement)."""
    controls, float64, controls64 = (extra_runs(records, kind) for kind in (CONTROL, CONFIRM64, CONTROL64))
    return [agreement(label, g["jax"], g["torch"], controls.get(label), float64.get(label), controls64.get(label),
                      compare)
            for label, g in group_records(records).items() if set(BACKENDS) <= set(g)]


def _ok_seeds(g: Group) -> dict[int, dict[str, Any]]:
    return {r["config"]["seed"]: r for r in g.records if r["status"] != "error"}


def _paired(jax: Group, torch: Group) -> bool:
    """Every seed that ran without an error ran on both backends (same weights, same batches)."""
    return _ok_seeds(jax).keys() == _ok_seeds(torch).keys()


def _seeds(jax: Group, torch: Group, value) -> tuple[list[float], list[float]]:
    """value() of each backend's error-free runs, in seed order (pairs line up when paired)."""
    a, b = _ok_seeds(jax), _ok_seeds(torch)
    return [value(a[k]) for k in sorted(a)], [value(b[k]) for k in sorted(b)]


def _pct(gap: float) -> str:
    return "a different outcome (one diverged)" if math.isinf(gap) else f"{gap:.2%}"




def _control_gap(jax_records, torch_records, controls, seed: int) -> float | None:
    """The larger of the two backends' gaps between a run and its control, at this seed."""
    gaps = []
    for backend, records in (("jax", jax_records), ("torch", torch_records)):
        run, control = _by_seed(records).get(seed), controls.get((backend, seed))
        if run and control and "error" not in (run["status"], control["status"]):
            gaps.append(parting(control, run).gap)
    return max(gaps) if gaps else None
