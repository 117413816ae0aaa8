"""The first study's findings next to ours (the adder sweeps).

Each check reads the grouped results of one sweep (label -> backend -> Group) and says, per
backend, what we saw (compare.findings.core). "Speed of learning" is the mean steps to 100 %
exact match (a run that never gets there counts as the step cap). A verdict is *inconclusive*
whenever the data cannot decide: nothing reached 100 %, the compared values tie within their
95 % intervals, a needed config is missing, or every run of it failed.
"""

from __future__ import annotations

from collections.abc import Callable

from compare.findings.core import Finding, Groups, Judgement, each_backend, verdict
from compare.stats import Group


def _steps(g: Group) -> float:
    return g.solve_step().mean


def _fmt(values: dict) -> str:
    return ", ".join(f"{k}: {_steps(g):.0f}" for k, g in values.items())


def _leaders(values: dict) -> list:
    """Values whose steps to 100 % are within the fastest one's 95 % interval (ties included)."""
    best = min(values.values(), key=_steps).solve_step()
    return [k for k, g in values.items() if _steps(g) <= best.mean + (best.ci or 0)]


def _judge_leaders(values: dict, expected) -> Judgement:
    """Confirmed if every leader is expected, contradicted if none is, else inconclusive."""
    leaders = _leaders(values)
    hits = [k in expected for k in leaders]
    text = f"fastest {', '.join(map(str, leaders))} ({_fmt(values)} steps)"
    return text, True if all(hits) else False if not any(hits) else None


def _faster(a: Group, b: Group) -> bool | None:
    """a learns faster than b beyond their intervals; None if they tie (or one has no CI)."""
    differs = a.solve_step().differs_from(b.solve_step(), resolution=a.records[0]["config"]["eval_every"])
    return None if not differs else _steps(a) < _steps(b)


def layers(groups: Groups) -> list[Finding]:
    def deep(v):
        g = v[10]
        return f"10 layers: {g.solved}/{len(g.records)} runs reached 100 %", g.solved < len(g.records) / 2
    return [each_backend(groups, "layers", "2–3 layers learn fastest at short lengths", (),
                          lambda v: _judge_leaders(v, (2, 3))),
            each_backend(groups, "layers", "10 layers oscillate and never converge", (10,), deep,
                          needs_solves=False)]


def cells(groups: Groups) -> list[Finding]:
    def order(v):
        ranked = sorted(v, key=lambda k: _steps(v[k]))
        pairs = [_faster(v[a], v[b]) for a, b in zip(ranked, ranked[1:])]
        ok = None if None in pairs else ranked == ["rnn", "gru", "lstm"]
        return f"{' < '.join(ranked)} in steps ({_fmt(v)})", ok
    return [each_backend(groups, "cell", "RNN learns fastest, then GRU, then LSTM",
                          ("rnn", "gru", "lstm"), order)]


def lr(groups: Groups) -> list[Finding]:
    def high(v):
        highs = [k for k in v if k >= 0.1]
        bad = [k for k in highs if v[k].count("diverged")]
        unsolved = [k for k in highs if v[k].solved == 0]
        text = f"diverged (NaN) at {bad or 'none'}; never solved at {unsolved or 'none'}"
        return text, (None if not highs else len(bad) == len(highs) if bad else False)

    def low(v):
        slow = [k for k in v if k <= 1e-4]
        solved = sum(v[k].solved for k in slow)
        return f"lr ≤ 1e-4 solved {solved}/{sum(len(v[k].records) for k in slow)} runs", \
            (solved == 0 if slow else None)
    return [each_backend(groups, "lr", "lr ≈ 1e-2 is best", (),
                          lambda v: _judge_leaders(v, [k for k in v if 5e-3 <= k <= 2e-2])),
            each_backend(groups, "lr", "lr 0.1–0.5 diverge (loss NaN)", (), high, needs_solves=False),
            each_backend(groups, "lr", "lr ≤ 1e-4 is too slow", (), low, needs_solves=False)]


def schedule(groups: Groups) -> list[Finding]:
    return [each_backend(groups, "schedule", "multi-step decay reaches 100 % before a constant lr",
                          ("constant", "multistep"),
                          lambda v: (f"{_fmt(v)} steps", _faster(v["multistep"], v["constant"])))]


def digits(groups: Groups) -> list[Finding]:
    def reachable(v):
        missing = [k for k in v if v[k].solved == 0]
        return f"never solved at {missing or 'no length'}", not missing

    def longer(v):
        keys = sorted(v)
        steps = [_steps(v[k]) for k in keys]
        if len(set(steps)) == 1:
            return _fmt(v) + " steps", None
        rising = sum(b >= a for a, b in zip(steps, steps[1:])) >= 0.75 * (len(steps) - 1)
        return _fmt({k: v[k] for k in keys}) + " steps", rising
    return [each_backend(groups, "digits", "100 % is reachable at every length", (), reachable,
                          needs_solves=False),
            each_backend(groups, "digits", "longer numbers need more steps", (), longer)]


