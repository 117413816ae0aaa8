"""Statistics and agreement verdicts, on synthetic run records."""

import math

import pytest

from compare.stats import (DIFFERENT, NOISE, NONE, SAME, UNEXPLAINED, Estimate, agreements, compare_means,
                           group_records, t95)


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


def pair(point, seed, jax_losses, torch_losses, role="main", **kw):
    out = [record("jax", point, seed, losses=jax_losses, **kw), record("torch", point, seed, losses=torch_losses, **kw)]
    for r in out:
        r["role"] = role
    return out


def verdict_of(records, label):
    return next(a for a in agreements(records) if a.label == label)


def test_same_trajectory():
    same = [r for s in range(3) for r in pair({"layers": 1}, s, (2.0, 1.0), (2.0, 1.0 + 1e-4), solve=20)]
    a = verdict_of(same, "layers=1")
    assert a.verdict == SAME and a.ok and a.curve_gap == pytest.approx(0.5e-4)
    assert a.final.verdict == "same" and a.solve.verdict == "same"


def test_parted_within_rounding_noise_by_a_control():
    main = pair({"layers": 4}, 0, (2.0, 1.0), (2.0, 1.4))               # parts by 20 %
    control = pair({"layers": 4}, 0, (2.0, 1.25), (2.0, 1.2), role="control")  # rounding alone: 12.5 %
    a = verdict_of(main + control, "layers=4")
    assert a.verdict == NOISE and a.ok
    assert a.worst.parted_at == 20 and a.noise_gap == pytest.approx(0.125)
    assert "rounding alone" in a.why and "seed 0 parts at step 20" in a.why


def test_a_gap_beyond_its_control_is_different_only_if_float64_parts_too():
    main = pair({"layers": 4}, 0, (2.0, 1.0), (2.0, 1.4))
    control = pair({"layers": 4}, 0, (2.0, 1.01), (2.0, 1.41), role="control")  # 0.5 %: 40x smaller
    a = verdict_of(main + control, "layers=4")
    assert a.verdict == UNEXPLAINED and "40.0x its rounding-noise control" in a.why and "no float64 run" in a.why
    apart64 = pair({"layers": 4}, 0, (2.0, 1.0), (2.0, 1.3), role="confirm64")  # 15 %
    a = verdict_of(main + control + apart64, "layers=4")  # two non-proofs convict nobody
    assert a.verdict == UNEXPLAINED and "float64 parts too (15.00%)" in a.why and "no float64 control yet" in a.why
    # float64's own rounding (the same control in float64) parts a backend from itself by 0.1 %:
    # the float64 gap is 150x that, so the framework difference survives every control.
    tiny64 = pair({"layers": 4}, 0, (2.0, 1.0 + 2e-3), (2.0, 1.3), role="control64")
    a = verdict_of(main + control + apart64 + tiny64, "layers=4")
    assert a.verdict == DIFFERENT and not a.ok and a.noise64_gap == pytest.approx(1e-3)
    assert "40.0x its rounding-noise control (0.50%)" in a.why and "float64 curves part too (15.00%)" in a.why
    assert "150.0x its float64 rounding-noise control (0.10%)" in a.why
    # Seen on the quick cells sweep (lstm): a control 20x smaller, float64 together to 1e-11.
    agree64 = pair({"layers": 4}, 0, (2.0, 1.0), (2.0, 1.0 + 2e-11), role="confirm64")
    assert verdict_of(main + control + agree64, "layers=4").verdict == NOISE


