"""compare.bench: the tables of both workloads' cases."""

import io

from rich.console import Console

from compare.bench import print_tables


def test_an_error_in_the_table_keeps_its_brackets():
    """Rich reads [..] as markup: 'jax[cuda13]' in an error used to print as 'jax'."""
    buf = io.StringIO()
    message = "device='gpu': JAX sees no GPU (is a CUDA jaxlib installed, e.g. jax[cuda13]?)"
    print_tables(Console(file=buf, width=400), [{"case": "canonical", "threads": 1, "backend": "jax",
                                                 "error": message}])
    assert "jax[cuda13]?)" in buf.getvalue()
