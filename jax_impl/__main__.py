"""`python -m jax_impl --help`: train one adder with JAX."""

from common.cli import run_backend

if __name__ == "__main__":
    run_backend("jax")