def test_float64_parting_explained_by_a_float64_control():
    # The text-length rnn filler=10 case: 19 % apart, a float32 control of 0.42 %, 5.1 % apart in
    # float64 (a lockstep trace: rounding-level for 449 steps, then geometric growth: chaos).
    main = pair({"filler": 10}, 1, (2.0, 1.0), (2.0, 1.38))
    control = pair({"filler": 10}, 1, (2.0, 1.0), (2.0, 1.38 + 0.0084), role="control")
    apart64 = pair({"filler": 10}, 1, (2.0, 1.0), (2.0, 1.102), role="confirm64")
    a = verdict_of(main + control + apart64, "filler=10")  # old records: no float64 control
    assert a.verdict == UNEXPLAINED and a.noise64_gap is None and "no float64 control yet" in a.why
    # The same inputs, with a float64 control (jax's) that parts its own float64 run by 3 %.
    chaos64 = pair({"filler": 10}, 1, (2.0, 1.06), (2.0, 1.102), role="control64")
    a = verdict_of(main + control + apart64 + chaos64, "filler=10")
    assert a.verdict == NOISE and a.ok and a.noise64_gap == pytest.approx(0.03)
    assert "float64 parts too (5.10%), but so does float64 rounding alone" in a.why
    assert "by 3.00%): chaotic, not different math" in a.why
    # ... and with one that parts it by 1e-12: the float64 gap is far beyond float64 rounding.
    calm64 = pair({"filler": 10}, 1, (2.0, 1.0 + 2e-12), (2.0, 1.102), role="control64")
    a = verdict_of(main + control + apart64 + calm64, "filler=10")
    assert a.verdict == DIFFERENT and "(5.10%)" in a.why and "(0.42%)" in a.why


def test_an_errored_float64_run_is_no_evidence():
    main = pair({"lr": 0.5}, 0, (2.0, 1.0), (2.0, 1.4))
    control = pair({"lr": 0.5}, 0, (2.0, 1.01), (2.0, 1.41), role="control")
    both_failed = pair({"lr": 0.5}, 0, (2.0, 1.0), (2.0, 1.0), role="confirm64", status="error")
    a = verdict_of(main + control + both_failed, "lr=0.5")  # not "float64 stays within 0"
    assert a.verdict == UNEXPLAINED and a.float64_gap is None and "no float64 run yet" in a.why
    one_failed = [both_failed[0], pair({"lr": 0.5}, 0, (2.0, 1.0), (2.0, 1.3), role="confirm64")[1]]
    a = verdict_of(main + control + one_failed, "lr=0.5")  # not "float64 parts: one diverged"
    assert a.verdict == UNEXPLAINED and a.float64_gap is None


def test_float64_alone():
    main = pair({"lr": 0.5}, 0, (2.0, 1.0), (2.0, 1.4))
    agree64 = pair({"lr": 0.5}, 0, (2.0, 1.0), (2.0, 1.01), role="confirm64")  # within 2 %
    assert verdict_of(main + agree64, "lr=0.5").verdict == NOISE
    apart64 = pair({"lr": 0.5}, 0, (2.0, 1.0), (2.0, 1.3), role="confirm64")
    a = verdict_of(main + apart64, "lr=0.5")  # chaos parts float64 too: not proof without a control
    assert a.verdict == UNEXPLAINED and "no control yet" in a.why


def test_parted_without_evidence_is_not_called_different():
    a = verdict_of(pair({"layers": 10}, 0, (2.0, 1.0), (2.0, 1.4)), "layers=10")
    assert a.verdict == UNEXPLAINED and not a.ok and "no control run" in a.why


def test_one_diverged_and_the_other_not():
    main = [record("jax", {"x": 1}, 0, status="diverged"), record("torch", {"x": 1}, 0)]
    a = verdict_of(main, "x=1")
    assert a.verdict == UNEXPLAINED and a.worst.parted_at == 5 and math.isinf(a.curve_gap)
    flipped = record("torch", {"x": 1}, 0, status="diverged")  # rounding flips divergence too
    flipped["role"] = "control"
    assert verdict_of(main + [flipped], "x=1").verdict == NOISE


def test_errors_are_errors_not_disagreement():
    main = pair({"x": 1}, 0, (2.0, 1.0), (2.0, 1.0)) + [record("jax", {"x": 1}, 1, status="error"),
                                                         record("torch", {"x": 1}, 1)]
    a = verdict_of(main, "x=1")
    assert a.verdict == SAME and a.errors == ["jax seed 1 errored"]
    only_errors = [record(b, {"x": 2}, 0, status="error") for b in ("jax", "torch")]
    assert verdict_of(only_errors, "x=2").verdict == NONE


