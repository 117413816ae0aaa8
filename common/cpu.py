"""The host CPU, as run records name it, and the switches that cap the kernels' instruction set.

Float32 results that chaos amplifies (where same-seed curves part, a solve step, a verdict that
rests on them) depend on the kernels the frameworks pick for the CPU: PyTorch's vectorised ATen
kernels round differently on AVX-512 and AVX2 (a relu run's loss at step 100 moves in the 5th
digit on this project's AMD EPYC box), so a figure measured on one machine is that machine's.
`AVX2` caps every library the two frameworks use, so one machine can show what an AVX2-only one
would compute: `.ci/run` runs the tests again under it (`python -m common.cpu avx2` prints it).
"""

from __future__ import annotations

import functools
import os
import platform
import sys

# Each library's own switch, capped at AVX2 (set before the library loads):
# - ATen's vectorised kernels (torch.backends.cpu.get_cpu_capability() reports it);
# - XLA:CPU's code generation (jax; its elementwise and reduction results were bit-identical on
#   AVX-512 and AVX2 here, only twice as slow: it is capped for completeness);
# - oneDNN (PyTorch's mkldnn paths) and MKL (PyTorch's float32 matmuls on x86).
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
CAPS = {"avx2": AVX2}


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def model() -> str:
    """The CPU's model name ('AMD EPYC', 'Intel(R) Xeon(R) Platinum 8480+', ...)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def vector_isa() -> str | None:
    """The widest x86 vector extension the CPU has: avx512, avx2 or avx (None if unknown)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return next((name for name, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"))
                 if flag in flags), None)


def caps_in_force() -> dict[str, str]:
    """The instruction-set caps set in this process's environment (AVX2's variables; of
    XLA_FLAGS, only its --xla_cpu_max_isa)."""
    caps = {k: os.environ[k] for k in AVX2 if k in os.environ and k != "XLA_FLAGS"}
    xla = [f for f in os.environ.get("XLA_FLAGS", "").split() if f.startswith("--xla_cpu_max_isa=")]
    return {**caps, **({"XLA_FLAGS": xla[-1]} if xla else {})}


def describe() -> dict[str, object]:
    """For a run record's env: the CPU, its widest vector extension and the caps in force."""
    return {"cpu": model(), "cpu_isa": vector_isa(), "isa_caps": caps_in_force()}


if __name__ == "__main__":  # `env $(python -m common.cpu avx2) pytest -q`
    if len(sys.argv) != 2 or sys.argv[1] not in CAPS:
        print(f"error: {' '.join(sys.argv[1:]) or 'no cap'}: give one of {', '.join(CAPS)}", file=sys.stderr)
        sys.exit(2)
    print(" ".join(f"{k}={v}" for k, v in CAPS[sys.argv[1]].items()))
