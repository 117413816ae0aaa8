"""Seeds in stages until jax − torch is decided, with error rates that hold however many looks.

`compare.run --seeds auto` trains MIN_SEEDS seeds of every config, then adds seeds, stage by
stage, only where a jax − torch comparison is still inconclusive, up to a cap. Looking after
every stage and stopping when the answer looks decided would inflate the error rates (optional
stopping: tests/test_sequential.py shows the naive "add seeds until the 95 % interval excludes
0" calling identical backends different far more often than 5 %). So each look has its own,
stricter boundary, from a group-sequential design:

- Stages double the seeds (3, 6, 12, ... and the cap): few looks, each worth its cost.
- Boundaries: Lan & DeMets (1983) alpha spending with the O'Brien & Fleming (1979)-type spending
  function alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t = seeds / cap (Jennison & Turnbull
  2000, "Group Sequential Methods with Applications to Clinical Trials", ch. 7). Little is spent
  early (3 of 12 seeds: 9e-5), so the last look is nearly the fixed design's.
  * *different* (H0: no difference): two-sided, alpha/2 = 2.5 % spent on each side;
  * *same* (H0: |difference| >= margin): two one-sided tests, each spending alpha = 5 %, the
    group-sequential TOST (Jennison & Turnbull 2000, ch. 6.3).
  A procedure that stops for either verdict stops each test early, which only lowers the chance
  that it ever crosses its boundary: each error rate stays at or under its own alpha.
- Unknown variance, few seeds: the normal boundaries become nominal one-sided levels
  p_k = 1 - Phi(c_k), applied as Student t quantiles at each stage's degrees of freedom (paired:
  n - 1; Welch's otherwise): the "significance level approach" of Jennison & Turnbull 2000,
  ch. 3.8. An approximation; tests/test_sequential.py checks by simulation that the error rates
  hold at these sample sizes (3 to 12 seeds, paired and unpaired, several spreads).
- A stage's interval is the repeated confidence interval (Jennison & Turnbull 2000, ch. 9) at
  its *different* boundary: it excludes 0 exactly when that stage calls the two different, and
  all stages' intervals cover the true difference together with probability >= 95 %.

A comparison decided at a stage keeps that verdict: seeds added later for another comparison of
the same config are not looked at by it (that would be another look).

Zero spread (every seed gives both backends the same value, as identical trajectories do) has
standard error 0 and decides at the first look: *same* if the values agree within the margin,
*different* if they differ by more than the resolution. That rests on the runs themselves, not on
a spread; the t approximation says nothing about rare seeds that would part far (a point mass at
0 with rare excursions), and no design of a dozen seeds could rule them out.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from compare.stats import Comparison, agreements, compare_means

ALPHA = 0.05
MIN_SEEDS = 3   # two for a spread, one more for a t quantile of finite width
MAX_SEEDS = 12  # --max_seeds default
INCONCLUSIVE, SAME, DIFFERENT = 0, 1, 2
WORDS = {INCONCLUSIVE: "inconclusive", SAME: "same", DIFFERENT: "different"}


def stages(max_seeds: int, first: int = MIN_SEEDS) -> tuple[int, ...]:
    """Seeds per config after each stage: doubling from `first`, ending at the cap."""
    if max_seeds < first:
        raise ValueError(f"a cap of {max_seeds} seeds is below the first stage's {first}")
    out = [first]
    while out[-1] * 2 < max_seeds:
        out.append(out[-1] * 2)
    return tuple(out + [max_seeds]) if out[-1] != max_seeds else tuple(out)


def spent(fraction: float, alpha: float) -> float:
    """O'Brien–Fleming-type alpha spending (Lan & DeMets 1983): the error allowed by `fraction`
    of the information, reaching `alpha` at 1."""
    from scipy.stats import norm  # noqa: PLC0415  (the workers never need scipy)

    return float(2 * norm.sf(norm.isf(alpha / 2) / math.sqrt(fraction)))


@functools.lru_cache(maxsize=None)
def normal_boundaries(fractions: tuple[float, ...], alpha: float, grid: int = 2001) -> tuple[float, ...]:
    """One-sided boundaries c_k on the canonical joint normal statistics Z_k (corr(Z_i, Z_j) =
    sqrt(t_i / t_j)) such that the chance of first crossing at look k is alpha(t_k) - alpha(t_{k-1}).

    By the recursive numerical integration of Armitage, McPherson & Rowe (1969) (Jennison &
    Turnbull 2000, ch. 19): S_k = Z_k sqrt(t_k) has independent normal increments, so the
    density of S_k on the paths not yet stopped is the previous one convolved with the increment,
    on a grid (trapezoid rule: deterministic, boundaries good to ~1e-6)."""
    from scipy.integrate import trapezoid  # noqa: PLC0415  (the workers never need scipy)
    from scipy.optimize import brentq  # noqa: PLC0415
    from scipy.stats import norm  # noqa: PLC0415

    bounds: list[float] = []
    s = density = None  # grid of S_{k-1} below its boundary, and its sub-density there
    before = 0.0
    for k, t in enumerate(fractions):
        target = spent(t, alpha) - (spent(before, alpha) if k else 0.0)
        if k == 0:
            b = float(norm.isf(target)) * math.sqrt(t)
        else:
            step = math.sqrt(t - before)
            b = brentq(lambda b: trapezoid(density * norm.sf((b - s) / step), s) - target, -12.0, 12.0, xtol=1e-10)
        new = np.linspace(-12 * math.sqrt(t), b, grid)
        density = (norm.pdf(new, scale=math.sqrt(t)) if k == 0 else
                   trapezoid(density * norm.pdf((new[:, None] - s) / step) / step, s, axis=1))
        s, before = new, t
        bounds.append(b / math.sqrt(t))
    return tuple(bounds)


@dataclasses.dataclass(frozen=True)
class Design:
    """The stages and the nominal one-sided levels of each look, for both verdicts."""
    stages: tuple[int, ...]
    alpha: float = ALPHA

    @classmethod
    def up_to(cls, max_seeds: int) -> Design:
        return cls(stages(max_seeds))

    @property
    def cap(self) -> int:
        return self.stages[-1]

    def levels(self, alpha: float) -> tuple[float, ...]:
        from scipy.stats import norm  # noqa: PLC0415

        fractions = tuple(n / self.cap for n in self.stages)
        return tuple(float(norm.sf(c)) for c in normal_boundaries(fractions, alpha))

    @functools.cached_property
    def different_levels(self) -> tuple[float, ...]:
        return self.levels(self.alpha / 2)

    @functools.cached_property
    def same_levels(self) -> tuple[float, ...]:
        return self.levels(self.alpha)

    def stage_of(self, seeds: int) -> int | None:
        """The last stage (index) whose seeds all ran, if any."""
        done = [k for k, n in enumerate(self.stages) if n <= seeds]
        return done[-1] if done else None


def moments(a: np.ndarray, b: np.ndarray, paired: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a − b difference of means, its standard error, degrees of freedom) over the last axis,
    as compare.stats.compare_means reckons them: paired by seed, else Welch's. Zero spread gives
    se 0 and infinite degrees of freedom."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if paired:
            d = a - b
            n = d.shape[-1]
            diff, se = d.mean(-1), d.std(-1, ddof=1) / math.sqrt(n)
            dof = np.where(se > 0, n - 1.0, np.inf)
        else:
            va, vb = a.var(-1, ddof=1) / a.shape[-1], b.var(-1, ddof=1) / b.shape[-1]
            diff, se = a.mean(-1) - b.mean(-1), np.sqrt(va + vb)
            dof = np.where(se > 0, (va + vb) ** 2 / (va**2 / (a.shape[-1] - 1) + vb**2 / (b.shape[-1] - 1)), np.inf)
    return diff, se, dof


def quantile(level: float, dof: np.ndarray) -> np.ndarray:
    """The one-sided t boundary for this nominal level (the normal's where dof is infinite)."""
    from scipy.stats import t  # noqa: PLC0415

    return t.isf(level, np.where(np.isfinite(dof), dof, 1e9))


def verdict(diff, se, dof, different_level: float, same_level: float, margin: float,
            resolution: float = 0.0) -> np.ndarray:
    """One look: SAME when |diff| + t·se < margin at the *same* level (both one-sided tests),
    else DIFFERENT when the interval at the *different* level excludes 0 and |diff| exceeds the
    measurement's resolution (as compare_means: same is checked first), else INCONCLUSIVE."""
    same = np.abs(diff) + quantile(same_level, dof) * se < margin
    different = (np.abs(diff) > quantile(different_level, dof) * se) & (np.abs(diff) > resolution)
    return np.where(same, SAME, np.where(different, DIFFERENT, INCONCLUSIVE))


def decide(design: Design, a: np.ndarray, b: np.ndarray, paired: bool, margin: float,
           resolution: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of per-seed results (rows; seed k in column k, up to the cap) run through the
    design: each row's verdict and the stage index it was decided at (the last stage if never)."""
    final = np.full(a.shape[:-1], INCONCLUSIVE)
    at = np.full(a.shape[:-1], len(design.stages) - 1)
    for k, n in enumerate(design.stages):
        now = verdict(*moments(a[..., :n], b[..., :n], paired), design.different_levels[k],
                      design.same_levels[k], margin, resolution)
        fresh = (final == INCONCLUSIVE) & (now != INCONCLUSIVE)
        final, at = np.where(fresh, now, final), np.where(fresh, k, at)
    return final, at


@dataclasses.dataclass(frozen=True)
class Staged(Comparison):
    """A Comparison reached by the design: the look it was decided at (or the last look made),
    its seeds, and, undecided, the seeds the next stage would add (None at the cap)."""
    stage: int = 0
    stages: int = 1
    seeds: int = 0
    next_seeds: int | None = None
    resolution: float = 0.0

    @property
    def decided(self) -> bool:
        return self.verdict != "inconclusive"

    @property
    def at_cap(self) -> bool:
        return not self.decided and self.next_seeds is None

    @property
    def why_open(self) -> str:
        """What keeps an undecided comparison open, measured."""
        if self.diff is None:
            return "fewer than 2 error-free seeds on a backend"
        if (self.ci95[0] > 0 or self.ci95[1] < 0) and abs(self.diff) <= self.resolution:
            return (f"its interval excludes 0, but the difference is within the measurement's resolution "
                    f"({self.resolution:g}), and its spread keeps it from within the margin")
        return f"its spread: ~{self.seeds_needed} seeds would decide a fixed design" if self.seeds_needed else \
            "its spread"

    def __str__(self) -> str:
        if self.diff is None:
            return f"– ({self.seeds} seeds)"
        ci = f" [{self.ci95[0]:+.3g}, {self.ci95[1]:+.3g}]" if self.ci95 else ""
        where = f"stage {self.stage + 1}/{self.stages}, {self.seeds} seeds"
        if self.decided:
            return f"{self.diff:+.3g}{ci}: {self.verdict} ({where})"
        if self.next_seeds:
            return f"{self.diff:+.3g}{ci}: inconclusive ({where}); the next stage runs {self.next_seeds}"
        return f"{self.diff:+.3g}{ci}: inconclusive at the cap ({where}); open by {self.why_open}"


def compare(design: Design, a: dict[int, float], b: dict[int, float], margin: float,
            resolution: float = 0.0) -> Staged:
    """jax − torch for one measure of one config, replayed look by look over the stages whose
    seeds ran (seed -> value of each backend's error-free runs): the first look that decides
    gives the verdict."""
    seeds = max([*a, *b], default=-1) + 1
    last = design.stage_of(seeds)
    if last is None:
        return Staged(None, None, margin, "inconclusive", None, stage=0, stages=len(design.stages),
                      seeds=seeds, next_seeds=design.stages[0])
    result = xs = ys = None
    for k in range(last + 1):
        n = design.stages[k]
        x, y = ({s: v for s, v in side.items() if s < n} for side in (a, b))
        paired = x.keys() == y.keys()
        xs, ys = (np.array([side[s] for s in sorted(side)], dtype=float) for side in (x, y))
        if len(xs) < 2 or len(ys) < 2:  # errors left a stage without a spread: no look
            result = Staged(None, None, margin, "inconclusive", None, stage=k, stages=len(design.stages), seeds=n,
                            resolution=resolution)
            continue
        diff, se, dof = (float(v) for v in moments(xs, ys, paired))
        found = WORDS[int(verdict(diff, se, dof, design.different_levels[k], design.same_levels[k],
                                  margin, resolution))]
        half = float(quantile(design.different_levels[k], dof)) * se
        result = Staged(diff, (diff - half, diff + half), margin, found, None, paired, stage=k,
                        stages=len(design.stages), seeds=n, resolution=resolution)
        if found != "inconclusive":
            return result
    if last + 1 < len(design.stages):
        return dataclasses.replace(result, next_seeds=design.stages[last + 1])
    # At the cap: what this spread would need as a fresh fixed design (compare_means' estimate).
    if result.diff is None:
        return result
    fixed = compare_means(list(xs), list(ys), margin, resolution, result.paired)
    return dataclasses.replace(result, seeds_needed=fixed.seeds_needed)


def comparer(design: Design):
    """compare.stats.agreements' `compare` hook for this design."""
    return functools.partial(compare, design)


def undecided(records: list[dict[str, Any]], design: Design) -> list[str]:
    """The configs of one sweep's records (follow-ups included) with a jax − torch comparison
    still undecided below the cap: those the next stage adds seeds to."""
    return [a.label for a in agreements(records, comparer(design))
            if any(not c.decided and c.next_seeds for c in (a.final, a.solve))]
