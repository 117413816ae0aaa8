import functools
import importlib

import pytest

import jax_impl  # noqa: F401  before any JAX backend starts: no GPU preallocation (see the package)

BACKENDS = ("jax", "torch")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def trainer_for(backend, cfg):
    return importlib.import_module(f"{backend}_impl.train").Trainer(cfg)


@functools.cache
def gpu_available() -> bool:
    """A GPU that both frameworks can use (the GPU tests need both)."""
    from jax_impl.runtime import gpu_name as jax_gpu
    from torch_impl.runtime import gpu_name as torch_gpu

    return jax_gpu() is not None and torch_gpu() is not None


requires_gpu = pytest.mark.skipif(not gpu_available(), reason="no GPU visible to both JAX and PyTorch")
