"""The adder's JAX trainer (on jax_impl.core): mean cross-entropy over every position. One
jitted, buffer-donating step carries everything (parameters, optimiser state, carried hidden
state, divergence flag, the interval's loss sum), so the host never waits on the device between
evals; `step_many` takes cfg.steps_per_call such steps in one call. SeedGroup trains several seeds
of a config in one vmapped program.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common.config import Config
from common.data import Batch, eval_chunk_size
from common.params import Params, init_params, param_shapes
from jax_impl import runtime
from jax_impl.core import State, TrainerCore, initial_tracking, make_optimizer, take_loss_mean, tracking
from jax_impl.model import Adder, RecurrentLayer
from jax_impl.params import to_native, to_neutral


def make_params(cfg: Config, model: Adder) -> dict[str, Any]:
    if cfg.init == "shared":
        return to_native(init_params(cfg))
    # native: Flax's own initialisers; parameter shapes do not depend on batch or length.
    a = jnp.zeros((1, 1), jnp.int32)
    h0 = jnp.zeros((cfg.state_parts, cfg.layers, 1, cfg.hidden), cfg.dtype)
    return model.init(jax.random.PRNGKey(cfg.seed), a, a, h0)["params"]


def make_initial_state(cfg: Config, optimizer: optax.GradientTransformation):
    """params -> the whole training state. Jitted as one small program: op by op, each zeros
    array would compile a program of its own (measured: 0.36 s -> 0.1 s of start-up)."""
    h0_shape = (cfg.state_parts, cfg.layers, cfg.batch_size, cfg.hidden)

    def initial_state(params) -> State:
        return {
            "params": params,
            "opt_state": optimizer.init(params),
            "carry": jnp.zeros(h0_shape, cfg.dtype),
            **initial_tracking(cfg.dtype),
        }

    return initial_state


def loss_fn(logits: jax.Array, target: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, target).mean()


def make_loss_and_grads(model: Adder):
    """(loss, final state), gradients w.r.t. the parameters for one batch."""
    def loss_of(params, a, b, target, h0):
        logits, final = model.apply({"params": params}, a, b, h0)
        return loss_fn(logits, target), final

    return jax.value_and_grad(loss_of, has_aux=True)


def make_train_step(cfg: Config, model: Adder, optimizer: optax.GradientTransformation):
    loss_and_grads = make_loss_and_grads(model)

    def train_step(state: State, a, b, target, h0) -> State:
        if cfg.carry_state:  # the previous batch's final state; the batch's h0 on step 1
            h0 = jnp.where(state["step"] > 0, state["carry"], h0)
        (loss, final), grads = loss_and_grads(state["params"], a, b, target, h0)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        return {
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            "carry": final,  # a new jit call: no gradient can flow back through it
            **tracking(state, loss),
        }

    return train_step


def make_train_many(train_step):
    """steps_per_call training steps in one program: a scan of `train_step` over batches stacked
    on a leading axis, so the carried state, divergence flag and loss sum move per step as in as
    many single calls. Bitwise the same as single steps on CPU (tests/test_jax_modes.py)."""
    def train_many(state: State, a, b, target, h0) -> State:
        state, _ = jax.lax.scan(lambda state, batch: (train_step(state, *batch), None), state, (a, b, target, h0))
        return state

    return train_many


def stacked(batches: list[Batch]) -> tuple[np.ndarray, ...]:
    """The fields of `batches` stacked on a new leading axis (steps, or seeds)."""
    return tuple(np.stack([getattr(b, f) for b in batches]) for f in ("a", "b", "target", "h0"))


def stacked_shapes(batch: Batch, *lead: int) -> tuple[jax.ShapeDtypeStruct, ...]:
    """What `stacked` makes of batches shaped like `batch`, leading axes `lead`."""
    return tuple(jax.ShapeDtypeStruct((*lead, *x.shape), x.dtype) for x in (batch.a, batch.b, batch.target, batch.h0))


def make_score(model: Adder):
    def score(params, a, b, target, h0):
        logits, _ = model.apply({"params": params}, a, b, h0)
        right = jnp.argmax(logits, -1) == target
        return right.all(-1), right.sum(-1)

    return score


class Trainer(TrainerCore):
    """Owns the jitted steps and the training state; see common.loop.Trainer for the contract."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.model = Adder(cfg)
        optimizer = make_optimizer(cfg)
        self._init_state(optimizer)
        train_step = make_train_step(cfg, self.model, optimizer)
        self._train_step = jax.jit(train_step, donate_argnums=0)
        self._train_many = jax.jit(make_train_many(train_step), donate_argnums=0)
        self._score_jit = jax.jit(make_score(self.model))
        self._loss_and_grads = jax.jit(make_loss_and_grads(self.model))
        self._forward = jax.jit(self.model.apply)

    def _init_state(self, optimizer: optax.GradientTransformation) -> None:
        params = jax.device_put(make_params(self.cfg, self.model), self.device)
        self.state: State = jax.jit(make_initial_state(self.cfg, optimizer))(params)

    def _on_device(self, batch: Batch) -> tuple[jax.Array, ...]:
        return jax.device_put((batch.a, batch.b, batch.target, batch.h0), self.device)

    def compile(self, batch: Batch) -> float:
        """The training program the loop will call (one step, or cfg.steps_per_call steps) and
        the scorer of the eval chunks, compiled ahead of time (core)."""
        cfg, many = self.cfg, self.cfg.steps_per_call
        if many == 1:
            train = ("train", *batch.a.shape)
            lower_train = lambda: self._train_step.lower(self.state, *self._on_device(batch))  # noqa: E731
        else:
            train = ("train_many", *batch.a.shape)
            lower_train = lambda: self._train_many.lower(self.state, *stacked_shapes(batch, many))  # noqa: E731
        chunk = (eval_chunk_size(cfg), cfg.positions)
        seconds = self._compile((cfg.replace(seed=0), self.device),
                                {train: lower_train, ("score", *chunk): lambda: self._lower_score(chunk)})
        setattr(self, "_train_step" if many == 1 else "_train_many", self._programs[train])
        return seconds

    def _scorer(self, shape: tuple[int, int]):
        """The eval program for chunks of this (sequences, positions) shape, compiled once."""
        return self._program(("score", *shape), lambda: self._lower_score(shape))

    def _lower_score(self, shape: tuple[int, int]):
        cfg, n = self.cfg, shape[0]
        digits = jax.ShapeDtypeStruct(shape, jnp.int32)
        h0 = jax.ShapeDtypeStruct((cfg.state_parts, cfg.layers, n, cfg.hidden), jnp.dtype(cfg.dtype))
        return self._score_jit.lower(self.state["params"], digits, digits, digits, h0)

    def step(self, batch: Batch) -> None:
        # numpy straight in: the compiled call's C++ path copies them to the state's device;
        # jax.device_put first costs ~30 us a field in Python (measured: 4.05 -> 3.81 ms a step).
        self.state = self._train_step(self.state, batch.a, batch.b, batch.target, batch.h0)

    def step_many(self, batches: list[Batch]) -> None:
        """len(batches) steps in one call (cfg.steps_per_call once compiled); as many `step`s."""
        self.state = self._train_many(self.state, *stacked(batches))

    def score(self, chunk: Batch) -> tuple[np.ndarray, np.ndarray]:
        whole, right = self._scorer(chunk.a.shape)(self.state["params"], chunk.a, chunk.b, chunk.target,
                                                   chunk.h0)
        return np.asarray(whole), np.asarray(right)

    def params(self) -> Params:
        return to_neutral(self.state["params"], param_shapes(self.cfg))

    def logits(self, batch: Batch) -> np.ndarray:
        """Forward pass with the current parameters (for equivalence checks)."""
        a, b, _, h0 = self._on_device(batch)
        logits, _ = self._forward({"params": self.state["params"]}, a, b, h0)
        return np.asarray(logits)

    def hidden_states(self, batch: Batch) -> np.ndarray:
        """(layers, batch, positions, hidden) outputs of every recurrent layer (for probes)."""
        a, b, _, h0 = self._on_device(batch)
        _, state = self.model.apply({"params": self.state["params"]}, a, b, h0,
                                    capture_intermediates=lambda m, _: isinstance(m, RecurrentLayer))
        layers = state["intermediates"]
        ys = [layers[f"layer{k}"]["__call__"][0][0] for k in range(self.cfg.layers)]
        return np.stack([np.swapaxes(np.asarray(y), 0, 1) for y in ys])

    def gradients(self, batch: Batch) -> tuple[float, Params]:
        """Loss and parameter gradients (neutral names and layouts) without updating anything."""
        (loss, _), grads = self._loss_and_grads(self.state["params"], *self._on_device(batch))
        return float(loss), to_neutral(grads, param_shapes(self.cfg))


