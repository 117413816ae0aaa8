"""Mid-run checkpoints: the file format, its atomic writes, and which file a rerun trusts.

Framework-free (no jax or torch here) and workload-free: a checkpoint holds a step number, flat
numpy arrays (whatever a trainer's `state()` returns) and a JSON block (whatever the loop keeps:
its curve, its timers), so both workloads' runs (common/training.py) use it unchanged.

One file per checkpoint, `BACKEND-CONFIGHASH-STEP.ckpt.npz` in the checkpoint folder: an
uncompressed .npz of the arrays (named a0, a1, …; their real names are in the metadata, so any
name is safe) plus `__meta__`, the JSON metadata as bytes: format, backend, the config's JSON,
the step, the array names, a sha256 of the arrays (names, dtypes, shapes and bytes) and the
caller's own block. It is written beside its target, fsync'd, renamed over it and the folder
fsync'd (common.files.replacing), so a kill leaves the old file or the whole new one. The two
latest are kept: a latest file that is torn, fails its checksum, cannot be read, or belongs to
another config or backend is ignored (never trusted) and the one before it is used. The name
comes from the backend and a hash of the config JSON, so a rerun of the same config finds its
checkpoints and another config never does; the metadata is checked as well, as the name could lie.

Why not orbax or torch.save: one format for both frameworks (a checkpoint is plain arrays, the
same on both sides), nothing to unpickle (np.load with allow_pickle=False cannot run code from a
file), no new dependency, and the atomicity and keep-two rules live here, once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from common.config import ConfigError
from common.files import replacing, writing

FORMAT = 2  # 2: trainers save the interval's loss sum, the loop the workload's notes; a 1 is not resumed
_SUFFIX = ".ckpt.npz"
_META = "__meta__"
_KEEP = 2


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Whether and where a run saves checkpoints: every `every` steps (0: never) into `dir`.
    Not a Config field: it does not change what a run computes, only whether a rerun resumes."""

    every: int = 0
    dir: str = ""

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int):
            raise ConfigError(f"--checkpoint_every={self.every!r}: must be a whole number")
        if self.every < 0:
            raise ConfigError(f"--checkpoint_every={self.every}: must be >= 0 (0: no checkpoints)")
        if not isinstance(self.dir, str):
            raise ConfigError(f"--checkpoint_dir={self.dir!r}: must be a path")
        if self.every and not self.dir:
            raise ConfigError(f"--checkpoint_every={self.every}: needs --checkpoint_dir")

    @property
    def on(self) -> bool:
        return self.every > 0

    def check_group(self, runs: int) -> None:
        """Checkpoints are of single runs: ConfigError for seeds trained together (JAX vmap)."""
        if self.on and runs > 1:
            raise ConfigError(f"--checkpoint_every={self.every} with --vmap_seeds={runs}: "
                              "checkpoints are of single runs")

    @classmethod
    def from_dict(cls, d: Any) -> Checkpointing:
        """From a serve request's "checkpoint" object: {"every": N, "dir": "…"}."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ConfigError(f"checkpoint must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {"every", "dir"})
        if unknown:
            raise ConfigError(f"unknown checkpoint field {unknown[0]!r}")
        return cls(**d)


@dataclasses.dataclass
class Snapshot:
    """One checkpoint as read back: its step, the trainer's arrays and the caller's JSON block."""

    step: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path


class Corrupt(Exception):
    """A checkpoint file that must not be trusted; the message says why."""


def digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        x = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{x.dtype.str}\0{x.shape}\0".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (the file's own fsync does not cover its name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpoints:
    """The checkpoints of one run: one backend, one config (its JSON), in `settings.dir`."""

    def __init__(self, settings: Checkpointing, backend: str, config_json: str):
        if not settings.on:
            raise ValueError("checkpointing is off")
        self.settings = settings
        self.dir = Path(settings.dir)
        self.backend = backend
        self.config_json = config_json
        self.prefix = f"{backend}-{hashlib.sha1(config_json.encode()).hexdigest()[:16]}"
        self._name = re.compile(rf"{re.escape(self.prefix)}-(\d+){re.escape(_SUFFIX)}")
        self.rejected: list[tuple[Path, str]] = []  # files latest() passed over, and why

    def due(self, step: int) -> bool:
        return step % self.settings.every == 0

    def path(self, step: int) -> Path:
        return self.dir / f"{self.prefix}-{step:09d}{_SUFFIX}"

    def files(self) -> dict[int, Path]:
        """This run's checkpoint files by step (whatever is in them)."""
        if not self.dir.is_dir():
            return {}
        found = {}
        for p in self.dir.iterdir():
            m = self._name.fullmatch(p.name)
            if m:
                found[int(m.group(1))] = p
        return found

    def save(self, step: int, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Write the checkpoint of `step` atomically, then keep it and the one before it only.
        common.files.WriteFailed (naming the file) if the disk or the folder fails."""
        names = sorted(arrays)
        arrays = {n: np.asarray(arrays[n]) for n in names}
        for n, x in arrays.items():
            if x.dtype.hasobject:
                raise TypeError(f"checkpoint array {n!r} holds Python objects")
        header = {"format": FORMAT, "backend": self.backend, "config": self.config_json, "step": step,
                  "arrays": names, "sha256": digest(arrays), "meta": meta}
        payload = {f"a{i}": arrays[n] for i, n in enumerate(names)}
        payload[_META] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        path = self.path(step)
        with writing(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **payload)
        with writing(self.dir):
            _fsync_dir(self.dir)
        self._prune(step)
        return path

    def _prune(self, step: int) -> None:
        """Keep `step` and the latest before it; a later one is a leftover of a run that was
        resumed from an earlier checkpoint (torn or untrusted), and goes too."""
        files = self.files()
        keep = sorted((s for s in files if s <= step), reverse=True)[:_KEEP]
        for s, p in files.items():
            if s not in keep:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    def read(self, path: Path) -> Snapshot:
        """The checkpoint in `path`; Corrupt if it is torn, unreadable, fails its checksum or is
        not this run's."""
        m = self._name.fullmatch(path.name)
        if not m:
            raise Corrupt("not a checkpoint of this run (its name)")
        try:
            with np.load(path, allow_pickle=False) as z:
                if _META not in z.files:
                    raise Corrupt("no metadata")
                header = json.loads(z[_META].tobytes().decode())
                if not isinstance(header, dict):
                    raise Corrupt("metadata is not a JSON object")
                names = header.get("arrays")
                if not isinstance(names, list) or set(z.files) != {_META, *(f"a{i}" for i in range(len(names)))}:
                    raise Corrupt("its arrays do not match its metadata")
                arrays = {n: z[f"a{i}"] for i, n in enumerate(names)}
        except Corrupt:
            raise
        except (OSError, EOFError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile,
                zlib.error) as e:
            raise Corrupt(f"unreadable ({type(e).__name__}: {e})") from None
        for field, want in (("format", FORMAT), ("backend", self.backend), ("config", self.config_json),
                            ("step", int(m.group(1)))):
            if header.get(field) != want:
                raise Corrupt(f"{field} is {header.get(field)!r}, not {want!r}")
        if header.get("sha256") != digest(arrays):
            raise Corrupt("checksum mismatch")
        return Snapshot(step=header["step"], arrays=arrays, meta=header.get("meta"), path=path)

    def latest(self) -> Snapshot | None:
        """The newest checkpoint that reads back whole and is this run's; None if there is none.
        Files passed over are listed in `rejected` with the reason."""
        self.rejected = []
        for step, path in sorted(self.files().items(), reverse=True):
            try:
                return self.read(path)
            except Corrupt as e:
                self.rejected.append((path, str(e)))
        return None

    def clear(self) -> None:
        """A finished run: delete its checkpoints, and temporary files a killed writer left."""
        if not self.dir.is_dir():
            return
        tmp = re.compile(rf"\.{re.escape(self.prefix)}-\d+\.ckpt\.\d+\.tmp\.npz")
        for p in self.dir.iterdir():
            if self._name.fullmatch(p.name) or tmp.fullmatch(p.name):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

