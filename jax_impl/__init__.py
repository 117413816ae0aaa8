"""The adder in JAX: Flax linen modules, the time loop in jax.lax.scan, everything under jit."""
