"""One device for a whole sweep: `auto` resolved once, for every backend together."""

import pytest

from common.config import ConfigError
from compare import devices


def probe(seen):
    return lambda backend: seen[backend]


def test_gpu_only_when_every_backend_sees_it():
    both = probe({"jax": "NVIDIA H200", "torch": "NVIDIA H200"})
    assert devices.resolve("auto", ["jax", "torch"], both)[0] == "gpu"
    assert devices.resolve("gpu", ["jax", "torch"], both)[0] == "gpu"


def test_a_cuda_torch_beside_a_cpu_jaxlib_runs_both_on_the_cpu():
    half = probe({"jax": None, "torch": "NVIDIA H200"})
    device, note = devices.resolve("auto", ["jax", "torch"], half)
    assert device == "cpu" and "torch sees a GPU but jax does not" in note
    with pytest.raises(ConfigError, match="device='gpu': jax sees no GPU"):
        devices.resolve("gpu", ["jax", "torch"], half)
    assert devices.resolve("auto", ["torch"], half)[0] == "gpu"  # a torch-only sweep may use it


def test_cpu_asks_nobody():
    def never(backend):
        raise AssertionError("probed")
    assert devices.resolve("cpu", ["jax", "torch"], never) == ("cpu", "device cpu (asked for)")


def test_the_real_probe_on_this_machine():
    # Each answer comes from the framework itself, in a process of its own, and matches what the
    # framework says in this one (no GPU here: None; on a GPU box: the device's name).
    from jax_impl.runtime import gpu_name as jax_gpu
    from torch_impl.runtime import gpu_name as torch_gpu

    assert devices.visible_gpu("jax") == jax_gpu()
    assert devices.visible_gpu("torch") == torch_gpu()
    with pytest.raises(ConfigError, match="nope: cannot start the framework"):
        devices.visible_gpu("nope")


def test_mixed_devices_are_named_and_one_device_is_not():
    rec = lambda backend, device: {"backend": backend, "env": {"device": device}}  # noqa: E731
    assert devices.mixed([rec("jax", "gpu"), rec("torch", "gpu"), {"backend": "jax", "env": None}]) == {}
    # torch records before the device names were unified said "cuda": still one device
    assert devices.mixed([rec("jax", "gpu"), rec("torch", "cuda")]) == {}
    assert devices.mixed([rec("jax", "cpu"), rec("torch", "gpu")]) == {"jax": {"cpu"}, "torch": {"gpu"}}
