"""Statistics, agreement verdicts and the study-vs-ours findings, on synthetic run records."""

import pytest

from compare import findings
from compare.stats import Estimate, agreement, group_records, t95


def record(backend, point, seed, solve=None, status="ok", losses=(2.0, 1.0), steps=100, init="shared"):
    curve = [{"step": 10 * (i + 1), "loss": loss, "exact_acc": 1.0 if solve and 10 * (i + 1) >= solve else 0.0,
              "digit_acc": 0.5, "elapsed_s": 1.0} for i, loss in enumerate(losses)]
    label = " ".join(f"{k}={v}" for k, v in point.items())
    return {"backend": backend, "label": label, "point": point, "status": status,
            "diverged_step": 5 if status == "diverged" else None,
            "config": {"seed": seed, "steps": steps, "eval_every": 10, "init": init},
            "curve": curve if status != "error" else [],
            "final": {"exact_acc": curve[-1]["exact_acc"] if status != "error" else None},
            "timing": None if status == "error" else {"solve_step": solve, "steps_per_s": 100.0,
                                                       "compile_s": None}}


def test_estimate_and_t_quantiles():
    e = Estimate.of([1.0, 2.0, 3.0])
    assert e.mean == 2.0 and e.ci == pytest.approx(4.303 * 1.0 / 3 ** 0.5)
    assert Estimate.of([5.0]).ci is None and Estimate.of([]).mean is None
    assert t95(1) == 12.706 and t95(30) == 2.042 and t95(100) == 1.96
    same = Estimate.of([80.0, 80.0, 80.0])
    assert same.differs_from(Estimate.of([100.0, 100.0, 100.0]), resolution=20) is False
    assert same.differs_from(Estimate.of([200.0, 200.0, 200.0]), resolution=20) is True
    assert same.differs_from(Estimate.of([80.0])) is None


def test_diverged_scores_zero_and_unsolved_counts_as_cap():
    groups = group_records([record("jax", {"lr": 0.5}, 0, solve=10, status="diverged"),
                            record("jax", {"lr": 0.5}, 1)])
    g = groups["lr=0.5"]["jax"]
    assert g.final_exact().mean == 0.0
    assert g.solve_step().mean == pytest.approx((10 + 100) / 2)


def test_agreement_names_disagreeing_curves():
    same = [record(b, {"layers": 1}, s, solve=20) for b in ("jax", "torch") for s in range(3)]
    apart = [record("jax", {"layers": 2}, 0, losses=(2.0, 1.0)),
             record("torch", {"layers": 2}, 0, losses=(2.0, 1.5))]
    groups = group_records(same + apart)
    assert agreement("layers=1", groups["layers=1"]["jax"], groups["layers=1"]["torch"]).ok
    bad = agreement("layers=2", groups["layers=2"]["jax"], groups["layers=2"]["torch"])
    assert not bad.ok and bad.curves.startswith("DISAGREE") and bad.curve_gap == pytest.approx(0.25)
    div = group_records([record("jax", {"x": 1}, 0, status="diverged"), record("torch", {"x": 1}, 0)])
    assert "jax diverged vs torch ok" in agreement("x=1", div["x=1"]["jax"], div["x=1"]["torch"]).curves


def test_findings_are_inconclusive_without_evidence():
    # Every run errored, or nothing reached 100 %: no verdict may be drawn, and nothing crashes.
    errored = group_records([record(b, {"schedule": s}, 0, status="error")
                             for b in ("jax", "torch") for s in ("constant", "multistep")])
    unsolved = group_records([record(b, {"schedule": s}, k) for b in ("jax", "torch")
                              for s in ("constant", "multistep") for k in range(3)])
    for groups in (errored, unsolved):
        (f,) = findings.schedule(groups)
        assert f.verdict == "jax: inconclusive; torch: inconclusive"


def test_findings_confirm_and_contradict():
    def sweep(steps_by_cell):
        return group_records([record(b, {"cell": c}, k, solve=s + 10 * k % 20)
                              for b in ("jax", "torch") for c, s in steps_by_cell.items() for k in range(3)])
    (ok,) = findings.cells(sweep({"rnn": 100, "gru": 300, "lstm": 600}))
    (bad,) = findings.cells(sweep({"rnn": 600, "gru": 300, "lstm": 100}))
    assert ok.verdict == "jax: confirmed; torch: confirmed"
    assert bad.verdict == "jax: contradicted; torch: contradicted"
    ablation = group_records([record(b, {"cell": c}, k, solve=20 if c == "rnn" else None)
                              for b in ("jax", "torch") for c in ("rnn", "none") for k in range(2)])
    assert findings.ablation(ablation)[0].verdict == "jax: confirmed; torch: confirmed"
