"""The adder in JAX: Flax linen modules, the time loop in jax.lax.scan, everything under jit."""

import os

# Take GPU memory as needed, not 75 % up front, in every process that imports this package: a
# harness worker, a test session or the GPU check may share one GPU with PyTorch or with other
# workers. It must be set before any JAX backend starts (jax.devices() in a test's skip check
# would otherwise start them with the default), hence here, not in runtime.configure().
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
