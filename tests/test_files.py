"""common/files.py: a failed write leaves the old file whole and no stray file behind."""

import errno
import os

import pytest

from common import files
from common.files import WriteFailed, append_line, replacing, write_atomic


def _full_disk_after(monkeypatch, allowed: int):
    """os.write takes `allowed` more bytes, then fails as a full disk does."""
    real = os.write
    left = [allowed]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[:left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(files.os, "write", write)


def test_append_line_cuts_a_torn_line_back_off(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    append_line(path, '{"key": "a"}')
    _full_disk_after(monkeypatch, 5)  # half of the next line fits
    with pytest.raises(WriteFailed, match=f"cannot write {path}: No space left on device"):
        append_line(path, '{"key": "b", "more": "than five bytes"}')
    assert path.read_text() == '{"key": "a"}\n'


def test_replacing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    with pytest.raises(WriteFailed, match="plot.png: No space left on device"):
        with replacing(path) as tmp:
            assert tmp.suffix == ".png" and tmp.parent == tmp_path  # writers that go by extension
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_write_atomic_into_a_vanished_folder_names_the_file(tmp_path):
    with pytest.raises(WriteFailed, match=f"cannot write {tmp_path}/gone/report.md: No such file"):
        write_atomic(tmp_path / "gone" / "report.md", "text")
    write_atomic(tmp_path / "report.md", "text")
    assert (tmp_path / "report.md").read_text() == "text"
