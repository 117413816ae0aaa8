"""JAX execution modes (RunConfig.unroll, steps_per_call): how a run is executed, never what it
computes. Measured on CPU (XLA:CPU, jax 0.10.2, float32):
- K training steps in one compiled call (a scan over K batches) are K single calls bit for bit:
  rnn, lstm and gru, carried state, the seed group, the sentiment task (40 steps, K 4..20).
- An unrolled position scan is not: XLA fuses an unrolled body differently. The canonical adder
  (rnn) at unroll 4, 8 and full has bitwise logits, loss and gradients at the first step, but its
  step losses part from unroll 1's at step 7 (1 ulp); the LSTM's first gradients already differ
  (up to 1.8e-7 relative), its weights after 40 steps by up to 4.8e-7. Within the float32
  trajectory bound (compare/equivalence/core.py BOUNDS), hence unroll in the run key when set.
"""

import numpy as np
import pytest

from common.checkpoint import Checkpointing
from common.config import Config, ConfigError
from common.loop import fit, fit_lockstep
from common.training import Alone
from compare.equivalence.core import BOUNDS
from jax_impl.adder import SeedGroup, Trainer
from tests.conftest import Stop, assert_bitwise

# Small, on the CPU, crossing what each step must carry: an LR milestone, carried hidden state,
# random h0; intervals of 10 steps, two calls each at K=5.
CFG = Config(digits=4, hidden=16, batch_size=32, steps=40, eval_every=10, eval_size=200, device="cpu", threads=1,
             schedule="multistep", milestones=(15, 30), carry_state=True, h0="randn")


def scores(outcome):
    """Everything of the curve but timings."""
    return [(p["step"], p["loss"], p["train_loss_mean"], p["exact_acc"], p["digit_acc"]) for p in outcome["curve"]]


def trained(cfg, **changes):
    """(outcome, final weights, final training state) of cfg with `changes`."""
    cfg = cfg.replace(**changes)
    trainer = Trainer(cfg)
    return fit(cfg, trainer), trainer.params(), trainer.training_state()


@pytest.fixture(scope="module")
def single():
    """Per cell: CFG trained one step per call."""
    cache = {}

    def get(cell):
        if cell not in cache:
            cache[cell] = trained(CFG, cell=cell)
        return cache[cell]
    return get


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_k_steps_per_call_are_k_single_steps_bit_for_bit(single, cell):
    """Losses, interval means, weights, Adam's state, the step count, divergence tracking and
    the carried hidden state: all as one step per call."""
    outcome, params, state = single(cell)
    many, many_params, many_state = trained(CFG, cell=cell, steps_per_call=5)
    assert scores(many) == scores(outcome) and len(scores(outcome)) == 4
    assert_bitwise(many_params, params)
    assert_bitwise(many_state, state)
    assert many_state["['step']"] == 40
    assert Trainer(CFG.replace(steps_per_call=5)).env()["execution"] == {
        "unroll": 1, "steps_per_call": 5, "graphs": "n/a (JAX)"}


@pytest.mark.parametrize("cell, unroll", [("rnn", 0), ("lstm", 4)])
def test_an_unrolled_scan_trains_the_same_run_within_float32_rounding(single, cell, unroll):
    outcome, params, _ = single(cell)
    unrolled, unrolled_params, _ = trained(CFG, cell=cell, unroll=unroll)
    bound = BOUNDS["float32"]
    np.testing.assert_allclose([p["loss"] for p in unrolled["curve"]], [p["loss"] for p in outcome["curve"]],
                               rtol=bound.trajectory)
    for name, value in params.items():
        np.testing.assert_allclose(unrolled_params[name], value, rtol=0, atol=bound.params, err_msg=name)
    assert Trainer(CFG.replace(unroll=unroll)).env()["execution"]["unroll"] == (unroll or "full")


def test_a_blown_up_run_diverges_on_the_same_step_inside_a_call():
    # relu with a huge step size overflows the hidden state within two steps: step 2 of a call of 5.
    cfg = Config(activation="relu", lr=1000.0, steps=10, eval_every=10, eval_size=100, device="cpu", threads=1)
    one, many = fit(cfg, Trainer(cfg)), fit(cfg.replace(steps_per_call=5), Trainer(cfg.replace(steps_per_call=5)))
    assert one["status"] == many["status"] == "diverged" and one["diverged_step"] == many["diverged_step"] == 2


