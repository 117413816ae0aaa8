"""Host cores per run, and pinning a process to them before a framework starts its thread pools.

XLA sizes its CPU pool (and its GPU compiler's) from the process's CPU affinity and PyTorch
honours set_num_threads; restricting the affinity first gives both frameworks the same N cores,
and is why pinning must run before `import jax` / `import torch`.

The policy, the same for both frameworks (`threads=0`, the default, picks it):
- a CPU run gets 1 core: the frameworks' thread pools then cannot fight over a shared box, and
  one-core timings are comparable across runs and machines;
- a GPU run gets up to GPU_HOST_CORES cores: there the host compiles (XLA:GPU compiles in
  parallel: the canonical program took 40.4 s on 1 core and 10.7 s on 8 on an H200 box) and
  launches kernels while the next batch is made.
Any other value pins that many cores, whatever the device.
"""

from __future__ import annotations

import glob
import os
import time

from common.config import Config

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
GPU_HOST_CORES = 8


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def gpu_present() -> bool:
    """An NVIDIA GPU's device node exists (read without importing a framework, which must start
    after pinning). Whether a framework can use it is for the framework to say."""
    return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*"))


def runs_on_gpu(cfg: Config) -> bool:
    """What the host-core policy assumes about where this run computes."""
    return cfg.device == "gpu" or (cfg.device == "auto" and gpu_present())


def host_threads(cfg: Config) -> int:
    """Cores for this run: cfg.threads, or for 0 the policy above."""
    if cfg.threads:
        return cfg.threads
    return min(GPU_HOST_CORES, len(available_cores())) if runs_on_gpu(cfg) else 1


def thread_policy(cfg: Config) -> str:
    """How host_threads chose, for the run record."""
    if cfg.threads:
        return f"set: {cfg.threads}"
    return (f"auto: GPU run, up to {GPU_HOST_CORES} host cores" if runs_on_gpu(cfg)
            else "auto: CPU run, 1 core")


def pin_threads(threads: int) -> list[int]:
    """Restrict this process to `threads` cores (all if fewer exist); returns the cores used."""
    if threads < 1:
        raise ValueError(f"pin_threads({threads}): resolve the policy first (host_threads)")
    cores = available_cores()[:threads]
    os.sched_setaffinity(0, cores)
    for name in _THREAD_ENV:
        os.environ[name] = str(len(cores))
    return cores


# Above this share of its cores taken by other processes, a run's timing is not its own.
CONTENDED = 0.1


def _busy_seconds(cores: set[int]) -> float:
    """CPU seconds the kernel has counted as busy on `cores` since boot (all processes)."""
    busy = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                busy += user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


class CoreWatch:
    """What else ran on this process's cores while it was being timed: the busy time the kernel
    counted on them, less this process's own CPU time, as a share of their capacity. 0 means the
    cores were ours alone; 0.5 on one core means another process had half of it. (/proc/stat
    counts in 10 ms ticks: intervals under a second are coarse.)"""

    def __init__(self) -> None:
        self.cores = os.sched_getaffinity(0)
        self.wall, self.own, self.busy = time.perf_counter(), time.process_time(), _busy_seconds(self.cores)

    def others_share(self) -> float | None:
        wall = time.perf_counter() - self.wall
        if wall <= 0:
            return None
        others = (_busy_seconds(self.cores) - self.busy) - (time.process_time() - self.own)
        return min(1.0, max(0.0, others / (wall * len(self.cores))))
