"""The rules every command shares (common/app.py): one line and a fixed exit status for each way
a command can end, and outputs checked before the work."""

import subprocess
import sys

import pytest

from common.app import check_out_dir, check_writable, fail
from common.config import ConfigError


def test_fail_is_one_line_and_exit_status_2(capsys):
    with pytest.raises(SystemExit) as exit:
        fail("--x=1: no")
    assert exit.value.code == 2 and capsys.readouterr().err == "error: --x=1: no\n"


def test_check_writable_refuses_before_the_work_and_leaves_nothing(tmp_path):
    assert check_writable(str(tmp_path / "run.json")) == tmp_path / "run.json"
    with pytest.raises(ConfigError, match="is a directory"):
        check_writable(str(tmp_path))
    with pytest.raises(ConfigError, match=r"--json=.*: cannot write there"):
        check_writable(str(tmp_path / "no" / "run.json"), flag="--json")
    assert list(tmp_path.iterdir()) == []


def test_check_out_dir_creates_nothing(tmp_path):
    assert check_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert check_out_dir(tmp_path) == tmp_path
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        check_out_dir(tmp_path / "file.txt")
    with pytest.raises(ConfigError, match="cannot create it"):
        check_out_dir(tmp_path / "file.txt" / "o")
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


_PROGRAM = """
from absl import flags
from common.app import run_app
from common.files import WriteFailed

def define():
    flags.DEFINE_string("out", None, "")

def main(argv):
    raise {{"write": WriteFailed("cannot write x: No space left on device"), "memory": MemoryError(),
            "ctrl-c": KeyboardInterrupt(), "io": FileNotFoundError(2, "No such file or directory", "y"),
            "none": SystemExit(0)}}[{how!r}]

run_app(main, define, interrupted="interrupted; rerun")
"""


@pytest.mark.parametrize("how, args, status, line", [
    ("none", ["stray"], 2, "error: unexpected argument 'stray' (flags look like --name=value)"),
    ("none", ["--out="], 2, "error: --out='': needs a value"),
    ("none", ["--nosuchflag"], 2, "error: Unknown command line flag 'nosuchflag'"),
    ("write", [], 1, "error: cannot write x: No space left on device"),
    ("memory", [], 1, "error: out of memory"),
    ("io", [], 1, "error: y: No such file or directory"),
    ("ctrl-c", [], 130, "interrupted; rerun"),
    ("none", [], 0, ""),
])
def test_every_way_a_command_ends_is_one_line_and_its_exit_status(how, args, status, line):
    result = subprocess.run([sys.executable, "-c", _PROGRAM.format(how=how), *args], capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stderr.strip()) == (status, line)
