"""Pin a process to N cores before a framework starts its thread pools.

XLA sizes its CPU pool from the process's CPU affinity and PyTorch honours set_num_threads;
restricting the affinity first gives both frameworks the same N cores, and is why this must run
before `import jax` / `import torch`.
"""

from __future__ import annotations

import os

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin_threads(threads: int) -> list[int]:
    """Restrict this process to `threads` cores (all if fewer exist); returns the cores used."""
    cores = available_cores()[:threads]
    os.sched_setaffinity(0, cores)
    for name in _THREAD_ENV:
        os.environ[name] = str(len(cores))
    return cores
