"""compare.gpu_check: refuses a machine without a GPU, keeps every finished part's figures, and
(slow) runs every part end to end on the CPU in its small form."""

import json
import subprocess
import sys

import pytest
from rich.console import Console

from compare.gpu_check import MODES, Check, loss_gap, summary
from tests.conftest import gpu_available


def gpu_check(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "compare.gpu_check", *args], capture_output=True,
                          text=True, timeout=1500, cwd=cwd)


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_in_one_line(tmp_path):
    result = gpu_check("--out", str(tmp_path / "check"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: no GPU to check: device='gpu': jax sees no GPU"]
    assert not (tmp_path / "check").exists()


@pytest.mark.parametrize("args, message", [
    ([], "--out is required"),
    (["--out", "x", "--budget_s", "0"], "--budget_s=0.0"),
    (["--out", "x", "stray"], "unexpected argument 'stray'"),
    (["--out", "x", "--device", "tpu"], "--device=tpu"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = gpu_check(*args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_with_files_is_refused(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    result = gpu_check("--out", str(tmp_path), "--device", "cpu")
    assert result.returncode == 2 and "not an empty folder" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["old.json"]


def test_a_broken_part_costs_no_other_part_its_figures(tmp_path):
    check = Check(tmp_path, "cpu", budget_s=60, small=True, console=Console(quiet=True))
    check.run("first", lambda: {"figure": 1}, needs_s=1, cap_s=10)
    check.run("broken", lambda: 1 / 0, needs_s=1, cap_s=10)
    check.run("greedy", lambda: {"figure": 3}, needs_s=3600, cap_s=3600)
    check.run("last", lambda: {"figure": 4, "failed": True}, needs_s=1, cap_s=10)
    saved = json.loads((tmp_path / "gpu_check.json").read_text())["parts"]
    assert saved["first"]["status"] == "ok" and saved["first"]["figure"] == 1
    assert saved["broken"]["status"] == "failed" and "ZeroDivisionError" in saved["broken"]["error"]
    assert saved["greedy"]["status"] == "skipped" and "needs ~3600 s" in saved["greedy"]["why"]
    assert saved["last"]["status"] == "failed" and saved["last"]["figure"] == 4
    md = (tmp_path / "gpu_check.md").read_text()
    assert "- broken: **failed**" in md and "- greedy: **skipped**" in md


@pytest.mark.slow
def test_every_part_runs_end_to_end_in_small_form(tmp_path):
    out = tmp_path / "check"
    # From another folder: its parts used to find tests/ only from the repository's root.
    result = gpu_check("--out", str(out), "--device", "cpu", "--small", "--budget_s", "1200", cwd=tmp_path)
    saved = json.loads((out / "gpu_check.json").read_text())["parts"]
    assert result.returncode == 0, {k: v.get("error") or v.get("exit") for k, v in saved.items()}
    assert list(saved) == ["train", "equivalence", "modes", "bench", "text_equivalence", "text_bench", "tests",
                           "threads"]
    assert all(p["status"] == "ok" for p in saved.values())
    assert all(saved["train"][b]["device"] == "cpu" for b in ("jax", "torch"))
    assert {(r["backend"], r["threads"]) for r in saved["threads"]["rows"]} == {("jax", 1), ("torch", 1)}
    assert {r["variant"] for r in saved["equivalence"]["rows"]} == {"rnn-tanh", "gru"}
    assert any(r["noise"] for r in saved["equivalence"]["rows"])  # float32 rows carry the noise floor
    assert {r["backend"] for r in saved["bench"]["rows"]} == {"jax", "torch", "jax-vmap"}
    assert "passed" in saved["tests"]["summary"]
    modes = {(r["group"], r["mode"]): r for r in saved["modes"]["rows"]}
    assert len(modes) == len(MODES) and all("steps_per_s" in r for r in modes.values())
    assert modes["torch graphs", "torch graphs"]["execution"]["graphs"] == "off: no GPU"  # a CPU: the eager step
    assert modes["torch graphs", "torch graphs"]["loss_gap"] == 0  # ... bit for bit
    assert {r["backend"] for r in saved["text_bench"]["rows"]} >= {"jax", "torch"}
    assert saved["text_equivalence"]["rows"]
    md = (out / "gpu_check.md").read_text()
    for heading in ("## Canonical run", "## Equivalence", "## Execution modes", "## Sentiment equivalence",
                    "## Sentiment speed", "## Speed", "## Host cores", "## Tests"):
        assert heading in md


def test_each_group_of_modes_starts_with_its_default():
    """A group's first run is the baseline its others are timed and compared against: the
    default mode (eager, unroll 1, one step a call), at the group's positions."""
    groups: dict[str, list] = {}
    for group, label, backend, args in MODES:
        groups.setdefault(group, []).append((label, backend, args))
    for group, runs in groups.items():
        first = runs[0][2]
        assert [a for a in first if a not in ("--unroll=1", "long")] == [], group
        assert all(("long" in args) == ("long" in first) for _, _, args in runs), group
    assert ("jax", ["--unroll=8", "long"]) in [(b, a) for _, _, b, a in MODES]


def test_loss_gap_and_the_modes_table():
    assert loss_gap([1.0, 2.0], [1.0, 2.0]) == 0 and loss_gap([1.0, 2.2], [1.0, 2.0]) == pytest.approx(0.1)
    assert loss_gap([1.0], [1.0, 2.0]) is None  # a run cut short compares nothing
    rows = [{"group": "torch graphs", "mode": "torch eager", "steps_per_s": 300.0, "compile_s": None,
             "execution": {"graphs": "off"}},
            {"group": "torch graphs", "mode": "torch graphs", "steps_per_s": 900.0, "compile_s": 0.4,
             "speedup": 3.0, "loss_gap": 0.0, "execution": {"graphs": "on"}},
            {"group": "jax steps per call", "mode": "50 steps a call", "skipped": "out of the part's time"}]
    md = summary({"device": "gpu", "parts": {"modes": {"status": "ok", "seconds": 1.0, "rows": rows}}})
    assert "| torch graphs | torch graphs | graphs on | 900.0 | 3.00 | 0.40 | 0.0e+00 |" in md
    assert "| jax steps per call | 50 steps a call | out of the part's time |" in md
