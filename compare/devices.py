"""One device for every run of a sweep or bench, decided before the first run starts.

`device=auto` inside one backend means "a GPU if this framework sees one". A CUDA PyTorch beside
a CPU-only jaxlib would then time one framework on each device, and nothing in either run says
so. So the harness asks each backend, in a process of its own (the frameworks never share one),
which GPU it sees, and resolves `auto` for all of them at once: the GPU only if every backend
sees it, else the CPU, with a note saying why.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common.config import ConfigError

_PROBE = "from common.backends import module; print(module({backend!r}, 'runtime').gpu_name() or '')"


def visible_gpu(backend: str) -> str | None:
    """The GPU `backend` would use, asked in a fresh process; None if it sees none."""
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(backend=backend)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{backend}: cannot start the framework to look for a GPU: {tail}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else None


def resolve(requested: str, backends: Iterable[str], probe=visible_gpu) -> tuple[str, str]:
    """(device every run gets, a line saying why). Raises ConfigError for device=gpu where a
    backend sees no GPU."""
    backends = list(backends)
    if requested == "cpu":
        return "cpu", "device cpu (asked for)"
    with ThreadPoolExecutor(len(backends)) as pool:
        seen = dict(zip(backends, pool.map(probe, backends)))
    blind = [b for b, gpu in seen.items() if gpu is None]
    if requested == "gpu" and blind:
        raise ConfigError(f"device='gpu': {blind[0]} sees no GPU")
    if not blind:
        names = sorted(set(seen.values()))
        return "gpu", f"device {requested}: every backend sees a GPU ({', '.join(names)})"
    if len(blind) == len(backends):
        return "cpu", f"device {requested}: no backend sees a GPU, all run on the CPU"
    sighted = [b for b in backends if b not in blind]
    return "cpu", (f"device {requested}: {', '.join(sighted)} sees a GPU but {', '.join(blind)} does not, "
                   f"so every backend runs on the CPU (install GPU builds of both, README 'On a GPU')")


def mixed(records: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Backend -> the devices its records ran on, when the records span more than one device."""
    by_backend: dict[str, set[str]] = {}
    for r in records:
        if r.get("env"):
            device = {"cuda": "gpu"}.get(r["env"]["device"], r["env"]["device"])  # older torch records
            by_backend.setdefault(r["backend"], set()).add(device)
    devices = set().union(*by_backend.values()) if by_backend else set()
    return by_backend if len(devices) > 1 else {}
