"""JAX training: Adam from optax, piecewise-constant schedule, mean cross-entropy over every
position. One jitted, buffer-donating step carries everything (parameters, optimiser state,
carried hidden state, divergence flag, the interval's loss sum), so the host never waits on the
device between evals.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common.config import Config
from common.data import Batch, eval_chunk_size
from common.params import Params, init_params
from jax_impl import runtime
from jax_impl.model import Adder, RecurrentLayer
from jax_impl.params import export_params, load_params

State = dict[str, Any]


def make_params(cfg: Config, model: Adder) -> dict[str, Any]:
    if cfg.init == "shared":
        return load_params(cfg, init_params(cfg))
    # native: Flax's own initialisers; parameter shapes do not depend on batch or length.
    a = jnp.zeros((1, 1), jnp.int32)
    h0 = jnp.zeros((cfg.state_parts, cfg.layers, 1, cfg.hidden), cfg.dtype)
    return model.init(jax.random.PRNGKey(cfg.seed), a, a, h0)["params"]


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    # The learning rate lives in the optimiser state, not in the compiled program, so runs that
    # differ only in lr (an lr sweep, the bench's solve run) share one program.
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr)
    if cfg.schedule == "constant":
        return adam
    # Scaled by `decay` once `milestone` updates are done, like torch's MultiStepLR.
    return optax.chain(adam, optax.scale_by_schedule(
        optax.piecewise_constant_schedule(1.0, {m: cfg.decay for m in cfg.milestones})))


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


def initial_tracking(dtype: str) -> State:
    """What `tracking` carries from step to step, before the first."""
    return {"step": jnp.zeros((), jnp.int32), "first_bad": jnp.zeros((), jnp.int32), "loss": jnp.zeros((), dtype),
            **interval_start(dtype)}


def interval_start(dtype: str, shape: tuple[int, ...] = ()) -> State:
    """An empty loss sum: the interval since the previous eval (`loss_mean`) starts."""
    return {"loss_sum": jnp.zeros(shape, dtype), "loss_count": jnp.zeros(shape, jnp.int32)}


def tracking(state: State, loss: jax.Array) -> State:
    """After one update, on the device: the step count, the first step whose loss was not finite,
    the latest loss, and the sum and count of the losses since the interval started."""
    step = state["step"] + 1
    newly_bad = (state["first_bad"] == 0) & ~jnp.isfinite(loss)
    return {"step": step, "first_bad": jnp.where(newly_bad, step, state["first_bad"]), "loss": loss,
            "loss_sum": state["loss_sum"] + loss, "loss_count": state["loss_count"] + 1}


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


def make_score(model: Adder):
    def score(params, a, b, target, h0):
        logits, _ = model.apply({"params": params}, a, b, h0)
        right = jnp.argmax(logits, -1) == target
        return right.all(-1), right.sum(-1)

    return score


# A copy of every array made on the device, so no restored buffer aliases host memory that a
# donating step could not take over.
_fresh_copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))


def take_loss_mean(state: State, device) -> tuple[State, np.ndarray]:
    """(the state with a new interval started, the mean loss of the interval that ended; one
    per seed for a SeedGroup's state), in one transfer."""
    total, count = jax.device_get((state["loss_sum"], state["loss_count"]))
    fresh = jax.device_put(interval_start(total.dtype, total.shape), device)
    return {**state, **fresh}, total.astype(np.float64) / count


def state_arrays(state: State) -> dict[str, np.ndarray]:
    """A training state as host arrays named by their path in the pytree (common/checkpoint.py
    saves them)."""
    # Copies: on a CPU a host view of a device buffer would change under the next (donating) step.
    return {jax.tree_util.keystr(path): np.array(leaf, copy=True)
            for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def state_from_arrays(like: State, arrays: dict[str, np.ndarray], device) -> State:
    """`state_arrays`' inverse: the same pytree as `like`, as fresh device arrays (the train step
    donates its input buffers). ValueError, naming the array, if they do not fit `like`."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    names = [jax.tree_util.keystr(path) for path, _ in leaves]
    missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
    if missing or extra:
        raise ValueError(f"state does not fit this trainer: missing {missing[:3]}, unknown {extra[:3]}")
    for name, (_, leaf) in zip(names, leaves):
        x = arrays[name]
        if x.shape != leaf.shape or x.dtype != leaf.dtype:
            raise ValueError(f"state {name}: {x.dtype}{list(x.shape)}, expected {leaf.dtype}{list(leaf.shape)}")
    return _fresh_copy(jax.device_put(treedef.unflatten([np.asarray(arrays[n]) for n in names]), device))


# Compiled programs of this process's recent configs, keyed by everything but the seed: a
# program does not depend on the seed (it only picks data and initial weights, both inputs), and
# even a persistent-cache hit costs ~0.3 s of tracing and lowering. The oldest are dropped, so a
# worker that trains many configs does not grow.
_PROGRAMS: collections.OrderedDict[tuple, tuple[Any, dict]] = collections.OrderedDict()
_KEEP_PROGRAMS = 8


class Trainer:
    """Owns the jitted steps and the training state; see common.loop.Trainer for the contract."""

    backend = "jax"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.device = runtime.configure(cfg)
        self.model = Adder(cfg)
        optimizer = make_optimizer(cfg)
        self._init_state(optimizer)
        self._train_step = jax.jit(make_train_step(cfg, self.model, optimizer), donate_argnums=0)
        self._score_jit = jax.jit(make_score(self.model))
        self._scorers: dict[tuple, Any] = {}  # compiled per eval-chunk shape
        self._loss_and_grads = jax.jit(make_loss_and_grads(self.model))
        self._forward = jax.jit(self.model.apply)
        self.compile_cache: str | None = None  # set by compile: 'memory', 'hit' or 'compiled'

    def _init_state(self, optimizer: optax.GradientTransformation) -> None:
        params = jax.device_put(make_params(self.cfg, self.model), self.device)
        self.state: State = jax.jit(make_initial_state(self.cfg, optimizer))(params)

    def _on_device(self, batch: Batch) -> tuple[jax.Array, ...]:
        return jax.device_put((batch.a, batch.b, batch.target, batch.h0), self.device)

    def compile(self, batch: Batch) -> float:
        """Compile ahead of time, so compile time is measured apart from step time. The seeds of
        a config share their programs within a process (a warm worker's runs): 'memory'."""
        cfg = self.cfg
        start, before = time.perf_counter(), runtime.CACHE_EVENTS.copy()
        key = (cfg.replace(seed=0), self.device)
        if key in _PROGRAMS:
            _PROGRAMS.move_to_end(key)
            self._train_step, self._scorers = _PROGRAMS[key]
            self.compile_cache = "memory"
            return time.perf_counter() - start
        self._train_step = self._train_step.lower(self.state, *self._on_device(batch)).compile()
        self._scorer((eval_chunk_size(cfg), cfg.positions))
        self.compile_cache = runtime.cache_outcome(before)
        _PROGRAMS[key] = self._train_step, self._scorers
        if len(_PROGRAMS) > _KEEP_PROGRAMS:
            _PROGRAMS.popitem(last=False)
        return time.perf_counter() - start

    def _scorer(self, shape: tuple[int, int]):
        """The eval program for chunks of this (sequences, positions) shape, compiled once."""
        if shape not in self._scorers:
            cfg, n = self.cfg, shape[0]
            digits = jax.ShapeDtypeStruct(shape, jnp.int32)
            h0 = jax.ShapeDtypeStruct((cfg.state_parts, cfg.layers, n, cfg.hidden), jnp.dtype(cfg.dtype))
            self._scorers[shape] = self._score_jit.lower(self.state["params"], digits, digits, digits,
                                                         h0).compile()
        return self._scorers[shape]

    def step(self, batch: Batch) -> None:
        # numpy straight in: the compiled call's C++ path copies them to the state's device;
        # jax.device_put first costs ~30 us a field in Python (measured: 4.05 -> 3.81 ms a step).
        self.state = self._train_step(self.state, batch.a, batch.b, batch.target, batch.h0)

    def loss(self) -> float:
        return float(jax.block_until_ready(self.state["loss"]))

    def loss_mean(self) -> float:
        self.state, mean = take_loss_mean(self.state, self.device)
        return float(mean)

    def nonfinite_step(self) -> int | None:
        return int(self.state["first_bad"]) or None

    def score(self, chunk: Batch) -> tuple[np.ndarray, np.ndarray]:
        whole, right = self._scorer(chunk.a.shape)(self.state["params"], chunk.a, chunk.b, chunk.target,
                                                   chunk.h0)
        return np.asarray(whole), np.asarray(right)

    def params(self) -> Params:
        return export_params(self.cfg, self.state["params"])

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything training continues from (parameters, Adam's moments and counts, the
        schedule's count, carried hidden state, step, divergence tracking and the interval's
        loss sum), as host arrays named by their path in the state pytree."""
        return state_arrays(self.state)

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from `training_state()`'s arrays (after compile). ValueError, naming the
        array, if they do not fit this trainer's state."""
        self.state = state_from_arrays(self.state, state, self.device)

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
        return float(loss), export_params(self.cfg, grads)

    def env(self) -> dict:
        return runtime.describe(self.device)


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
            view._scorers = self.views[0]._scorers  # same shapes: compile the eval programs once
        model, device, optimizer = self.views[0].model, self.views[0].device, make_optimizer(cfg)
        params = [make_params(c, model) for c in cfgs]
        stacked = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *params), device)
        self.state: State = jax.jit(jax.vmap(make_initial_state(cfg, optimizer)))(stacked)
        self._slices: dict[int, State] = {}
        self._scalars: dict[str, np.ndarray] | None = None
        self._means: np.ndarray | None = None
        self._device = device
        self._train_step = jax.jit(jax.vmap(make_train_step(cfg, model, optimizer)), donate_argnums=0)

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

    def _stacked(self, batches: list[Batch]) -> tuple[np.ndarray, ...]:
        return tuple(np.stack([getattr(b, f) for b in batches]) for f in ("a", "b", "target", "h0"))

    def compile(self, batches: list[Batch]) -> float:
        cfg = self.views[0].cfg
        start, before = time.perf_counter(), runtime.CACHE_EVENTS.copy()
        self._train_step = self._train_step.lower(self.state, *self._stacked(batches)).compile()
        self.views[0]._scorer((eval_chunk_size(cfg), cfg.positions))
        for view in self.views:
            view.compile_cache = runtime.cache_outcome(before)
        return time.perf_counter() - start

    def step(self, batches: list[Batch]) -> None:
        self.state = self._train_step(self.state, *self._stacked(batches))  # as Trainer.step
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
