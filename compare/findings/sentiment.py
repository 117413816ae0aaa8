"""The second lab's findings next to ours (the sentiment sweeps), as compare/findings/adder.py does
for the first study: per backend, *confirmed*, *contradicted* or *inconclusive* when the data cannot decide
(the values tie within their 95 % intervals, or a needed config is missing or failed).

Accuracy is each run's best test accuracy, mean over seeds. The lab's own numbers (IMDB, GloVe)
are shown beside ours; on the offline default (tweets) the comparison is of the claims, not of
the numbers, and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compare.findings.core import Finding, Groups, Judgement, each_backend, verdict
from compare.stats import ACCURACY_MARGIN, Estimate, Group, accuracy, compare_means

# The lab's test accuracy per (cell, layers, hidden) (../shared/STUDY.md).
LAB = {("rnn", 1, 256): 0.6976, ("rnn", 2, 256): 0.7135, ("rnn", 1, 512): 0.6903,
       ("rnn", 1, 1024): 0.6574, ("lstm", 1, 256): 0.8308, ("gru", 1, 256): 0.8326}


def lab_accuracy(config: dict[str, Any]) -> float | None:
    return LAB.get((config["cell"], config["layers"], config["hidden"]))


def _values(g: Group) -> list[float]:
    return [accuracy(r) for r in g.records if r["status"] != "error"]


def _better(a: Group, b: Group) -> bool | None:
    """a scores higher than b beyond their 95 % intervals (True), lower (False), or a tie (None)."""
    differs = a.final_exact().differs_from(b.final_exact())
    return None if not differs else a.final_exact().mean > b.final_exact().mean


def _each_backend(groups: Groups, field: str, claim: str, needs: tuple,
                  judge: Callable[[dict], Judgement]) -> Finding:
    """core.each_backend; nothing here needs a run to reach 100 %."""
    return each_backend(groups, field, claim, needs, judge, needs_solves=False)


def _fmt(values: dict) -> str:
    return ", ".join(f"{k} {g.final_exact().mean:.3f}" for k, g in values.items())


def cells(groups: Groups) -> list[Finding]:
    def gated(v):
        wins = [_better(v[c], v["rnn"]) for c in ("lstm", "gru")]
        return _fmt(v), True if all(wins) else False if False in wins else None
    return [_each_backend(groups, "cell", "LSTM and GRU beat a plain RNN (lab: 83.1 %, 83.3 % vs 69.8 %)",
                          ("rnn", "lstm", "gru"), gated)]


def layers(groups: Groups) -> list[Finding]:
    def little(v):
        c = compare_means(_values(v[2]), _values(v[1]), ACCURACY_MARGIN)
        ok = {"same": True, "different": False}.get(c.verdict)
        return f"{_fmt(v)}; 2 − 1 layers {c}", ok
    return [_each_backend(groups, "layers", f"a second layer changes little (lab: 71.4 % vs 69.8 %; here: "
                          f"within ±{ACCURACY_MARGIN:.0%})", (1, 2), little)]


def hidden(groups: Groups) -> list[Finding]:
    def no_help(v):
        larger = [_better(v[h], v[256]) for h in (512, 1024)]
        worst = min(v, key=lambda h: v[h].final_exact().mean)
        if True in larger:
            return _fmt(v), False
        clear = _better(v[1024], v[256]) is False and _better(v[1024], v[512]) is False
        return f"{_fmt(v)}; lowest {worst}", True if clear else None
    return [_each_backend(groups, "hidden", "larger hidden sizes do not help, 1024 worst (lab: 69.8 / 69.0 / "
                          "65.7 %)", (256, 512, 1024), no_help)]


def _longest_quarter(g: Group) -> Estimate:
    """Accuracy on the longest quarter of the test texts, over seeds."""
    return Estimate.of([r["lengths"][-1]["test_acc"] for r in g.records if r["status"] == "ok" and r.get("lengths")])


def length(groups: Groups) -> list[Finding]:
    """With filler (quick): the plain RNN loses accuracy as its label's words move away from the
    end, and the gated cells beat it at the longest filler. Without (paper, IMDB): the gated cells
    beat it on the longest quarter of the reviews."""
    backends = sorted({b for g in groups.values() for b in g})
    ours, verdicts = [], {}
    for backend in backends:
        runs = {(g[backend].point["cell"], g[backend].point.get("filler", 0)): g[backend]
                for g in groups.values() if backend in g and g[backend].final_exact().n}
        fillers = sorted({f for _, f in runs})
        far = fillers[-1]
        needed = [(c, f) for c in ("rnn", "lstm", "gru") for f in {0, far}]
        if any(k not in runs for k in needed):
            ours.append(f"{backend}: no usable runs for {next(k for k in needed if k not in runs)}")
            verdicts[backend] = None
            continue
        if far:
            near_rnn, far_rnn = runs[("rnn", 0)].final_exact(), runs[("rnn", far)].final_exact()
            # Forgets: far below near; does not: the two within ±ACCURACY_MARGIN (an equivalence
            # test, not merely "no difference found"); neither shown: inconclusive.
            drop = compare_means(_values(runs[("rnn", far)]), _values(runs[("rnn", 0)]), ACCURACY_MARGIN)
            forgets = {"same": False, "different": far_rnn.mean < near_rnn.mean}.get(drop.verdict)
            gated = [_better(runs[(c, far)], runs[("rnn", far)]) for c in ("lstm", "gru")]
            text = (f"rnn {near_rnn.mean:.3f} -> {far_rnn.mean:.3f} with {far} filler tokens; at {far}: "
                    + ", ".join(f"{c} {runs[(c, far)].final_exact().mean:.3f}" for c in ("lstm", "gru")))
            ok = True if forgets and all(gated) else False if False in (forgets, *gated) else None
        else:
            quarter = {c: _longest_quarter(runs[(c, 0)]) for c in ("rnn", "lstm", "gru")}
            wins = [quarter[c].differs_from(quarter["rnn"]) and quarter[c].mean > quarter["rnn"].mean
                    for c in ("lstm", "gru")]
            text = "longest quarter: " + ", ".join(f"{c} {e.mean:.3f}" for c, e in quarter.items() if e.mean is not None)
            ok = True if all(wins) else None
        ours.append(f"{backend}: {text}")
        verdicts[backend] = ok
    return [Finding("a plain RNN forgets the start of long texts; LSTM and GRU keep it (the lab's reading "
                    "of its 70 % vs 83 %)", "; ".join(ours), verdict(verdicts))]


CHECKS: dict[str, Callable[[Groups], list[Finding]]] = {
    "text-cells": cells, "text-layers": layers, "text-hidden": hidden, "text-length": length,
}
