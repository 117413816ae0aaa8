"""The backends by name: `jax_impl` and `torch_impl` are mirror images (the same modules, core,
adder, sentiment, runtime, params, model, with the same names), so everything that picks one by
name goes through here. Importing this module starts no framework; `module` does, for the
backend it is asked for.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from common.config import ConfigError

BACKENDS = ("jax", "torch")


def package(backend: str) -> str:
    """The backend's package, as `python -m` takes it; ConfigError for an unknown backend."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: backends are {', '.join(BACKENDS)}")
    return f"{backend}_impl"


def module(backend: str, part: str) -> ModuleType:
    """`<backend>_impl.<part>` (e.g. "adder", "runtime"), imported now with its framework."""
    return importlib.import_module(f"{package(backend)}.{part}")