class SeedGroup:
    """Several seeds of one config trained by one compiled program: the training step is
    `jax.vmap`ped over a leading seed axis of the state and the batches (common.training.Lockstep).

    views[k] is a Trainer for seed k whose parameters are the k-th slice of the group's, so
    evaluation, probes and exports work on one seed exactly as for a run of its own.
    """

    def __init__(self, cfgs: list[Config]):
        cfg = cfgs[0]
        if any(c.replace(seed=cfg.seed) != cfg for c in cfgs):
            raise ValueError("a SeedGroup trains seeds of one config; the configs differ otherwise")
        self.views = [_SeedView(c, self, k) for k, c in enumerate(cfgs)]
        for view in self.views[1:]:
            view._programs = self.views[0]._programs  # same shapes: compile the eval programs once
        model, device, optimizer = self.views[0].model, self.views[0].device, make_optimizer(cfg)
        params = [make_params(c, model) for c in cfgs]
        stacked = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *params), device)
        self.state: State = jax.jit(jax.vmap(make_initial_state(cfg, optimizer)))(stacked)
        self._slices: dict[int, State] = {}
        self._scalars: dict[str, np.ndarray] | None = None
        self._means: np.ndarray | None = None
        self._device = device
        train_step = jax.vmap(make_train_step(cfg, model, optimizer))
        self._train_step = jax.jit(train_step, donate_argnums=0)
        self._train_many = jax.jit(make_train_many(train_step), donate_argnums=0)

    def state_of(self, k: int) -> State:
        """What a view reads of seed k: its parameters (sliced once per step, when asked for)."""
        if k not in self._slices:
            self._slices[k] = {"params": jax.tree.map(lambda x: x[k], self.state["params"])}
        return self._slices[k]

    def scalars(self) -> dict[str, np.ndarray]:
        """Every seed's latest loss and first non-finite step, in one wait and one transfer."""
        if self._scalars is None:
            self._scalars = jax.device_get({k: self.state[k] for k in ("loss", "first_bad")})
        return self._scalars

    def loss_means(self) -> np.ndarray:
        """Every seed's mean loss since the previous eval, in one transfer; the first view to
        ask at a step starts every seed's next interval, the others read the same means."""
        if self._means is None:
            self.state, self._means = take_loss_mean(self.state, self._device)
        return self._means

    def compile(self, batches: list[Batch]) -> float:
        cfg, many = self.views[0].cfg, self.views[0].cfg.steps_per_call
        start, before = time.perf_counter(), runtime.CACHE_EVENTS.copy()
        if many == 1:
            self._train_step = self._train_step.lower(self.state, *stacked(batches)).compile()
        else:  # steps x seeds
            shapes = stacked_shapes(batches[0], many, len(batches))
            self._train_many = self._train_many.lower(self.state, *shapes).compile()
        self.views[0]._scorer((eval_chunk_size(cfg), cfg.positions))
        for view in self.views:
            view.compile_cache = runtime.cache_outcome(before)
        return time.perf_counter() - start

    def step(self, batches: list[Batch]) -> None:
        self.state = self._train_step(self.state, *stacked(batches))  # as Trainer.step
        self._slices.clear()
        self._scalars = self._means = None

    def step_many(self, batches: list[list[Batch]]) -> None:
        """len(batches) steps of every seed in one call; batches[i]: step i's, one per seed."""
        self.state = self._train_many(self.state, *(np.stack(x) for x in zip(*map(stacked, batches))))
        self._slices.clear()
        self._scalars = self._means = None


