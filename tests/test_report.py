"""compare/report.py pieces on synthetic records: where the time went, the contention note, the
staged seeds' summary."""

from compare import report
from compare.stats import group_records
from tests.test_stats import record


def _timed(backend, seed, group=1, **timing):
    r = record(backend, {"layers": 1}, seed)
    r["wall_s"] = 4.0
    r["timing"].update(startup_s=1.0, build_s=0.5, compile_s=0.25, train_s=1.5, eval_s=0.5,
                       runs_in_program=group, **timing)
    return r


def test_time_section_sums_phases_and_counts_a_seed_group_once():
    records = [_timed("jax", 0, compile_cache="hit"), _timed("jax", 1, compile_cache="compiled"),
               _timed("torch", 0, group=2), _timed("torch", 1, group=2)]
    lines = report.time_section(records)
    jax = next(line for line in lines if line.startswith("| jax"))
    torch = next(line for line in lines if line.startswith("| torch"))
    assert jax == "| jax | 2 | 8.0 | 2.0 | 1.0 | 0.5 | 3.0 | 1.0 | 0.5 | 1 of 2 |"
    assert torch == "| torch | 2 | 4.0 | 1.0 | 0.5 | 0.2 | 1.5 | 0.5 | 0.2 | – |"  # 2 seeds, one program
    assert report.time_section([record("jax", {"layers": 1}, 0)]) == []  # records without wall times


def test_contention_note_says_which_runs_were_not_timed_alone():
    calm, busy = _timed("jax", 0, contention=0.0), _timed("jax", 1, contention=0.4)
    assert report._contention_note(group_records([calm])).startswith("All 1 timed runs had their cores")
    assert report._contention_note(group_records([calm, busy])).startswith("**1 of 2 runs were timed while")


def test_the_staged_summary_counts_decisions_and_their_cost_against_a_fixed_cap():
    from compare.sequential import Design
    from tests.test_sequential import staged_records

    lines = report.staged_section({"ablation": list(staged_records().values())}, Design.up_to(12))
    assert lines[0] == ("**Seeds auto** (stages of 3, 6, 12 seeds): 3 of 4 jax − torch comparisons decided "
                        "(3 same, 0 different), 0 undecided at the cap, 1 not yet at it; 12 runs (follow-ups aside), "
                        "against 48 at a fixed `--seeds 12` (75 % fewer).")
    rows = [line for line in lines if line.startswith("| ablation")]
    assert rows[0].endswith("| same | 1 of 3 | 3 |")
    assert rows[3].endswith("| inconclusive | undecided after 1; next: 6 seeds | 3 |")
    capped = report.staged_section({"ablation": list(staged_records(seeds=6).values())}, Design.up_to(6))
    assert "1 undecided at the cap" in capped[0]


def test_configs_are_reported_in_the_sweeps_order_not_the_order_they_ran():
    # The runner runs the longest first (layers=10 before layers=1); the tables keep the sweep's.
    from compare.report import in_sweep_order

    ran = [{"point": {"layers": n}, "seed": k} for n in (10, 4, 1, 3, 2) for k in (0, 1)]
    ordered = in_sweep_order("layers", ran)
    assert [r["point"]["layers"] for r in ordered] == [1, 1, 2, 2, 3, 3, 4, 4, 10, 10]
    assert [r["seed"] for r in ordered][:2] == [0, 1]  # a point's runs keep their order


def test_a_table_row_says_which_execution_mode_ran():
    default, unrolled = record("jax", {"layers": 1}, 0), record("torch", {"layers": 1}, 0)
    unrolled["config"]["unroll"] = 0  # asked for (to_dict keeps a mode only off its default)
    unrolled["env"] = {"execution": {"unroll": "n/a (cuDNN/ATen loop)"}}
    [jax], [torch] = (list(group_records([r]).values()) for r in (default, unrolled))
    assert report.backend_text("jax", jax["jax"]) == "jax"
    assert report.backend_text("torch", torch["torch"]) == "torch, unroll n/a (cuDNN/ATen loop)"
