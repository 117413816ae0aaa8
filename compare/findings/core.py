"""What every workload's findings share: a claim, what we saw, and a verdict per backend.

A verdict is *confirmed*, *contradicted*, or *inconclusive* whenever the data cannot decide
(values that tie within their 95 % intervals, a needed config missing, every run of it failed);
each workload's module says what its claims compare.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from compare.stats import Group

Groups = dict[str, dict[str, Group]]  # label -> backend -> Group (compare.stats.group_records)
Judgement = tuple[str, bool | None]   # what we saw; confirmed (True), contradicted (False) or neither


@dataclasses.dataclass
class Finding:
    claim: str
    ours: str
    verdict: str  # confirmed / contradicted / inconclusive, per backend


def by_value(groups: Groups, backend: str, field: str) -> dict:
    """Swept value -> Group for one backend, leaving out configs whose every run failed."""
    return {g[backend].point[field]: g[backend] for g in groups.values()
            if backend in g and g[backend].solve_step().n}


def verdict(results: dict[str, bool | None]) -> str:
    """The per-backend verdicts in words: "jax: confirmed; torch: inconclusive"."""
    words = {True: "confirmed", False: "contradicted", None: "inconclusive"}
    return "; ".join(f"{b}: {words[v]}" for b, v in results.items())


def each_backend(groups: Groups, field: str, claim: str, needs: tuple,
                 judge: Callable[[dict], Judgement], needs_solves: bool = True) -> Finding:
    """One claim judged per backend on the values of `field` (value -> Group): inconclusive where
    a value in `needs` has no usable runs or (needs_solves) no run reached 100 %."""
    backends = sorted({b for g in groups.values() for b in g})
    ours, verdicts = [], {}
    for b in backends:
        values = by_value(groups, b, field)
        missing = [k for k in needs if k not in values]
        if missing:
            text, ok = f"no usable runs for {field}={missing[0]}", None
        elif needs_solves and not any(g.solved for g in values.values()):
            text, ok = "no run reached 100 %", None
        else:
            text, ok = judge(values)
        ours.append(f"{b}: {text}")
        verdicts[b] = ok
    return Finding(claim, "; ".join(ours), verdict(verdicts))