def test_across_seeds_same_different_inconclusive():
    same = compare_means([0.99, 1.0, 0.995, 1.0], [1.0, 0.995, 0.99, 1.0], margin=0.02)
    assert same.verdict == "same" and same.ci95[0] < 0 < same.ci95[1]
    different = compare_means([0.5, 0.52, 0.51], [0.9, 0.91, 0.89], margin=0.02)
    assert different.verdict == "different" and different.ci95[1] < 0
    unsure = compare_means([0.2, 0.9, 0.6], [0.5, 0.3, 1.0], margin=0.02)
    assert unsure.verdict == "inconclusive" and unsure.seeds_needed > 3
    # steps to 100 % one eval apart with no spread: within the resolution, not "different"
    assert compare_means([80, 80, 80], [100, 100, 100], margin=20, resolution=20).verdict == "inconclusive"
    assert compare_means([80, 80, 80], [80, 80, 80], margin=20).verdict == "same"
    assert compare_means([80], [80, 100], margin=20).verdict == "inconclusive"
    # Seeds pair up (same weights, same batches): identical per-seed results are the same however
    # much the seeds scatter, which the unpaired (Welch) interval cannot show.
    scattered = [80.0, 420.0, 80.0]
    assert compare_means(scattered, scattered, margin=20, paired=True).verdict == "same"
    assert compare_means(scattered, scattered, margin=20).verdict == "inconclusive"


def test_a_difference_across_seeds_makes_same_curves_different():
    # Curves overlap at every shared seed, yet the seeds differ: not the same.
    main = [r for s in range(3) for r in pair({"x": 1}, s, (2.0, 1.0), (2.0, 1.0))]
    for r in main:
        r["final"]["exact_acc"] = (0.5 if r["backend"] == "jax" else 0.9) + 0.01 * r["config"]["seed"]
    a = verdict_of(main, "x=1")
    assert a.verdict == DIFFERENT and "final exact match differs across seeds" in a.why


def test_runs_timed_under_contention_are_left_out_of_timings():
    fast, slow = record("jax", {"lr": 0.1}, 0), record("jax", {"lr": 0.1}, 1)
    fast["timing"].update(steps_per_s=200.0, contention=0.02)
    slow["timing"].update(steps_per_s=60.0, contention=0.55)  # another process had half its core
    g = group_records([fast, slow])["lr=0.1"]["jax"]
    assert g.timing("run_steps_per_s").mean == 200.0 and g.contended() == 1
    slow["timing"]["contention"] = None  # a record from before contention was measured counts
    assert group_records([fast, slow])["lr=0.1"]["jax"].timing("run_steps_per_s").mean == 130.0


def text_record(backend, point, seed, best, near=100, losses=(0.7, 0.5), status="ok"):
    """A sentiment run's record: accuracy is its best test accuracy, speed the steps to within 1 point."""
    curve = [{"step": 50 * (i + 1), "loss": loss, "test_acc": best - 0.01 * (len(losses) - 1 - i),
              "test_loss": loss} for i, loss in enumerate(losses)]
    return {"task": "sentiment", "backend": backend, "label": " ".join(f"{k}={v}" for k, v in point.items()),
            "point": point, "status": status, "diverged_step": None,
            "config": {"seed": seed, "steps": 300, "eval_every": 50, "init": "shared", **point},
            "curve": curve, "final": {"step": curve[-1]["step"], "loss": losses[-1], "test_acc": curve[-1]["test_acc"],
                                      "test_loss": losses[-1]},
            "best": {"test_acc": best, "step": 100, "step_within_1_point": near},
            "timing": {"steps_per_s": 50.0, "compile_s": None}}


def test_sentiment_runs_are_judged_by_best_test_accuracy_and_steps_to_near_it():
    from compare.stats import accuracy, learning_step

    r = text_record("jax", {"cell": "gru"}, 0, best=0.85, near=150)
    assert accuracy(r) == 0.85 and learning_step(r, 300) == 150
    assert accuracy({**r, "status": "diverged"}) == 0.0
    same = [text_record(b, {"cell": "gru"}, k, best=0.85 + 0.002 * k) for b in ("jax", "torch") for k in range(3)]
    a = verdict_of(same, "cell=gru")
    assert a.verdict == SAME and a.final.verdict == "same" and a.acc_gap == 0.0
    apart = [text_record(b, {"cell": "gru"}, k, best=(0.85 if b == "jax" else 0.75) + 0.002 * k)
             for b in ("jax", "torch") for k in range(3)]
    b = verdict_of(apart, "cell=gru")
    assert b.verdict == DIFFERENT and "best test accuracy differs across seeds" in b.why
