"""Real training runs, short enough for the default test run."""

import pytest

from common.config import Config
from common.loop import fit
from tests.conftest import trainer_for


def train(backend, cfg):
    return fit(cfg, trainer_for(backend, cfg))


def test_handout_reaches_100_percent(backend):
    # The handout setting at lr 1e-2 (the reports' best lr): every one of 2000 held-out sums right.
    cfg = Config(lr=1e-2, steps=300, eval_every=50)
    run = train(backend, cfg)
    assert run["status"] == "ok"
    assert run["timing"]["solve_step"] is not None and run["timing"]["solve_step"] <= 300
    assert run["curve"][-1]["exact_acc"] == 1.0 and run["curve"][-1]["digit_acc"] == 1.0


def test_without_a_recurrent_layer_addition_is_not_learned(backend):
    run = train(backend, Config(cell="none", lr=1e-2, steps=200, eval_every=100))
    assert run["status"] == "ok"
    assert run["curve"][-1]["exact_acc"] < 0.01


@pytest.mark.parametrize("cell, activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"),
                                              ("gru", "tanh")])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_every_cell_and_depth_learns(backend, cell, activation, layers):
    cfg = Config(cell=cell, activation=activation, layers=layers, data="uniform", digits=5,
                 lr=1e-2, steps=80, eval_every=20, eval_size=500)
    run = train(backend, cfg)
    first, last = run["curve"][0], run["curve"][-1]
    assert run["status"] == "ok"
    assert last["loss"] < 0.7 * first["loss"]
    assert last["digit_acc"] > 0.5


def test_a_blown_up_run_is_recorded_as_diverged(backend):
    # relu with a huge step size overflows the hidden state within two steps.
    cfg = Config(activation="relu", lr=1000.0, steps=50, eval_every=10)
    run = train(backend, cfg)
    assert run["status"] == "diverged"
    assert run["diverged_step"] == 2
    assert run["curve"] == []  # nothing evaluated after the blow-up


@pytest.mark.parametrize("cfg", [
    Config(cell="lstm", carry_state=True, h0="randn", steps=40, eval_every=20, lr=1e-2),
    Config(cell="gru", schedule="multistep", milestones=(10, 20), steps=40, eval_every=20),
    Config(data="uniform", base=2, digits=30, steps=40, eval_every=20),
    Config(data="uniform", order="msb", digits=6, steps=40, eval_every=20),
    Config(dtype="float64", steps=20, eval_every=10, init="native"),
], ids=["carry", "multistep", "base2", "msb", "float64-native"])
def test_options_run(backend, cfg):
    run = train(backend, cfg)
    assert run["status"] == "ok" and len(run["curve"]) == 2
    assert all(0 <= p["exact_acc"] <= 1 and p["loss"] > 0 for p in run["curve"])


def test_carried_state_is_used(backend):
    cfg = Config(h0="randn", steps=20, eval_every=20)
    plain, carried = train(backend, cfg), train(backend, cfg.replace(carry_state=True))
    assert plain["curve"][-1]["loss"] != carried["curve"][-1]["loss"]


def test_a_5000_digit_step(backend):
    cfg = Config(data="uniform", digits=5000, batch_size=8, steps=2, eval_every=2, eval_size=8)
    run = train(backend, cfg)
    assert run["status"] == "ok" and 0 <= run["curve"][-1]["digit_acc"] <= 1


def test_seeds_of_a_config_share_their_compiled_programs_and_nothing_else():
    """A warm worker compiles a config once for all its seeds (jax_impl.train._PROGRAMS); the
    reused program must train a seed exactly as a freshly compiled one does."""
    from jax_impl import train as jax_train

    cfg = Config(steps=20, eval_every=10, eval_size=100, device="cpu", threads=1, h0="randn")
    seed1 = cfg.replace(seed=1)
    scores = lambda record: [(p["step"], p["loss"], p["exact_acc"], p["digit_acc"]) for p in record["curve"]]  # noqa: E731
    jax_train._PROGRAMS.clear()
    fit(cfg, jax_train.Trainer(cfg))
    reused = jax_train.Trainer(seed1)
    reused_scores = scores(fit(seed1, reused))
    assert reused.compile_cache == "memory"
    jax_train._PROGRAMS.clear()
    fresh = jax_train.Trainer(seed1)
    assert scores(fit(seed1, fresh)) == reused_scores and fresh.compile_cache != "memory"
    other = jax_train.Trainer(seed1.replace(hidden=32))  # another config compiles its own
    fit(seed1.replace(hidden=32), other)
    assert other.compile_cache != "memory"
