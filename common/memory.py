"""Will a config fit in this machine's memory? Asked before anything is built or trained.

A config like `--hidden 100000` or `--digits 10000000` is valid arithmetic but needs terabytes;
without this check it fails (or drags the machine into swap) only once training has started. The
estimate counts what a run holds at its peak, on the device (weights, their gradients and Adam's
two moments; the activations the backward pass keeps, and their gradients; one eval chunk) and on
the host (a training batch with the temporaries that make it, the held-out set, the length tests'
sets, the probe's hidden states). It is an upper-side estimate within a small factor, not an
accounting: it exists to refuse the impossible at once, so it must never refuse a run the study
makes (the paper presets' largest, 5000 digits, comes to 4.5 GB here; tests/test_memory.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from common.config import Config, ConfigError
from common.data import eval_chunk_size
from common.params import GATES, param_shapes

# What a framework holds before a run allocates anything (imported, runtime started): measured RSS
# of a fresh CPU process after import is 0.3-0.5 GB for either framework.
FRAMEWORK_BYTES = 512 * 2**20
# Host bytes per digit of a batch: a, b and target as int32, plus the int32/bool temporaries of
# rejection sampling (twice the rows) and of the carry-lookahead.
_HOST_BYTES_PER_DIGIT = 48
_PROBE_SEQUENCES = 1000


@dataclasses.dataclass(frozen=True)
class Estimate:
    device: int  # bytes where the model computes (the host too, on a CPU run)
    host: int    # bytes of data made and held on the host

    def total(self) -> int:
        return self.device + self.host


def _activations(cfg: Config, sequences: int, kept: bool) -> int:
    """Bytes of one forward pass over `sequences`; with `kept`, also what backward adds."""
    width = 2 * cfg.embed + 3 * cfg.base  # embeddings in; logits, softmax and its gradient out
    if cfg.cell != "none":
        width += cfg.layers * cfg.hidden * (GATES[cfg.cell] + 2)  # gates, state, output
    per = sequences * cfg.positions * width * _itemsize(cfg)
    return 2 * per if kept else per


def _itemsize(cfg: Config) -> int:
    return 8 if cfg.dtype == "float64" else 4


def _data(cfg: Config, sequences: int) -> int:
    h0 = cfg.state_parts * cfg.layers * sequences * cfg.hidden * _itemsize(cfg)
    return sequences * cfg.positions * _HOST_BYTES_PER_DIGIT + h0


def estimate(cfg: Config, seeds: int = 1) -> Estimate:
    """Peak bytes of `seeds` seeds of `cfg` trained together in one process."""
    weights = sum(math.prod(s) for s in param_shapes(cfg).values()) * _itemsize(cfg)
    device = seeds * (4 * weights + _activations(cfg, cfg.batch_size, kept=True)
                      + _activations(cfg, eval_chunk_size(cfg), kept=False))
    host = seeds * (weights + _data(cfg, cfg.batch_size) + _data(cfg, cfg.eval_size))
    tests = [cfg.replace(digits=n, eval_size=cfg.test_size) for n in cfg.test_lengths]
    if tests:  # after training, one test length at a time
        host += seeds * max(_data(t, t.eval_size) for t in tests)
        device += seeds * max(_activations(t, eval_chunk_size(t), kept=False) for t in tests)
    if cfg.probe:
        host += seeds * 2 * cfg.layers * _PROBE_SEQUENCES * cfg.positions * cfg.hidden * _itemsize(cfg)
    return Estimate(device=device, host=host)


def available_host_bytes() -> int:
    """Memory this process may still take: the kernel's MemAvailable, or less under a cgroup
    limit (containers, CI runners)."""
    limits = [_meminfo_available()]
    cgroup = _cgroup_room()
    if cgroup is not None:
        limits.append(cgroup)
    return min(limits)


def check(cfg: Config, seeds: int = 1, jobs: int = 1, device_free: int | None = None) -> Estimate:
    """Raise ConfigError, with the estimate and the limit, if `seeds` seeds of `cfg` cannot fit;
    `jobs` runs side by side share the host; `device_free` is a GPU's free bytes (None: the run
    computes on the host)."""
    return check_estimate(estimate(cfg, seeds), _what(cfg, seeds), jobs, device_free)


def check_estimate(need: Estimate, what: str, jobs: int = 1, device_free: int | None = None) -> Estimate:
    """`check` for an estimate made elsewhere (another workload's); `what` names the run."""
    host_need = need.host + FRAMEWORK_BYTES + (need.device if device_free is None else 0)
    room = available_host_bytes() // jobs
    if host_need > room:
        share = f" (1/{jobs} of it per parallel job)" if jobs > 1 else ""
        raise ConfigError(f"{what} needs about {_gb(host_need)} of memory, "
                          f"this machine has {_gb(room)} available{share}")
    if device_free is not None and need.device > device_free:
        raise ConfigError(f"{what} needs about {_gb(need.device)} of GPU memory, "
                          f"the GPU has {_gb(device_free)} free")
    return need


def _what(cfg: Config, seeds: int) -> str:
    sizes = (f"digits={cfg.digits}, batch_size={cfg.batch_size}, layers={cfg.layers}, hidden={cfg.hidden}, "
             f"embed={cfg.embed}, eval_size={cfg.eval_size}")
    if cfg.test_lengths:
        sizes += f", test_lengths up to {max(cfg.test_lengths)} x {cfg.test_size}"
    return f"{cfg.cell} with {sizes}" + (f", {seeds} seeds at once" if seeds > 1 else "")


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n < 2**40 * 10 else f"{n / 2**40:.0f} TB"


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _cgroup_room() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, or v1's memory controller), if it
    has a limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # v2
            folder, limit_file, usage_file = Path("/sys/fs/cgroup"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # v1
            folder, limit_file, usage_file = (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes",
                                              "memory.usage_in_bytes")
        else:
            continue
        folder = folder / rel.strip().lstrip("/")
        try:
            limit = (folder / limit_file).read_text().strip()
            usage = int((folder / usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < 2**60:  # v1 writes "no limit" as a huge number
            return int(limit) - usage
    return None
