"""The study's own findings next to ours: which our data confirm, which not.

Each check reads the grouped results of one sweep (label -> backend -> Group) and says, per
backend, what we saw. "Speed of learning" is the mean steps to 100 % exact match (a run that
never gets there counts as the step cap).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from compare.stats import Group

Groups = dict[str, dict[str, Group]]


@dataclasses.dataclass
class Finding:
    claim: str
    ours: str
    verdict: str  # confirmed / contradicted / inconclusive, per backend


def _by(groups: Groups, backend: str, field: str) -> dict:
    """Swept value -> Group for one backend (single-axis sweeps)."""
    return {g[backend].point[field]: g[backend] for g in groups.values() if backend in g}


def _steps(g: Group) -> float:
    return g.solve_step().mean


def _fmt(values: dict) -> str:
    return ", ".join(f"{k}: {_steps(g):.0f}" for k, g in values.items())


def _verdict(results: dict[str, bool | None]) -> str:
    words = {True: "confirmed", False: "contradicted", None: "inconclusive"}
    return "; ".join(f"{b}: {words[v]}" for b, v in results.items())


def _each_backend(groups: Groups, field: str, claim: str,
                  judge: Callable[[dict], tuple[str, bool | None]]) -> Finding:
    backends = sorted({b for g in groups.values() for b in g})
    ours, verdicts = [], {}
    for b in backends:
        text, ok = judge(_by(groups, b, field))
        ours.append(f"{b}: {text}")
        verdicts[b] = ok
    return Finding(claim, "; ".join(ours), _verdict(verdicts))


def _fastest(values: dict):
    return min(values, key=lambda k: _steps(values[k]))


def _leaders(values: dict) -> list:
    """Values whose steps to 100 % are within the fastest one's 95 % interval (ties included)."""
    best = values[_fastest(values)].solve_step()
    return [k for k, g in values.items() if _steps(g) <= best.mean + (best.ci or 0)]


def _judge_leaders(values: dict, expected) -> tuple[str, bool | None]:
    """Confirmed if every leader is expected, contradicted if none is, else inconclusive."""
    if not any(g.solved for g in values.values()):
        return "no run reached 100 %", None
    leaders = _leaders(values)
    hits = [k in expected for k in leaders]
    text = f"fastest {', '.join(map(str, leaders))} ({_fmt(values)} steps)"
    return text, True if all(hits) else False if not any(hits) else None


def layers(groups: Groups) -> list[Finding]:
    def best(v):
        return _judge_leaders(v, (2, 3))

    def deep(v):
        if 10 not in v:
            return "10 layers not run", None
        g = v[10]
        return f"10 layers: {g.solved}/{len(g.records)} runs reached 100 %", g.solved < len(g.records) / 2
    return [_each_backend(groups, "layers", "2–3 layers learn fastest at short lengths", best),
            _each_backend(groups, "layers", "10 layers oscillate and never converge", deep)]


def cells(groups: Groups) -> list[Finding]:
    def order(v):
        ranked = sorted(v, key=lambda k: _steps(v[k]))
        if not any(g.solved for g in v.values()):
            return "no run reached 100 %", None
        return f"{' < '.join(ranked)} in steps ({_fmt(v)})", ranked == ["rnn", "gru", "lstm"]
    return [_each_backend(groups, "cell", "RNN learns fastest, then GRU, then LSTM", order)]


def lr(groups: Groups) -> list[Finding]:
    def best(v):
        return _judge_leaders(v, [k for k in v if 5e-3 <= k <= 2e-2])

    def high(v):
        highs = [k for k in v if k >= 0.1]
        bad = [k for k in highs if v[k].count("diverged")]
        unsolved = [k for k in highs if v[k].solved == 0]
        text = f"diverged (NaN) at {bad or 'none'}; never solved at {unsolved or 'none'}"
        return text, (None if not highs else len(bad) == len(highs) if bad else False)

    def low(v):
        slow = [k for k in v if k <= 1e-4]
        return (f"lr ≤ 1e-4 solved {sum(v[k].solved for k in slow)}/"
                f"{sum(len(v[k].records) for k in slow)} runs"), all(v[k].solved == 0 for k in slow) if slow else None
    return [_each_backend(groups, "lr", "lr ≈ 1e-2 is best", best),
            _each_backend(groups, "lr", "lr 0.1–0.5 diverge (loss NaN)", high),
            _each_backend(groups, "lr", "lr ≤ 1e-4 is too slow", low)]


