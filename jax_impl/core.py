"""What both workloads' JAX trainers share (jax_impl.adder, jax_impl.sentiment): Adam from optax
with its schedule, the divergence flag and the interval's loss sum tracked inside the jitted step,
the state as checkpoint arrays, and the one cache of compiled programs. torch_impl/core.py is its
mirror.

A trainer's state is one pytree on its device: `params` (trained), `opt_state`, the tracking
fields (`initial_tracking`) and, where some parameters are not trained, `frozen`: passed to the
step but never updated, and left out of checkpoints (the data rebuild them).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from common.config import RunConfig
from jax_impl import runtime

State = dict[str, Any]


def make_optimizer(cfg: RunConfig) -> optax.GradientTransformation:
    # The learning rate lives in the optimiser state, not in the compiled program, so runs that
    # differ only in lr (an lr sweep, the bench's solve run) share one program.
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr)
    if cfg.schedule == "constant":
        return adam
    # Scaled by `decay` once `milestone` updates are done, like torch's MultiStepLR.
    return optax.chain(adam, optax.scale_by_schedule(
        optax.piecewise_constant_schedule(1.0, {m: cfg.decay for m in cfg.milestones})))


def initial_tracking(dtype: str) -> State:
    """What `tracking` carries from step to step, before the first."""
    return {"step": jnp.zeros((), jnp.int32), "first_bad": jnp.zeros((), jnp.int32), "loss": jnp.zeros((), dtype),
            **_interval_start(dtype)}


def _interval_start(dtype: str, shape: tuple[int, ...] = ()) -> State:
    """An empty loss sum: the interval since the previous eval (`take_loss_mean`) starts."""
    return {"loss_sum": jnp.zeros(shape, dtype), "loss_count": jnp.zeros(shape, jnp.int32)}


def tracking(state: State, loss: jax.Array) -> State:
    """After one update, on the device: the step count, the first step whose loss was not finite,
    the latest loss, and the sum and count of the losses since the interval started."""
    step = state["step"] + 1
    newly_bad = (state["first_bad"] == 0) & ~jnp.isfinite(loss)
    return {"step": step, "first_bad": jnp.where(newly_bad, step, state["first_bad"]), "loss": loss,
            "loss_sum": state["loss_sum"] + loss, "loss_count": state["loss_count"] + 1}


def take_loss_mean(state: State, device) -> tuple[State, np.ndarray]:
    """(the state with a new interval started, the mean loss of the interval that ended; one
    per seed for a SeedGroup's state), in one transfer."""
    total, count = jax.device_get((state["loss_sum"], state["loss_count"]))
    fresh = jax.device_put(_interval_start(total.dtype, total.shape), device)
    return {**state, **fresh}, total.astype(np.float64) / count


# A copy of every array made on the device, so no restored buffer aliases host memory that a
# donating step could not take over.
_fresh_copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))


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


class Programs:
    """Compiled programs of this process's recent configs, both workloads', keyed by everything
    but the seed: a program does not depend on the seed (it only picks data and initial weights,
    both inputs), and even a persistent-cache hit costs ~0.3 s of tracing and lowering. Each
    config holds a map (kind, rows, width) -> program, filled as shapes are met. The oldest are
    dropped, so a worker that trains many configs does not grow."""

    def __init__(self, keep: int = 8):
        self.keep = keep
        self._configs: collections.OrderedDict[tuple, dict[tuple, Any]] = collections.OrderedDict()

    def of(self, config: tuple, programs: dict[tuple, Any]) -> dict[tuple, Any]:
        """The program map of `config` (`programs` if it has none yet), now the newest."""
        programs = self._configs.setdefault(config, programs)
        self._configs.move_to_end(config)
        if len(self._configs) > self.keep:
            self._configs.popitem(last=False)
        return programs

    def clear(self) -> None:
        self._configs.clear()


PROGRAMS = Programs()


class TrainerCore:
    """The part of common.training.Trainer that both workloads' trainers share. A workload's
    trainer sets `state` and compiles its programs through `_program` and `_compile`."""

    backend = "jax"
    state: State

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.device = runtime.configure(cfg)
        self._programs: dict[tuple, Any] = {}  # (kind, rows, width) -> compiled; PROGRAMS' at compile
        self.compile_cache: str | None = None  # set by compile: 'memory', 'hit' or 'compiled'

    def _program(self, key: tuple, lower: Callable[[], Any]):
        """The compiled program `key` ((kind, rows, width)), lowered by `lower` the first time."""
        if key not in self._programs:
            self._programs[key] = lower().compile()
        return self._programs[key]

    def _compile(self, config: tuple, needed: dict[tuple, Callable[[], Any]]) -> float:
        """Compile the `needed` programs ahead of time, so compile time is measured apart from
        step time. The seeds of a config (`config`: the key of everything but the seed) share
        their programs within a process (a warm worker's runs): 'memory' when every one was there
        already."""
        start, before = time.perf_counter(), runtime.CACHE_EVENTS.copy()
        self._programs = PROGRAMS.of(config, self._programs)
        if all(key in self._programs for key in needed):
            self.compile_cache = "memory"
            return time.perf_counter() - start
        for key, lower in needed.items():
            self._program(key, lower)
        self.compile_cache = runtime.cache_outcome(before)
        return time.perf_counter() - start

    def loss(self) -> float:
        return float(jax.block_until_ready(self.state["loss"]))

    def loss_mean(self) -> float:
        self.state, mean = take_loss_mean(self.state, self.device)
        return float(mean)

    def nonfinite_step(self) -> int | None:
        return int(self.state["first_bad"]) or None

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything training continues from (trained parameters, Adam's moments and counts, the
        schedule's count, any carried hidden state, step, divergence tracking and the interval's
        loss sum), as host arrays named by their path in the state pytree; the frozen parameters
        are left out (the data rebuild them)."""
        return state_arrays({k: v for k, v in self.state.items() if k != "frozen"})

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from `training_state()`'s arrays (after compile). ValueError, naming the
        array, if they do not fit this trainer's state."""
        trained = {k: v for k, v in self.state.items() if k != "frozen"}
        frozen = {k: v for k, v in self.state.items() if k == "frozen"}
        self.state = {**state_from_arrays(trained, state, self.device), **frozen}

    def env(self) -> dict:
        """Framework, device and threads, and the execution modes this trainer runs (the record
        says which mode ran): scan unroll ("full": every position) and training steps per compiled
        call, both honoured by every JAX trainer; CUDA graphs are PyTorch's, and a request says so."""
        cfg = self.cfg
        return {**runtime.describe(self.device),
                "execution": {"unroll": "n/a (no recurrent layer)" if cfg.cell == "none" else cfg.unroll or "full",
                              "steps_per_call": cfg.steps_per_call,
                              "graphs": "n/a (JAX; graphs=true asked, not a JAX mode)" if cfg.graphs else "n/a (JAX)"}}