def test_a_run_of_k_steps_per_call_resumes_bit_for_bit(single, tmp_path):
    outcome, params, _ = single("rnn")
    cfg = CFG.replace(steps_per_call=5)
    checkpointing = Checkpointing(10, str(tmp_path))

    def stop_after_25(step):
        if step == 25:
            raise Stop
    with pytest.raises(Stop):
        fit(cfg, Trainer(cfg), on_step=stop_after_25, checkpointing=checkpointing)
    trainer = Trainer(cfg)
    resumed = fit(cfg, trainer, checkpointing=checkpointing)
    assert resumed["timing"]["resumed_from"] == [20]
    assert scores(resumed) == scores(outcome)
    assert_bitwise(trainer.params(), params)
    with pytest.raises(ConfigError, match="must be a multiple of steps_per_call=5"):
        fit(cfg, Trainer(cfg), checkpointing=Checkpointing(7, str(tmp_path)))


def test_the_k_step_program_is_reused_for_another_seed():
    from jax_impl.core import PROGRAMS

    cfg = CFG.replace(steps=10, steps_per_call=5)
    PROGRAMS.clear()
    fresh = Trainer(cfg.replace(seed=1))
    fresh_scores = scores(fit(cfg.replace(seed=1), fresh))
    assert fresh.compile_cache != "memory"
    fit(cfg, Trainer(cfg))
    reused = Trainer(cfg.replace(seed=1))
    assert scores(fit(cfg.replace(seed=1), reused)) == fresh_scores and reused.compile_cache == "memory"


def test_a_seed_group_takes_k_steps_per_call_as_single_steps():
    cfgs = [CFG.replace(steps=20, seed=seed) for seed in (0, 1)]
    one = fit_lockstep(cfgs, SeedGroup(cfgs))
    many_cfgs = [cfg.replace(steps_per_call=5) for cfg in cfgs]
    group = SeedGroup(many_cfgs)
    many = fit_lockstep(many_cfgs, group)
    assert [scores(o) for o in many] == [scores(o) for o in one] and scores(one[0]) != scores(one[1])
    # The group steps its seeds; a seed's view never steps alone, so offers no step_many.
    assert hasattr(group, "step_many") and not hasattr(group.views[0], "step_many")
    assert not hasattr(Alone(group.views[0]), "step_many") and hasattr(Alone(Trainer(CFG)), "step_many")


def test_sentiment_k_steps_per_call_are_k_single_steps_bit_for_bit():
    """A call's batches come in several widths: each step runs at its own width inside the
    K-step program (padding them to one width would change bits)."""
    from common.sentiment.config import TextConfig
    from common.sentiment.loop import fit as fit_text, training_batch, widths
    from compare.equivalence.sentiment import synthetic_data
    from jax_impl.sentiment import Trainer as TextTrainer

    data = synthetic_data()
    cfg = TextConfig(cell="lstm", hidden=8, batch_size=16, eval_batch=32, steps=20, eval_every=10, lr=1e-2,
                     device="cpu", threads=1)
    assert len({training_batch(cfg, data, k).ids.shape[1] for k in range(1, 11)}) > 1
    outcomes = []
    for k in (1, 10):
        trainer = TextTrainer(cfg.replace(steps_per_call=k), data.embedding)
        record = fit_text(cfg.replace(steps_per_call=k), trainer, data)
        outcomes.append(([(p["loss"], p["train_loss_mean"], p["test_acc"]) for p in record["curve"]],
                         trainer.params(), trainer.training_state()))
    (curve, params, state), (many_curve, many_params, many_state) = outcomes
    assert many_curve == curve and len(curve) == 2
    assert_bitwise(many_params, params)
    assert_bitwise(many_state, state)
    assert trainer.env()["execution"]["steps_per_call"] == 10
    assert widths(cfg, data)[0] == list(trainer._many[2])  # one program for every width
