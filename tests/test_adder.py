"""Real training runs, short enough for the default test run."""

import pytest

from common.config import Config
from common.loop import fit
from tests.conftest import Stop, assert_bitwise, stop_after, trainer_for


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
    """A warm worker compiles a config once for all its seeds (jax_impl.core.PROGRAMS); the
    reused program must train a seed exactly as a freshly compiled one does."""
    from jax_impl import adder as jax_adder
    from jax_impl.core import PROGRAMS

    cfg = Config(steps=20, eval_every=10, eval_size=100, device="cpu", threads=1, h0="randn")
    seed1 = cfg.replace(seed=1)
    scores = lambda record: [(p["step"], p["loss"], p["exact_acc"], p["digit_acc"]) for p in record["curve"]]  # noqa: E731
    PROGRAMS.clear()
    fit(cfg, jax_adder.Trainer(cfg))
    reused = jax_adder.Trainer(seed1)
    reused_scores = scores(fit(seed1, reused))
    assert reused.compile_cache == "memory"
    PROGRAMS.clear()
    fresh = jax_adder.Trainer(seed1)
    assert scores(fit(seed1, fresh)) == reused_scores and fresh.compile_cache != "memory"
    other = jax_adder.Trainer(seed1.replace(hidden=32))  # another config compiles its own
    fit(seed1.replace(hidden=32), other)
    assert other.compile_cache != "memory"


# --- Checkpoints: a run stopped and rerun is the uninterrupted run, bit for bit. -------------

import numpy as np  # noqa: E402

from common.checkpoint import Checkpointing, Checkpoints  # noqa: E402
from common.config import ConfigError  # noqa: E402

# Small, on the CPU (bitwise needs deterministic kernels), and crossing what must be carried:
# an LR milestone after the stop, carried hidden state, random h0.
CKPT_CFG = Config(digits=4, hidden=16, batch_size=32, steps=40, eval_every=10, eval_size=500, device="cpu",
                  threads=1, schedule="multistep", milestones=(15, 30), carry_state=True, h0="randn")


def scores(outcome):
    """Everything of the curve but timings."""
    return [(p["step"], p["loss"], p["train_loss_mean"], p["exact_acc"], p["digit_acc"]) for p in outcome["curve"]]


def interrupted_then_rerun(backend, cfg, checkpointing, stop=25, before_rerun=None):
    """Train until a Stop after step `stop`, then rerun to the end: (outcome, trainer)."""
    with pytest.raises(Stop):
        fit(cfg, trainer_for(backend, cfg), on_step=stop_after(stop), checkpointing=checkpointing)
    if before_rerun:
        before_rerun()
    trainer = trainer_for(backend, cfg)
    return fit(cfg, trainer, checkpointing=checkpointing), trainer


@pytest.fixture(scope="module")
def uninterrupted():
    """Per backend: the outcome and final weights of CKPT_CFG without checkpoints."""
    cache = {}

    def get(backend):
        if backend not in cache:
            trainer = trainer_for(backend, CKPT_CFG)
            cache[backend] = fit(CKPT_CFG, trainer), trainer.params()
        return cache[backend]
    return get


@pytest.mark.parametrize("every, resumed", [(10, 20), (7, 21)], ids=["at-evals", "between-evals"])
def test_a_resumed_run_is_the_uninterrupted_run_bit_for_bit(backend, tmp_path, uninterrupted, every, resumed):
    full, full_params = uninterrupted(backend)
    checkpointing = Checkpointing(every, str(tmp_path))
    outcome, trainer = interrupted_then_rerun(backend, CKPT_CFG, checkpointing)
    assert outcome["timing"]["resumed_from"] == [resumed]
    assert outcome["status"] == "ok" and scores(outcome) == scores(full) and len(scores(full)) == 4
    assert_bitwise(trainer.params(), full_params)
    assert list(tmp_path.iterdir()) == []  # a finished run deletes its checkpoints
    timing = outcome["timing"]
    assert timing["train_s"] >= outcome["curve"][1]["train_s"] - (timing["compile_s"] or 0)  # timers go on
    assert [p["elapsed_s"] for p in outcome["curve"]] == sorted(p["elapsed_s"] for p in outcome["curve"])


def test_a_corrupt_latest_checkpoint_resumes_from_the_one_before(backend, tmp_path, uninterrupted):
    full, full_params = uninterrupted(backend)
    checkpointing = Checkpointing(10, str(tmp_path))
    ckpt = Checkpoints(checkpointing, backend, CKPT_CFG.to_json())

    def tear_the_latest():
        latest = ckpt.files()[20]
        latest.write_bytes(latest.read_bytes()[:-100])

    outcome, trainer = interrupted_then_rerun(backend, CKPT_CFG, checkpointing, before_rerun=tear_the_latest)
    assert outcome["timing"]["resumed_from"] == [10]
    assert scores(outcome) == scores(full)
    assert_bitwise(trainer.params(), full_params)


def is_adam_moment(name):
    return any(m in name for m in (".mu[", ".nu[", "/exp_avg"))  # jax (optax) / torch names


