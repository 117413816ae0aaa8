"""Process-wide PyTorch settings: device, threads, float32 precision."""

from __future__ import annotations

import platform
from typing import Any

import torch

from common.config import Config, ConfigError
from common.threads import host_threads


def gpu_name() -> str | None:
    """The GPU PyTorch would use, or None (a CPU build, or no GPU)."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def select_device(cfg: Config) -> torch.device:
    if cfg.device != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    if cfg.device == "gpu":
        raise ConfigError("device='gpu': PyTorch sees no CUDA GPU (is a CUDA build installed?)")
    return torch.device("cpu")


def free_device_memory(cfg: Config) -> int | None:
    """Bytes free on the GPU this config runs on; None when it runs on the CPU (host memory)."""
    device = select_device(cfg)
    if device.type == "cpu":
        return None
    return torch.cuda.mem_get_info(device)[0]


def configure_process(cfg: Config) -> None:
    """Settings for a process that runs this one config only: none. PyTorch starts CUDA lazily,
    on the first tensor put there, so a CPU run never touches a GPU anyway."""


def configure(cfg: Config) -> torch.device:
    """Threads, full-fp32 (or TF32 when cfg.tf32) matmuls and cuDNN RNNs; returns the device."""
    device = select_device(cfg)
    torch.set_num_threads(host_threads(cfg))
    if torch.get_num_interop_threads() != 1:
        torch.set_num_interop_threads(1)
    # Only the new precision API: mixing it with the legacy allow_tf32 flags raises in torch>=2.9.
    precision = "tf32" if cfg.tf32 else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.rnn.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision
    # Subnormal numbers flushed to zero on the CPU, as XLA:CPU runs its programs. Without it,
    # gradients that vanish through hundreds of tanh steps turn subnormal and every CPU op on
    # them is microcoded: an RNN-1024 step over 64 texts of 50-400 tokens took 11.6 s, 1.9 s
    # with it (compare.bench text cases). Values below 1.2e-38 (float32) only.
    torch.set_flush_denormal(True)
    return device


def describe(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "framework": f"torch {torch.__version__}",
        "device": "gpu" if device.type == "cuda" else "cpu",  # the same words as JAX's record
        "device_name": name or platform.machine(),
        "threads": torch.get_num_threads(),
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "matmul_precision": torch.backends.cuda.matmul.fp32_precision,
        "flush_denormal": bool(torch.tensor([1e-40]).mul(1.0).item() == 0.0),  # configure() sets it
        "kernel_isa": torch.backends.cpu.get_cpu_capability(),  # ATen's vectorised kernels (common/cpu.py)
    }
