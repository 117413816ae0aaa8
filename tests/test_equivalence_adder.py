"""Same weights and batches in both backends -> same logits, gradients and training trajectory.

Bounds and the reasons behind them live in compare/equivalence/core.py; these tests apply them.
"""

import subprocess
import sys

import jax.numpy as jnp
import pytest

from common.config import H0_MODES
from compare.equivalence import adder as eq
from compare.equivalence.core import VARIANTS
from jax_impl import model as jax_model
from tests.conftest import requires_gpu
from torch_impl import params as torch_params


@pytest.mark.parametrize("variant, layers, dtype", [
    (variant, layers, dtype) for variant in VARIANTS for layers in (1, 2, 3) for dtype in ("float32", "float64")
    if (variant, layers, dtype) != ("lstm", 1, "float64")])  # that one is every workload's: tests/test_workloads.py
def test_backends_agree(variant, layers, dtype):
    result = eq.check(variant, layers, dtype)
    assert result.violations() == []


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_backends_agree_in_every_training_mode(variant, dtype):
    for layers in (1, 2, 3):
        assert eq.check(variant, layers, dtype, full=True).violations() == []


def test_full_mode_covers_every_h0_carry_and_schedule():
    runs = eq.training_runs(eq.base_config("gru", 2, "float32"), full=True)
    assert {(r.h0, r.carry_state, r.schedule) for r in runs} == {
        (h0, carry, sched) for h0 in H0_MODES for carry in (False, True)
        for sched in ("constant", "multistep")}


@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_backends_agree_on_gpu_with_tf32_off(variant, dtype):
    assert eq.check(variant, 2, dtype, device="gpu").violations() == []


# The checks must be able to fail: break one small thing in one backend and watch them catch it.

def _swap_rz(p):
    r, z, n = jnp.split(p, 3, axis=-1)
    return jnp.concatenate([z, r, n], axis=-1)


def test_swapped_gru_gates_are_caught(monkeypatch):
    original = jax_model.cell_update

    def swapped(cell, activation, state, x_proj, h_proj):  # GRU r and z exchanged in JAX only
        return original(cell, activation, state, _swap_rz(x_proj), _swap_rz(h_proj))

    monkeypatch.setattr(jax_model, "cell_update", swapped)
    assert eq.check("gru", 1, "float32").violations()


def test_dropped_hidden_bias_is_caught(monkeypatch):
    original = torch_params.to_native

    def without_b_hh(params):
        return original({k: (0 * v if ".bias_hh_" in k else v) for k, v in params.items()})

    monkeypatch.setattr(torch_params, "to_native", without_b_hh)
    monkeypatch.setattr("torch_impl.adder.to_native", without_b_hh)
    assert eq.check("lstm", 1, "float64").violations()


@pytest.mark.parametrize("args, message", [
    (["--cell="], "--cell='': needs a value"),
    (["--layers="], "--layers='': needs a value"),
    (["--layers=0"], "--layers=['0']: must be whole numbers in [1, 32]"),
    (["--layers=33"], "--layers=['33']: must be whole numbers in [1, 32]"),
    (["--cell=rnn,transformer"], "--cell=['rnn', 'transformer']: must be among"),
    (["--layers=0", "--dtype=nope"], "[1, 32]; flag --dtype=['nope']: must be among"),  # two, one line
    (["extra"], "unexpected argument 'extra'"),
    (["--json", "no/such/dir/eq.json"], "--json=no/such/dir/eq.json"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    # An empty selection used to print an empty table and exit 0: a CI calling it passed.
    result = subprocess.run([sys.executable, "-m", "compare.equivalence", *args], capture_output=True,
                            text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
