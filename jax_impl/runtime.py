"""Process-wide JAX settings: device, float64, float32 matmul precision.

Threads are pinned by CPU affinity before JAX starts (common.threads): XLA sizes its CPU pool
from the affinity mask. GPU memory is taken as needed (jax_impl/__init__.py).
"""

from __future__ import annotations

import collections
import logging
import os
import platform
from typing import Any

import flax
import jax
import optax

from common.config import Config, ConfigError


def gpu_name() -> str | None:
    """The GPU JAX would use, or None (a CPU-only jaxlib, or no GPU)."""
    # Probing for accelerators logs each missing plugin (libtpu, CUDA) at INFO: keep it quiet.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
        return jax.devices("gpu")[0].device_kind
    except RuntimeError:
        return None


def select_device(cfg: Config) -> jax.Device:
    if cfg.device != "cpu" and gpu_name() is not None:
        return jax.devices("gpu")[0]
    if cfg.device == "gpu":
        raise ConfigError("device='gpu': JAX sees no GPU (is a CUDA jaxlib installed, e.g. jax[cuda13]?)")
    return jax.devices("cpu")[0]


def free_device_memory(cfg: Config) -> int | None:
    """Bytes free on the GPU this config runs on; None when it runs on the CPU (host memory)."""
    device = select_device(cfg)
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0)


# Persistent-cache events since the process started: a compile that only loaded its program from
# the cache is reported as a hit, never as a cold compile.
CACHE_EVENTS = collections.Counter()
jax.monitoring.register_event_listener(
    lambda event, **_: CACHE_EVENTS.update([event]) if event.startswith("/jax/compilation_cache/") else None)


def cache_outcome(before: collections.Counter) -> str:
    """'hit' if every program compiled since `before` (a copy of CACHE_EVENTS) came from the
    persistent cache, else 'compiled'."""
    hits = CACHE_EVENTS["/jax/compilation_cache/cache_hits"] - before["/jax/compilation_cache/cache_hits"]
    misses = CACHE_EVENTS["/jax/compilation_cache/cache_misses"] - before["/jax/compilation_cache/cache_misses"]
    return "hit" if hits and not misses else "compiled"


def compilation_cache_dir() -> str | None:
    """Where compiled programs persist across processes: $ADDER_JAX_CACHE ('' turns it off)."""
    path = os.environ.get("ADDER_JAX_CACHE", os.path.expanduser("~/.cache/rnn-adder/jax"))
    return path or None


def enable_compilation_cache() -> None:
    """A rerun of a config (another seed, a resumed sweep) loads its programs instead of
    compiling them again."""
    path = compilation_cache_dir()
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def configure_process(cfg: Config) -> None:
    """Settings for a process that runs this one config and nothing else (the command line).

    A CPU run never starts JAX's GPU backend: no CUDA context, no GPU memory. This cannot be
    undone once JAX has started, so `configure`, which every Trainer calls, must not do it: a
    later GPU trainer in the same process (the tests, the GPU check) would silently stay on CPU.
    """
    if cfg.device == "cpu":
        jax.config.update("jax_platforms", "cpu")


def configure(cfg: Config) -> jax.Device:
    """float64 when asked, full-fp32 (or TF32 on a GPU when cfg.tf32) matmuls; returns the device.

    Everything here can be set again by the next Trainer in the same process.
    """
    enable_compilation_cache()
    jax.config.update("jax_enable_x64", cfg.dtype == "float64")
    device = select_device(cfg)
    # A GPU may round float32 matmuls to TF32 unless told not to. A CPU always computes them in
    # full float32, and asking for "highest" there only picks a slower kernel for the small
    # recurrent matmul (measured: 33 us vs 20 us for (200x64)@(64x64)).
    precision = ("tensorfloat32" if cfg.tf32 else "highest") if device.platform == "gpu" else None
    jax.config.update("jax_default_matmul_precision", precision)
    jax.config.update("jax_default_device", device)  # init, PRNG keys, constants: all here
    return device


def describe(device: jax.Device) -> dict[str, Any]:
    name = device.device_kind if device.platform == "gpu" else platform.processor()
    return {
        "framework": f"jax {jax.__version__} / flax {flax.__version__} / optax {optax.__version__}",
        "device": "gpu" if device.platform == "gpu" else "cpu",
        "device_name": name or platform.machine(),
        "threads": len(os.sched_getaffinity(0)),
        "matmul_precision": jax.config.jax_default_matmul_precision or "default (float32 on CPU)",
        "compilation_cache": compilation_cache_dir(),
        "flush_denormal": True,  # XLA:CPU flushes subnormals to zero (tests/test_runtime.py)
    }
