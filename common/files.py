"""Writing outputs so that a crash, a kill or a full disk never leaves a torn or empty file.

Whole files (reports, JSON, PNGs) are written beside their target and renamed over it: a reader
sees the old file or the whole new one. Records are appended one fsync'd line at a time, and a
line the disk could not take is cut back off. Every failure is a `WriteFailed` naming the file
and the operating system's reason, which the command lines print as one line (common/app.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


class WriteFailed(Exception):
    """An output could not be written (disk full, folder gone, permissions); names the file."""


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path` (same suffix, so writers that go by the extension
    still work); once the block has written it, it replaces `path`. On failure the temporary
    file is removed, `path` is left as it was, and WriteFailed is raised."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WriteFailed(f"cannot write {path}: {_reason(e)}") from None


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a torn one."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it; if the disk cannot take all of it, cut the file back to
    where it was, so the file stays whole lines."""
    data = line.encode() + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise WriteFailed(f"cannot write {path}: {_reason(e)}") from None
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise WriteFailed(f"cannot write {path}: {_reason(e)}") from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError of the block into WriteFailed naming `path`."""
    try:
        yield
    except OSError as e:
        raise WriteFailed(f"cannot write {path}: {_reason(e)}") from None
