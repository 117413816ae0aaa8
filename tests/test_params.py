import numpy as np
import pytest

from common.config import Config
from common.params import init_params, param_shapes
from jax_impl import model as jax_model
from jax_impl import params as jax_params
from jax_impl import runtime as jax_runtime
from torch_impl import model as torch_model
from torch_impl import params as torch_params

VARIANTS = [dict(cell=c, layers=n) for c in ("rnn", "lstm", "gru") for n in (1, 3)] + [dict(cell="none")]


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_neutral_shapes_are_torch_shapes(variant):
    cfg = Config(**variant)
    state = torch_model.Adder(cfg).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == param_shapes(cfg)


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trips_are_bit_identical(variant, dtype):
    import torch

    cfg = Config(dtype=dtype, **variant)
    jax_runtime.configure(cfg)  # float64 needs jax_enable_x64
    neutral = init_params(cfg)
    model = torch_model.Adder(cfg).to(getattr(torch, dtype))
    model.load_state_dict(torch_params.to_native(neutral), strict=True)
    back_from_torch = torch_params.to_neutral(model.state_dict(), param_shapes(cfg))
    back_from_flax = jax_params.to_neutral(jax_params.to_native(neutral), param_shapes(cfg))
    for name, value in neutral.items():
        assert back_from_torch[name].dtype == value.dtype
        assert back_from_torch[name].tobytes() == value.tobytes(), name
        assert back_from_flax[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_flax_tree_matches_the_native_init_structure(variant):
    import jax

    cfg = Config(init="native", **variant)
    native = jax_model.Adder(cfg).init(jax.random.PRNGKey(0), np.zeros((1, 1), np.int32),
                                       np.zeros((1, 1), np.int32),
                                       np.zeros((cfg.state_parts, cfg.layers, 1, cfg.hidden), np.float32))
    loaded = jax_params.to_native(init_params(cfg))
    shapes = lambda tree: jax.tree_util.tree_map(lambda x: x.shape, tree)  # noqa: E731
    assert shapes(native["params"]) == shapes(loaded)


def test_shared_init_follows_torch_defaults():
    cfg = Config(cell="lstm", hidden=100)
    p = init_params(cfg)
    bound = 1 / np.sqrt(100)
    w = p["rnn.weight_hh_l1"]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(p["embedding.weight"].std() - 1) < 0.15
    assert not np.array_equal(init_params(cfg)["head.weight"], init_params(cfg.replace(seed=1))["head.weight"])