class _SeedView(Trainer):
    """Seed k of a SeedGroup; it reads its state from the group and never steps alone."""

    def __init__(self, cfg: Config, group: SeedGroup, k: int):
        self._group, self._k = group, k
        super().__init__(cfg)

    def _init_state(self, optimizer: optax.GradientTransformation) -> None:
        pass  # the group holds every seed's state

    @property
    def state(self) -> State:
        return self._group.state_of(self._k)

    def loss(self) -> float:
        return float(self._group.scalars()["loss"][self._k])

    def loss_mean(self) -> float:
        return float(self._group.loss_means()[self._k])

    def nonfinite_step(self) -> int | None:
        return int(self._group.scalars()["first_bad"][self._k]) or None

    def compile(self, batch: Batch) -> float:
        raise TypeError("a seed of a SeedGroup is compiled by the group")

    def training_state(self) -> dict[str, np.ndarray]:
        raise TypeError("a seed of a SeedGroup has no checkpointable state of its own")

    def restore(self, state: dict[str, np.ndarray]) -> None:
        raise TypeError("a seed of a SeedGroup has no checkpointable state of its own")

    def step(self, batch: Batch) -> None:
        raise TypeError("a seed of a SeedGroup is stepped by the group")

    @property
    def step_many(self):  # absent (hasattr is False): a view never steps alone
        raise AttributeError("a seed of a SeedGroup is stepped by the group")