@pytest.mark.parametrize("wrong", ["no-adam-moments", "step-off-by-one"])
def test_the_bitwise_check_can_fail(backend, tmp_path, uninterrupted, monkeypatch, wrong):
    """A resume that loses the optimiser's moments, or skips a batch, is caught."""
    full, full_params = uninterrupted(backend)
    train = type(trainer_for(backend, CKPT_CFG))
    if wrong == "no-adam-moments":
        restore = train.restore
        monkeypatch.setattr(train, "restore", lambda self, state: restore(
            self, {k: np.zeros_like(v) if is_adam_moment(k) else v for k, v in state.items()}))
    else:
        latest = Checkpoints.latest

        def one_late(self):
            snapshot = latest(self)
            if snapshot:
                snapshot.step += 1
            return snapshot
        monkeypatch.setattr(Checkpoints, "latest", one_late)
    outcome, trainer = interrupted_then_rerun(backend, CKPT_CFG, Checkpointing(10, str(tmp_path)))
    assert outcome["timing"]["resumed_from"] == [20 if wrong == "no-adam-moments" else 21]
    assert scores(outcome)[:2] == scores(full)[:2]  # before the resume
    assert [p[0] for p in scores(outcome)] == [10, 20, 30, 40]
    assert scores(outcome)[2:] != scores(full)[2:]
    assert any(not np.array_equal(trainer.params()[k], v) for k, v in full_params.items())


def test_another_config_does_not_resume_from_these_checkpoints(backend, tmp_path):
    checkpointing = Checkpointing(10, str(tmp_path))
    with pytest.raises(Stop):
        fit(CKPT_CFG, trainer_for(backend, CKPT_CFG), on_step=stop_after(25), checkpointing=checkpointing)
    other = CKPT_CFG.replace(seed=1)
    outcome = fit(other, trainer_for(backend, other), checkpointing=checkpointing)
    assert outcome["timing"]["resumed_from"] == []
    assert sorted(Checkpoints(checkpointing, backend, CKPT_CFG.to_json()).files()) == [10, 20]  # left alone


def test_seeds_trained_together_refuse_checkpoints(tmp_path):
    from common.loop import fit_lockstep
    from jax_impl.adder import SeedGroup

    cfgs = [CKPT_CFG, CKPT_CFG.replace(seed=1)]
    with pytest.raises(ConfigError, match="--checkpoint_every=10 with --vmap_seeds=2"):
        fit_lockstep(cfgs, SeedGroup(cfgs), checkpointing=Checkpointing(10, str(tmp_path)))


def test_a_resume_that_loses_the_interval_sum_is_caught(backend, tmp_path, uninterrupted, monkeypatch):
    """Resumed between evals (step 21), the mean of steps 21-30 needs the saved sum of step 21."""
    full, full_params = uninterrupted(backend)
    train = type(trainer_for(backend, CKPT_CFG))
    restore = train.restore
    monkeypatch.setattr(train, "restore", lambda self, state: restore(
        self, {k: np.zeros_like(v) if "loss_sum" in k else v for k, v in state.items()}))
    outcome, trainer = interrupted_then_rerun(backend, CKPT_CFG, Checkpointing(7, str(tmp_path)))
    assert outcome["timing"]["resumed_from"] == [21]
    changed = [a[0] for a, b in zip(scores(outcome), scores(full)) if a != b]
    assert changed == [30]  # the interval the resume fell in, and only its mean
    assert [p["loss"] for p in outcome["curve"]] == [p["loss"] for p in full["curve"]]
    assert_bitwise(trainer.params(), full_params)


# --- The interval's mean training loss (train_loss_mean), kept on the device. -----------------

def per_step_losses(trainer, losses):
    """An on_step that notes each step's loss (a host wait per step: for tests only)."""
    return lambda step: losses.__setitem__(step, trainer.loss())


def assert_interval_means(curve, losses):
    previous = 0
    for point in curve:
        interval = [losses[s] for s in range(previous + 1, point["step"] + 1)]
        assert point["train_loss_mean"] == pytest.approx(np.mean(interval), rel=1e-6), point["step"]
        assert point["loss"] == losses[point["step"]] and point["train_loss_mean"] != point["loss"]
        previous = point["step"]


def test_the_interval_mean_is_the_mean_of_the_steps_losses(backend):
    cfg = CKPT_CFG.replace(steps=25, eval_every=10)  # intervals of 10, 10 and 5 steps
    trainer, losses = trainer_for(backend, cfg), {}
    outcome = fit(cfg, trainer, on_step=per_step_losses(trainer, losses))
    assert [p["step"] for p in outcome["curve"]] == [10, 20, 25]
    assert_interval_means(outcome["curve"], losses)


def test_seeds_trained_together_keep_a_mean_each():
    from common.loop import fit_lockstep
    from jax_impl.adder import SeedGroup

    cfgs = [CKPT_CFG.replace(steps=20), CKPT_CFG.replace(steps=20, seed=1)]
    group, losses = SeedGroup(cfgs), {}
    outcomes = fit_lockstep(cfgs, group, on_step=lambda step: losses.__setitem__(step, group.scalars()["loss"]))
    for k, outcome in enumerate(outcomes):
        assert_interval_means(outcome["curve"], {step: float(loss[k]) for step, loss in losses.items()})
    assert outcomes[0]["curve"][0]["train_loss_mean"] != outcomes[1]["curve"][0]["train_loss_mean"]
