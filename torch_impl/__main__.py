"""`python -m torch_impl --help`: train one adder with PyTorch."""

from common.cli import run_backend

if __name__ == "__main__":
    run_backend("torch")
