import functools
import sys

import pytest

import jax_impl  # noqa: F401  before any JAX backend starts: no GPU preallocation (see the package)
from common.backends import BACKENDS, module


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def trainer_for(backend, cfg):
    return module(backend, "adder").Trainer(cfg)


@functools.cache
def gpu_available() -> bool:
    """A GPU that both frameworks can use (the GPU tests need both)."""
    from jax_impl.runtime import gpu_name as jax_gpu
    from torch_impl.runtime import gpu_name as torch_gpu

    return jax_gpu() is not None and torch_gpu() is not None


requires_gpu = pytest.mark.skipif(not gpu_available(), reason="no GPU visible to both JAX and PyTorch")


def small_disk(limit: int, argv: list[str]) -> list[str]:
    """argv run as if the disk had room for files of `limit` bytes only: RLIMIT_FSIZE makes larger
    writes fail (EFBIG, "File too large") as a full disk does, in the process and its children.
    Set in a wrapper that execs, not in a preexec_fn: forking a process that runs JAX is unsafe."""
    setup = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    return [sys.executable, "-c", setup, *argv]
