"""compare.gpu_check: refuses a machine without a GPU, keeps every finished part's figures, and
(slow) runs every part end to end on the CPU in its small form."""

import json
import subprocess
import sys

import pytest
from rich.console import Console

from compare.gpu_check import Check
from tests.conftest import gpu_available


def gpu_check(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "compare.gpu_check", *args], capture_output=True,
                          text=True, timeout=900, cwd=cwd)


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
    result = gpu_check("--out", str(out), "--device", "cpu", "--small", "--budget_s", "800", cwd=tmp_path)
    saved = json.loads((out / "gpu_check.json").read_text())["parts"]
    assert result.returncode == 0, {k: v.get("error") or v.get("exit") for k, v in saved.items()}
    assert list(saved) == ["train", "equivalence", "bench", "tests", "threads"]
    assert all(p["status"] == "ok" for p in saved.values())
    assert all(saved["train"][b]["device"] == "cpu" for b in ("jax", "torch"))
    assert {(r["backend"], r["threads"]) for r in saved["threads"]["rows"]} == {("jax", 1), ("torch", 1)}
    assert {r["variant"] for r in saved["equivalence"]["rows"]} == {"rnn-tanh", "gru"}
    assert any(r["noise"] for r in saved["equivalence"]["rows"])  # float32 rows carry the noise floor
    assert {r["backend"] for r in saved["bench"]["rows"]} == {"jax", "torch", "jax-vmap"}
    assert "passed" in saved["tests"]["summary"]
    md = (out / "gpu_check.md").read_text()
    for heading in ("## Canonical run", "## Equivalence", "## Speed", "## Host cores", "## Tests"):
        assert heading in md
