"""The backends by name: `jax_impl` and `torch_impl` are mirror images (the same modules, core,
adder, sentiment, runtime, params, model, with the same names), so everything that picks one by
name goes through here. Importing this module starts no framework; `module` does, for the
backend it is asked for.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from common.config import ConfigError, RunConfig
from common.threads import host_threads, pin_threads

BACKENDS = ("jax", "torch")


def package(backend: str) -> str:
    """The backend's package, as `python -m` takes it; ConfigError for an unknown backend."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: backends are {', '.join(BACKENDS)}")
    return f"{backend}_impl"


def module(backend: str, part: str) -> ModuleType:
    """`<backend>_impl.<part>` (e.g. "adder", "runtime"), imported now with its framework."""
    return importlib.import_module(f"{package(backend)}.{part}")


def start(backend: str, cfg: RunConfig) -> tuple[ModuleType, list[int]]:
    """For a process that runs `cfg` (or configs pinned as it is): pin it to the run's host cores,
    then start the backend (frameworks size their thread pools when they start) with the
    process-wide settings of its device. Returns (the backend's runtime module, the cores)."""
    cores = pin_threads(host_threads(cfg))
    runtime = module(backend, "runtime")
    runtime.configure_process(cfg)
    return runtime, cores
