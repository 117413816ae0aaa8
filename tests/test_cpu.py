"""The host CPU in run records, and the AVX2 caps that `.ci/run` runs the tests under."""

import json
import os
import subprocess
import sys

from common import cpu

_PROBE = """
import json
import torch, jax, jax.numpy as jnp
from common import cpu
jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()  # XLA parses its flags
print(json.dumps({"aten": torch.backends.cpu.get_cpu_capability(), **cpu.describe()}))
"""


def run(args, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=env)


def test_the_avx2_cap_reaches_every_library():
    printed = run(["-m", "common.cpu", "avx2"])
    assert printed.returncode == 0
    env = dict(pair.split("=", 1) for pair in printed.stdout.split())
    assert env == cpu.AVX2
    probe = run(["-c", _PROBE], env={**os.environ, **env})
    assert probe.returncode == 0, probe.stderr
    assert "Unknown CPU ISA" not in probe.stderr  # XLA took --xla_cpu_max_isa
    seen = json.loads(probe.stdout.splitlines()[-1])
    if cpu.vector_isa() in ("avx512", "avx2"):
        assert seen["aten"] == "AVX2"  # PyTorch's kernels really are capped
    assert seen["isa_caps"] == cpu.AVX2


def test_caps_in_force_reads_the_environment(monkeypatch):
    for name in cpu.AVX2:
        monkeypatch.delenv(name, raising=False)
    assert cpu.caps_in_force() == {}
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert cpu.caps_in_force() == {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert "XLA_FLAGS" not in cpu.caps_in_force()  # other XLA flags are no cap


def test_the_cpu_is_named_from_proc_cpuinfo():
    with open("/proc/cpuinfo") as f:
        names = {line.split(":", 1)[1].strip() for line in f if line.startswith("model name")}
    assert cpu.model() in names
    with open("/proc/cpuinfo") as f:
        assert (cpu.vector_isa() == "avx512") == (" avx512f" in f.read())


def test_an_unknown_cap_is_one_line_and_exit_2():
    result = run(["-m", "common.cpu", "avx9"])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "error: avx9: give one of avx2"