def activation(groups: Groups) -> list[Finding]:
    def similar(v):
        faster = _faster(v["tanh"], v["relu"])
        return f"{_fmt(v)} steps", None if v["tanh"].solve_step().ci is None else faster is None
    return [each_backend(groups, "activation", "tanh and relu learn about equally fast",
                          ("tanh", "relu"), similar)]


def h0(groups: Groups) -> list[Finding]:
    def zeros(v):
        if v["zeros"].solve_step().ci is None:  # one seed: no interval to judge by
            return f"{_fmt(v)} steps", None
        beaten_by = [k for k, g in v.items() if k != "zeros" and _faster(g, v["zeros"])]
        return f"{_fmt(v)} steps" + (f"; faster: {beaten_by}" if beaten_by else ""), not beaten_by
    return [each_backend(groups, "h0", "zero h0 is as good as or better than random ones",
                          ("zeros",), zeros)]


def carry(groups: Groups) -> list[Finding]:
    def omit(v):
        faster = _faster(v[True], v[False])
        return f"off {v[False].solve_step()}, on {v[True].solve_step()} steps", \
            (None if v[False].solve_step().ci is None else not faster)
    return [each_backend(groups, "carry_state", "omitting the carried state is as good or better",
                          (False, True), omit)]


def ablation(groups: Groups) -> list[Finding]:
    def none(v):
        acc = v["none"].final_exact()
        return f"no recurrent layer: final exact {acc}", acc.mean < 0.01
    return [each_backend(groups, "cell", "embedding + linear alone cannot learn addition",
                          ("none",), none, needs_solves=False)]


def init(groups: Groups) -> list[Finding]:
    def native(v):
        faster = _faster(v["native"], v["shared"])
        word = {None: "no difference beyond the CIs", True: "native init learns faster",
                False: "shared init learns faster"}[faster]
        return f"{_fmt(v)} steps: {word}", None
    return [each_backend(groups, "init", "(no claim in the study) does each framework's own init "
                          "change how fast it learns?", ("shared", "native"), native)]


def accuracy_at(group: Group, digits: int) -> float | None:
    """Mean exact match over seeds on fresh `digits`-digit sums (length generalisation)."""
    values = [p["exact_acc"] for r in group.records for p in r.get("lengths", []) if p["digits"] == digits]
    return sum(values) / len(values) if values else None


def lengthgen(groups: Groups, at: int = 1000) -> list[Finding]:
    backends = sorted({b for g in groups.values() for b in g})
    short, longer = {}, {}
    texts = []
    for b in backends:
        acc = {(g[b].point["cell"], g[b].point["digits"]): accuracy_at(g[b], at) for g in groups.values() if b in g}
        two = [v for (c, n), v in acc.items() if n == 2 and v is not None]
        four = [v for (c, n), v in acc.items() if n >= 4 and v is not None]
        short[b] = None if not two else max(two) < 0.5
        longer[b] = None if not four else min(four) >= 0.99
        texts.append(f"{b}: at {at} digits, trained on 2: {', '.join(f'{v:.2f}' for v in two) or '–'}; "
                     f"trained on ≥4: min {min(four):.3f}" if four else f"{b}: no {at}-digit results")
    ours = "; ".join(texts)
    return [Finding("trained on 2 digits, the model fails on long numbers", ours, verdict(short)),
            Finding(f"trained on ≥ 3–4 digits, it is ~100 % right on {at}-digit numbers", ours, verdict(longer))]


def order(groups: Groups) -> list[Finding]:
    def msb_fails(v):
        lsb, msb = v["lsb"].final_exact().mean, v["msb"].final_exact().mean
        return f"final exact lsb {lsb:.3f}, msb {msb:.3f}", lsb > 0.99 and msb < 0.1
    return [each_backend(groups, "order", "(ours) most-significant-first fails where least-significant-first "
                          "succeeds", ("lsb", "msb"), msb_fails, needs_solves=False)]


def base(groups: Groups) -> list[Finding]:
    def every_base(v):
        return f"{_fmt(v)} steps", all(g.solved for g in v.values())
    return [each_backend(groups, "base", "(ours) bases 2, 10 and 16 are all learned to 100 %", (),
                          every_base, needs_solves=False)]


def probe_accuracy(group: Group) -> tuple[float, float] | None:
    """(best layer's probe accuracy, current-digits rule accuracy), means over seeds."""
    probes = [r["probe"] for r in group.records if r.get("probe")]
    if not probes:
        return None
    best = sum(max(p["accuracy"] for p in pr["layers"]) for pr in probes) / len(probes)
    return best, sum(pr["local_rule_accuracy"] for pr in probes) / len(probes)


