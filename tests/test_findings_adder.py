"""compare.findings.adder: the first study's claims, judged per backend on synthetic records."""

from compare.findings import adder
from compare.stats import group_records
from tests.test_stats import record


def test_findings_are_inconclusive_without_evidence():
    # Every run errored, or nothing reached 100 %: no verdict may be drawn, and nothing crashes.
    errored = group_records([record(b, {"schedule": s}, 0, status="error")
                             for b in ("jax", "torch") for s in ("constant", "multistep")])
    unsolved = group_records([record(b, {"schedule": s}, k) for b in ("jax", "torch")
                              for s in ("constant", "multistep") for k in range(3)])
    for groups in (errored, unsolved):
        (f,) = adder.schedule(groups)
        assert f.verdict == "jax: inconclusive; torch: inconclusive"


def test_findings_confirm_and_contradict():
    def sweep(steps_by_cell):
        return group_records([record(b, {"cell": c}, k, solve=s + 10 * k % 20)
                              for b in ("jax", "torch") for c, s in steps_by_cell.items() for k in range(3)])
    (ok,) = adder.cells(sweep({"rnn": 100, "gru": 300, "lstm": 600}))
    (bad,) = adder.cells(sweep({"rnn": 600, "gru": 300, "lstm": 100}))
    assert ok.verdict == "jax: confirmed; torch: confirmed"
    assert bad.verdict == "jax: contradicted; torch: contradicted"
    ablation = group_records([record(b, {"cell": c}, k, solve=20 if c == "rnn" else None)
                              for b in ("jax", "torch") for c in ("rnn", "none") for k in range(2)])
    assert adder.ablation(ablation)[0].verdict == "jax: confirmed; torch: confirmed"


def test_the_studys_steps_stand_beside_ours_only_at_its_settings():
    def sweep(lr):
        recs = [record(b, {"layers": n}, 0, solve=200) for b in ("jax", "torch") for n in (2, 10)]
        for r in recs:
            r["config"].update(cell="rnn", layers=r["point"]["layers"], lr=lr, digits=9, data="handout")
        return group_records(recs)
    assert adder.study_steps(sweep(1e-3)) == {"layers=2": "250–260; handout rerun 300/400/300"}
    assert adder.study_steps(sweep(1e-2)) == {}  # the quick preset's lr: not the study's runs
