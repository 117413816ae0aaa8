"""Process-wide framework settings (jax_impl/runtime.py, torch_impl/runtime.py), as found by the
first GPU run: one vocabulary for devices, nothing irreversible per trainer, no preallocation."""

import os
import subprocess
import sys

import pytest

from common.config import Config


def test_both_backends_name_a_gpu_the_same(monkeypatch):
    # JAX recorded "gpu", PyTorch "cuda": every GPU sweep then warned of mixed devices.
    import torch

    from torch_impl import runtime

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    assert runtime.describe(torch.device("cuda"))["device"] == "gpu"
    assert runtime.describe(torch.device("cpu"))["device"] == "cpu"


def test_a_trainer_leaves_jax_platforms_alone():
    # Setting jax_platforms=cpu per trainer cannot be undone: a later GPU trainer in the same
    # process would silently run on the CPU. Only a one-config process may do it.
    import jax

    from jax_impl.adder import Trainer

    before = jax.config.jax_platforms
    Trainer(Config(device="cpu", batch_size=4, eval_size=4))
    assert jax.config.jax_platforms == before


def test_a_one_config_cpu_process_never_starts_a_gpu_backend():
    code = ("import jax; from common.config import Config; from jax_impl import runtime; "
            "runtime.configure_process(Config(device='cpu')); print(jax.config.jax_platforms)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "cpu", out.stderr


@pytest.mark.parametrize("module", ["jax_impl", "jax_impl.runtime", "jax_impl.adder"])
def test_importing_the_jax_backend_turns_off_gpu_preallocation(module):
    # Under pytest a skip check started JAX's GPU backend before any trainer's configure() could
    # say so, and JAX took 75 % of the GPU for the whole session.
    env = {k: v for k, v in os.environ.items() if k != "XLA_PYTHON_CLIENT_PREALLOCATE"}
    code = f"import {module}, os; print(os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.strip() == "false", out.stderr


def test_both_backends_flush_subnormals_on_the_cpu():
    """XLA:CPU flushes subnormal floats to zero; PyTorch is set to as well (torch_impl/runtime.py),
    else an RNN's vanishing gradients go subnormal and its CPU steps slow down 6x."""
    import jax
    import jax.numpy as jnp
    import torch

    from common.config import Config
    from torch_impl import runtime

    tiny = [1e-39, 1e-40]  # subnormal in float32
    assert jax.device_get(jax.jit(lambda x: x * 1.5)(jnp.array(tiny, jnp.float32))).tolist() == [0.0, 0.0]
    try:
        torch.set_flush_denormal(False)
        assert runtime.describe(torch.device("cpu"))["flush_denormal"] is False
        assert (torch.tensor(tiny) * 1.5).tolist() != [0.0, 0.0]
        runtime.configure(Config(device="cpu"))
        assert (torch.tensor(tiny) * 1.5).tolist() == [0.0, 0.0]
        assert runtime.describe(torch.device("cpu"))["flush_denormal"] is True
    finally:
        torch.set_flush_denormal(True)