def schedule(groups: Groups) -> list[Finding]:
    def first(v):
        return f"{_fmt(v)} steps", _steps(v["multistep"]) < _steps(v["constant"])
    return [_each_backend(groups, "schedule", "multi-step decay reaches 100 % before a constant lr", first)]


def digits(groups: Groups) -> list[Finding]:
    def reachable(v):
        missing = [k for k in v if v[k].solved == 0]
        return f"never solved at {missing or 'no length'}", not missing

    def longer(v):
        keys = sorted(v)
        steps = [_steps(v[k]) for k in keys]
        rising = sum(b >= a for a, b in zip(steps, steps[1:])) >= 0.75 * (len(steps) - 1)
        return _fmt({k: v[k] for k in keys}) + " steps", rising
    return [_each_backend(groups, "digits", "100 % is reachable at every length", reachable),
            _each_backend(groups, "digits", "longer numbers need more steps", longer)]


def activation(groups: Groups) -> list[Finding]:
    def similar(v):
        tanh, relu = v["tanh"], v["relu"]
        return f"{_fmt(v)} steps", not tanh.solve_step().differs_from(relu.solve_step())
    return [_each_backend(groups, "activation", "tanh and relu learn about equally fast", similar)]


def h0(groups: Groups) -> list[Finding]:
    def zeros(v):
        others = min(_steps(g) for k, g in v.items() if k != "zeros")
        z = v["zeros"].solve_step()
        return f"{_fmt(v)} steps", z.mean <= others + (z.ci or 0)
    return [_each_backend(groups, "h0", "zero h0 is as good as or better than random ones", zeros)]


def carry(groups: Groups) -> list[Finding]:
    def omit(v):
        off, on = v[False].solve_step(), v[True].solve_step()
        return f"off {off}, on {on} steps", off.mean <= on.mean + (off.ci or 0)
    return [_each_backend(groups, "carry_state", "omitting the carried state is as good or better", omit)]


def ablation(groups: Groups) -> list[Finding]:
    def none(v):
        acc = v["none"].final_exact()
        return f"no recurrent layer: final exact {acc}", acc.mean < 0.01
    return [_each_backend(groups, "cell", "embedding + linear alone cannot learn addition", none)]


def init(groups: Groups) -> list[Finding]:
    def native(v):
        return f"{_fmt(v)} steps", None
    return [_each_backend(groups, "init", "(no claim in the study) does each framework's own init "
                          "change how fast it learns?", native)]


def heatmap(field_x: str, field_y: str, claim: str, expect: Callable) -> Callable[[Groups], list[Finding]]:
    def check(groups: Groups) -> list[Finding]:
        backends = sorted({b for g in groups.values() for b in g})
        ours, verdicts = [], {}
        for b in backends:
            cells = {(g[b].point[field_x], g[b].point[field_y]): g[b] for g in groups.values() if b in g}
            best = min(cells, key=lambda k: _steps(cells[k]))
            ours.append(f"{b}: fastest at {field_x}={best[0]}, {field_y}={best[1]} "
                        f"({_steps(cells[best]):.0f} steps)")
            verdicts[b] = expect(best)
        return [Finding(claim, "; ".join(ours), _verdict(verdicts))]
    return check


CHECKS: dict[str, Callable[[Groups], list[Finding]]] = {
    "layers": layers, "cells": cells, "lr": lr, "schedule": schedule, "digits": digits,
    "activation": activation, "h0": h0, "carry": carry, "ablation": ablation, "init": init,
    "heatmap-lr-digits": heatmap("lr", "digits", "fastest at lr ≈ 1e-2, length 50–70",
                                 lambda best: 5e-3 <= best[0] <= 2e-2 and 50 <= best[1] <= 70),
    "heatmap-layers-carry": heatmap("layers", "carry_state", "fastest with 2–3 layers, state not carried",
                                    lambda best: best[0] in (2, 3) and best[1] is False),
}
