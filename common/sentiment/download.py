"""Download IMDB or GloVe: `python -m common.sentiment.download --what imdb|glove [--dir DIR]`.

A download goes to NAME.part, resumes from there with an HTTP Range request when rerun (and
starts over when the server ignores Range), and becomes NAME only once its size and checksum
match; a mismatch removes it. IMDB is then extracted into a temporary folder renamed into
place, so DIR/aclImdb is whole or absent. GloVe stays zipped (vectors.py reads the member from
the zip; unpacked, glove.6B is 2 GB). Nothing touches the network until main runs.

Bad flags are one line and exit status 2; a failed download or check one line and exit 1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from absl import flags
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from common.app import fail, run_app
from common.files import writing
from common.sentiment import DataError, default_cache_dir

_CHUNK = 1 << 20
_TIMEOUT_S = 60


class DownloadFailed(Exception):
    """A download stopped or is not the expected file; says whether a rerun resumes it."""


@dataclasses.dataclass(frozen=True)
class Remote:
    name: str                  # file name, appended to the base URL
    base_url: str              # the official folder, ending in /
    size: int                  # bytes
    digest: str                # "algorithm:hex" of the whole file
    extract: str | None = None  # the folder a tar archive holds, extracted beside it; None: kept packed


REMOTES = {
    # sha256 as pinned by TensorFlow Datasets and Hugging Face's imdb dataset.
    "imdb": Remote("aclImdb_v1.tar.gz", "https://ai.stanford.edu/~amaas/data/sentiment/", 84_125_825,
                   "sha256:c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
                   extract="aclImdb"),
    # Stanford publishes no checksum and no sha256 of this zip could be found; this is the md5
    # that download scripts have pinned since 2014 (enough to catch a torn or wrong file).
    "glove": Remote("glove.6B.zip", "https://downloads.cs.stanford.edu/nlp/data/", 862_182_613,
                    "md5:056ea991adb4740ac6bf1b6d9b50408b"),
}


def _offered_size(response: http.client.HTTPResponse, start: int) -> int | None:
    """The whole file's size as the server states it (Content-Range or Content-Length)."""
    if response.status == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) + start if length and length.isdigit() else None


def _download(url: str, part: Path, size: int) -> None:
    """Bring `part` up to `size` bytes from `url`, resuming what is there."""
    have = part.stat().st_size if part.is_file() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            sent = response.headers.get("Content-Range", "")
            if response.status == 206 and not sent.startswith(f"bytes {have}-"):
                part.unlink()
                raise DownloadFailed(f"{url}: asked for bytes {have}- and got {sent!r}; "
                                     "the partial download was removed, run again")
            resumed = response.status == 206
            have = have if resumed else 0  # a server that ignores Range sends it all again
            offered = _offered_size(response, have)
            if offered is not None and offered != size:
                part.unlink(missing_ok=True)
                raise DownloadFailed(f"{url}: the server offers {offered} bytes, expected {size} (another file?)")
            progress = Progress(TextColumn(part.stem), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True))
            with progress, writing(part), open(part, "ab" if resumed else "wb") as f:
                task = progress.add_task("download", total=size, completed=have)
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    progress.advance(task, len(chunk))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the server cannot resume from here: start over
            part.unlink()
            return _download(url, part, size)
        raise DownloadFailed(f"{url}: HTTP {e.code} {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:  # writes raise WriteFailed, not OSError
        got = part.stat().st_size if part.is_file() else 0
        raise DownloadFailed(f"{url}: stopped at {got} of {size} bytes ({getattr(e, 'reason', e)}); "
                             "run again to resume") from None
    got = part.stat().st_size
    if got < size:
        raise DownloadFailed(f"{url}: the connection closed at {got} of {size} bytes; run again to resume")


def _verify(part: Path, remote: Remote) -> None:
    """The checksum (the size was checked on the way), or the file is removed: a wrong file is
    not worth resuming."""
    algorithm, expected = remote.digest.split(":")
    digest = hashlib.new(algorithm)
    with open(part, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        part.unlink()
        raise DownloadFailed(f"{remote.name}: checksum mismatch ({algorithm} {digest.hexdigest()}, "
                             f"expected {expected}); the download was removed")


def _extract(archive: Path, name: str) -> Path:
    """Unpack `name`/ from a tar archive beside it; renamed into place only once whole."""
    target = archive.parent / name
    if target.is_dir():
        return target
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=archive.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")  # no absolute paths, links out, devices
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise DataError(f"{archive}: not a readable tar archive ({e})") from None
        if not (scratch / name).is_dir():
            raise DataError(f"{archive}: holds no {name}/ folder")
        os.replace(scratch / name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def fetch(remote: Remote, folder: Path, base_url: str | None = None) -> Path:
    """The verified file (or its extracted folder) in `folder`, downloaded if not there yet."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    if not target.is_file():
        part = folder / f"{remote.name}.part"
        _download(f"{(base_url or remote.base_url).rstrip('/')}/{remote.name}", part, remote.size)
        _verify(part, remote)
        os.replace(part, target)
    return _extract(target, remote.extract) if remote.extract else target


def define_flags() -> None:
    flags.DEFINE_enum("what", None, list(REMOTES), "imdb: aclImdb_v1.tar.gz, extracted; glove: glove.6B.zip")
    flags.DEFINE_string("dir", str(default_cache_dir()), "folder to download into (created)")
    flags.DEFINE_string("base_url", None, "download from this folder URL instead of the official one (a mirror)")
    flags.mark_flag_as_required("what")


def main(argv: list[str]) -> None:
    FLAGS = flags.FLAGS
    if FLAGS.base_url is not None and not FLAGS.base_url.startswith(("http://", "https://")):
        fail(f"--base_url={FLAGS.base_url!r}: must start with http:// or https://")
    try:
        print(fetch(REMOTES[FLAGS.what], Path(FLAGS.dir), FLAGS.base_url))
    except (DownloadFailed, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_app(main, define_flags)
