"""compare/report.py pieces on synthetic records: where the time went, the contention note."""

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