def probe(groups: Groups) -> list[Finding]:
    backends = sorted({b for g in groups.values() for b in g})
    ours, verdicts = [], {}
    for b in backends:
        found = {(g[b].point["cell"], g[b].point["order"]): probe_accuracy(g[b]) for g in groups.values() if b in g}
        lsb = [v for (c, o), v in found.items() if o == "lsb" and v]
        msb = [v for (c, o), v in found.items() if o == "msb" and v]
        if not lsb or not msb:
            ours.append(f"{b}: no probe results")
            verdicts[b] = None
            continue
        ours.append(f"{b}: lsb best-layer probe {min(v[0] for v in lsb):.3f}–{max(v[0] for v in lsb):.3f}, "
                    f"msb {min(v[0] for v in msb):.3f}–{max(v[0] for v in msb):.3f}; "
                    f"current digits alone {lsb[0][1]:.3f}")
        verdicts[b] = all(v[0] > v[1] + 0.02 for v in lsb) and all(v[0] <= v[1] + 0.01 for v in msb)
    return [Finding("(ours) lsb first, the state holds the incoming carry (probe beats the current-digits "
                    "rule); msb first, it cannot", "; ".join(ours), verdict(verdicts))]


def heatmap(field_x: str, field_y: str, claim: str, expect: Callable) -> Callable[[Groups], list[Finding]]:
    def check(groups: Groups) -> list[Finding]:
        backends = sorted({b for g in groups.values() for b in g})
        ours, verdicts = [], {}
        for b in backends:
            cells = {(g[b].point[field_x], g[b].point[field_y]): g[b] for g in groups.values()
                     if b in g and g[b].solve_step().n}
            if not any(g.solved for g in cells.values()):
                ours.append(f"{b}: no run reached 100 %")
                verdicts[b] = None
                continue
            leaders = _leaders(cells)
            hits = [expect(k) for k in leaders]
            ours.append(f"{b}: fastest at " + ", ".join(f"{field_x}={x} {field_y}={y}" for x, y in leaders)
                        + f" ({_steps(cells[leaders[0]]):.0f} steps)")
            verdicts[b] = True if all(hits) else False if not any(hits) else None
        return [Finding(claim, "; ".join(ours), verdict(verdicts))]
    return check


# The study's own steps to 100 % (../shared/STUDY.md: students' runs of the handout model, lr 1e-3,
# Adam, batch 200), by (cell, layers); the handout rerun (rnn, 2 layers, 3 seeds) got 300/400/300.
STUDY_STEPS = {
    ("rnn", 1): "330–370", ("rnn", 2): "250–260; handout rerun 300/400/300", ("rnn", 3): "320–350",
    ("rnn", 4): "420–550",
    ("gru", 1): "350", ("gru", 2): "290–310", ("gru", 3): "260–310", ("gru", 4): "330–360",
    ("lstm", 1): "290–300", ("lstm", 2): "260–270", ("lstm", 3): "250–270", ("lstm", 4): "260–270",
}
STUDY_LR = 1e-3


def study_steps(groups: Groups) -> dict[str, str]:
    """label -> the study's steps to 100 % for that config, where the study has a number for it:
    the handout model at the study's lr (the paper preset), varying only cell and layers."""
    out = {}
    for label, by_backend in groups.items():
        g = next(iter(by_backend.values()))
        cfg = g.records[0]["config"]
        plain = all(cfg.get(k, v) == v for k, v in (("digits", 9), ("data", "handout"), ("hidden", 64),
                                                    ("activation", "tanh"), ("h0", "zeros"),
                                                    ("carry_state", False), ("schedule", "constant")))
        key = (cfg.get("cell"), cfg.get("layers"))
        if plain and cfg.get("lr") == STUDY_LR and key in STUDY_STEPS:
            out[label] = STUDY_STEPS[key]
    return out


CHECKS: dict[str, Callable[[Groups], list[Finding]]] = {
    "layers": layers, "cells": cells, "lr": lr, "schedule": schedule, "digits": digits,
    "activation": activation, "h0": h0, "carry": carry, "ablation": ablation, "init": init,
    "lengthgen": lengthgen, "order": order, "base": base, "probe": probe,
    "heatmap-lr-digits": heatmap("lr", "digits", "fastest at lr ≈ 1e-2, length 50–70",
                                 lambda best: 5e-3 <= best[0] <= 2e-2 and 50 <= best[1] <= 70),
    "heatmap-layers-carry": heatmap("layers", "carry_state", "fastest with 2–3 layers, state not carried",
                                    lambda best: best[0] in (2, 3) and best[1] is False),
}
