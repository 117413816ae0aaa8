"""What both workloads' PyTorch trainers share (torch_impl.adder, torch_impl.sentiment): Adam from
torch.optim with MultiStepLR, the divergence flag and the interval's loss sum tracked on the
device, the trainer's state as checkpoint arrays, and the whole-step CUDA graph (`StepGraph`,
cfg.graphs on a GPU). jax_impl/core.py is its mirror; eager PyTorch compiles nothing, so there is
no program cache here.

Parameters that do not require grad are frozen: not trained, and left out of checkpoints (the
data rebuild them).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from common.config import RunConfig
from torch_impl import runtime

State = dict[str, Any]


def make_optimizer(cfg: RunConfig, parameters: Iterable[nn.Parameter], capturable: bool = False):
    """Adam (and MultiStepLR). `capturable`: safe to capture in a CUDA graph (StepGraph); the
    fused kernel is the same either way (torch/optim/adam.py `_fused_adam` ignores the flag: its
    step count already lives on the device), so a graphed step does the eager step's arithmetic.
    The lr stays a Python float: a tensor lr would reach the CUDA kernel as float32
    (aten/src/ATen/native/cuda/fused_adam_impl.cu reads `lr.const_data_ptr<float>()`), rounding a
    float64 run's lr; StepGraph recaptures when the schedule changes it instead."""
    # One fused kernel for all parameters (CPU and CUDA) instead of a loop of small ops per tensor.
    opt = torch.optim.Adam(parameters, lr=cfg.lr, fused=True, capturable=capturable)
    sched = None
    if cfg.schedule == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), gamma=cfg.decay)
    return opt, sched


def initial_tracking(dtype: torch.dtype, device: torch.device) -> State:
    """What `tracking` carries from step to step, before the first (named as in checkpoints)."""
    return {"step_count": 0, "first_bad": torch.zeros((), dtype=torch.int64, device=device),
            "last_loss": torch.zeros((), device=device), **_interval_start(dtype, device)}


def _interval_start(dtype: torch.dtype, device: torch.device) -> State:
    """An empty loss sum: the interval since the previous eval (`take_loss_mean`) starts."""
    return {"loss_sum": torch.zeros((), dtype=dtype, device=device), "loss_count": 0}


def tracking(state: State, loss: torch.Tensor) -> State:
    """After one update: the step count, the first step whose loss was not finite, the latest
    loss, and the sum (added in place) and count of the losses since the interval started.
    Divergence and the sum are kept on the device, so no step waits for the host."""
    step = state["step_count"] + 1
    newly_bad = (state["first_bad"] == 0) & ~torch.isfinite(loss)
    return {"step_count": step, "first_bad": torch.where(newly_bad, step, state["first_bad"]), "last_loss": loss,
            "loss_sum": state["loss_sum"].add_(loss), "loss_count": state["loss_count"] + 1}


def take_loss_mean(state: State, device: torch.device) -> tuple[State, float]:
    """(the state with a new interval started, the mean loss of the interval that ended). The sum
    restarts in place: a captured step graph adds to that very tensor."""
    mean = float(state["loss_sum"]) / state["loss_count"]  # waits for the device, as .item() does
    state["loss_sum"].zero_()
    return {**state, "loss_count": 0}, mean


def track_in_place(state: State, loss: torch.Tensor, step: torch.Tensor) -> None:
    """`tracking`'s device half, into the state's own tensors (what a CUDA graph can replay):
    `step` is the step number on the device, advanced here; the host counts are the caller's."""
    step.add_(1)
    newly_bad = (state["first_bad"] == 0) & ~torch.isfinite(loss)
    state["first_bad"].copy_(torch.where(newly_bad, step, state["first_bad"]))
    state["last_loss"].copy_(loss)
    state["loss_sum"].add_(loss)


def _numbers(d: dict, prefix: str) -> dict[str, np.ndarray]:
    """The numbers (and lists of numbers) of an optimiser's param group or a scheduler's
    state_dict as arrays; the rest (milestones, betas, param indices) follows from the config."""
    def numbers(value) -> bool:
        if isinstance(value, list):
            return bool(value) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return isinstance(value, (bool, int, float))

    return {f"{prefix}/{key}": np.array(value) for key, value in d.items() if numbers(value)}


# Param-group flags that say how this trainer runs Adam, not where training stands: saved (the
# names stay those of every checkpoint so far) but left as the trainer has them on restore, so
# an eager checkpoint resumes in a graphed trainer (capturable) and the other way round.
_HOW_KEYS = frozenset({"capturable", "fused", "foreach"})


def _with_numbers(d: dict, prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    """`d` with the numbers `_numbers` took from it replaced by those in `arrays`, typed as in `d`
    (`_HOW_KEYS` kept as they are)."""
    out = dict(d)
    for key, value in d.items():
        name = f"{prefix}/{key}"
        if name not in arrays or key in _HOW_KEYS:
            continue
        if isinstance(value, list):
            out[key] = [type(v)(x) for v, x in zip(value, arrays[name].tolist(), strict=True)]
        else:
            out[key] = type(value)(arrays[name].item())
    return out


_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")  # per parameter, once it has been stepped


def _optimizer_arrays(opt: torch.optim.Optimizer, sched) -> dict[str, np.ndarray]:
    """Adam's per-parameter state (step, exp_avg, exp_avg_sq), its param groups' numbers (lr,
    which a schedule changes) and the LR scheduler's counters, as flat host arrays."""
    sd = opt.state_dict()
    out = {f"opt/state/{i}/{key}": t.detach().cpu().numpy().copy()
           for i, state in sd["state"].items() for key, t in state.items()}
    for g, group in enumerate(sd["param_groups"]):
        out.update(_numbers(group, f"opt/group{g}"))
    if sched is not None:
        out.update(_numbers(sched.state_dict(), "sched"))
    return out


def _restore_optimizer(opt: torch.optim.Optimizer, sched, arrays: dict[str, np.ndarray]) -> None:
    """Put `_optimizer_arrays`' arrays back (Adam casts and places them as its parameters are)."""
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, x in arrays.items():
        parts = name.split("/")
        if parts[:2] == ["opt", "state"]:
            state.setdefault(int(parts[2]), {})[parts[3]] = torch.tensor(x)
    groups = [_with_numbers(group, f"opt/group{g}", arrays) for g, group in enumerate(sd["param_groups"])]
    opt.load_state_dict({"state": state, "param_groups": groups})
    if sched is not None:
        sched.load_state_dict(_with_numbers(sched.state_dict(), "sched", arrays))


def state_arrays(trainer: TrainerCore) -> dict[str, np.ndarray]:
    """What a trainer continues from, as host arrays (common/checkpoint.py saves them): the
    model's state_dict but its frozen entries, Adam's and the LR scheduler's state, the tracking."""
    out = {f"model/{k}": v.detach().cpu().numpy().copy() for k, v in trainer.model.state_dict().items()
           if k not in trainer.frozen}
    out.update(_optimizer_arrays(trainer.opt, trainer.sched))
    for name, value in trainer.tracked.items():
        out[name] = value.cpu().numpy().copy() if isinstance(value, torch.Tensor) else np.array(value, np.int64)
    return out


def state_from_arrays(trainer: TrainerCore, arrays: dict[str, np.ndarray],
                      optional: frozenset[str] = frozenset()) -> None:
    """Put `state_arrays`' arrays back; arrays named in `optional` (the trainer's own, such as
    a carried state) may be there or not. ValueError, naming the array, if they do not fit."""
    sd = trainer.opt.state_dict()
    own = {k: v for k, v in trainer.model.state_dict().items() if k not in trainer.frozen}
    expected = {f"model/{k}" for k in own} | trainer.tracked.keys()
    expected |= {f"opt/state/{i}/{key}" for group in sd["param_groups"]
                 for i in group["params"] for key in _ADAM_STATE}
    for g, group in enumerate(sd["param_groups"]):
        expected |= _numbers(group, f"opt/group{g}").keys()
    if trainer.sched is not None:
        expected |= _numbers(trainer.sched.state_dict(), "sched").keys()
    have = arrays.keys() - optional
    missing, extra = sorted(expected - have), sorted(have - expected)
    if missing or extra:
        raise ValueError(f"state does not fit this trainer: missing {missing[:3]}, unknown {extra[:3]}")
    model = {k[len("model/"):]: torch.tensor(v) for k, v in arrays.items() if k.startswith("model/")}
    for k, v in own.items():
        if tuple(v.shape) != tuple(model[k].shape) or v.dtype != model[k].dtype:
            raise ValueError(f"state model/{k}: {model[k].dtype}{list(model[k].shape)}, "
                             f"expected {v.dtype}{list(v.shape)}")
    trainer.model.load_state_dict({**trainer.model.state_dict(), **model})
    _restore_optimizer(trainer.opt, trainer.sched, arrays)
    trainer.tracked = {name: int(arrays[name]) if isinstance(value, int)  # a count kept on the host
                       else torch.tensor(arrays[name], device=trainer.device) for name, value in trainer.tracked.items()}


def graphs_mode(cfg: RunConfig, device: torch.device, refused: str | None = None) -> str:
    """The record's word for cfg.graphs here: "on", "off", or "off: " and why it cannot be on
    (no GPU, or `refused`: a workload whose step is not one fixed graph)."""
    if not cfg.graphs:
        return "off"
    if device.type != "cuda":
        return "off: no GPU"
    return f"off: {refused}" if refused else "on"


class StepGraph:
    """One training step captured as a CUDA graph and replayed: PyTorch's whole-network recipe
    (https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture): warm-up steps on a
    side stream, grads set to None, then forward, loss, backward, Adam (capturable) and the
    divergence and loss tracking (`track_in_place`) captured into one `torch.cuda.CUDAGraph`.

    `body()` reads the trainer's static inputs and returns (loss, an output to keep, e.g. the
    final hidden state); a step is: fill those inputs (`copy_`), `replay()`. The schedule stays
    on the host (the trainer's sched.step() after each replay). What the graph was captured on:
    the inputs' shapes, the lr of every param group (the fused kernel takes it as a launch
    argument) and the very tensors of the weights, Adam's state and the tracking (a restore
    replaces them); `fits(shapes)` is False once any of them changed, and the trainer captures
    again (a MultiStepLR run: once per milestone).

    The warm-up trains for real, so everything it changes (weights, Adam's state, the tracking)
    is put back afterwards: a graphed run starts where the eager one does. Capture itself runs
    nothing. Verified only by reading torch 2.13's source (torch/cuda/graphs.py, torch/optim/
    adam.py); its GPU test is tests/test_torch_modes.py (requires_gpu).
    """

    WARMUP = 3  # the recipe's count: lazy initialisations (Adam's state, cuBLAS, cuDNN) happen here

    def __init__(self, trainer: TrainerCore, inputs: dict[str, torch.Tensor],
                 body: Callable[[], tuple[torch.Tensor, torch.Tensor]]):
        start = time.perf_counter()
        self.trainer, self.inputs, self.body = trainer, inputs, body
        self.shapes = shapes_of(inputs)
        tracked = trainer.tracked
        dtype = getattr(torch, trainer.cfg.dtype)
        if tracked["last_loss"].dtype != dtype:  # eager keeps the loss tensor itself: the model's dtype
            tracked["last_loss"] = tracked["last_loss"].to(dtype)
        self.step = torch.tensor(tracked["step_count"], dtype=torch.int64, device=trainer.device)
        with rehearsal(self._live):
            side = torch.cuda.Stream(trainer.device)
            side.wait_stream(torch.cuda.current_stream(trainer.device))
            trainer.model.train()
            with warnings.catch_warnings(), torch.cuda.stream(side):
                # Adam warns once that a capturable instance steps uncaptured: these steps must.
                warnings.filterwarnings("ignore", message=".*capturable=True.*")
                for _ in range(self.WARMUP):
                    trainer.opt.zero_grad(set_to_none=True)
                    self._run()
            torch.cuda.current_stream(trainer.device).wait_stream(side)
            trainer.opt.zero_grad(set_to_none=True)  # backward allocates the grads in the graph's pool
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.output = self._run()
            # Held, so that no later allocation may take their memory: the graph writes them.
            self.grads = [p.grad for g in trainer.opt.param_groups for p in g["params"]]
        self.lrs = self._lrs()
        self.bound = self._live()  # held: compared by identity, and their memory stays theirs
        torch.cuda.synchronize(trainer.device)
        self.seconds = time.perf_counter() - start

    def _run(self) -> torch.Tensor:
        loss, output = self.body()
        loss.backward()
        self.trainer.opt.step()
        track_in_place(self.trainer.tracked, loss.detach(), self.step)
        return output

    def _live(self) -> list[torch.Tensor]:
        return live_tensors(self.trainer) + [self.step]

    def _lrs(self) -> tuple:
        return tuple(g["lr"] for g in self.trainer.opt.param_groups)

    def fits(self, shapes: tuple) -> bool:
        """Whether a replay would do the trainer's step on inputs of these shapes."""
        live = self._live()
        return (shapes == self.shapes and self._lrs() == self.lrs and len(live) == len(self.bound)
                and all(x is y for x, y in zip(live, self.bound)))

    def replay(self) -> torch.Tensor:
        """One step on the inputs as they are now; returns the body's output (the graph's own
        tensor: the next replay overwrites it)."""
        self.graph.replay()
        tracked = self.trainer.tracked
        tracked["step_count"] += 1
        tracked["loss_count"] += 1
        return self.output


def live_tensors(trainer: TrainerCore) -> list[torch.Tensor]:
    """The tensors a training step changes in place: weights, Adam's state, the tracking."""
    out = [p for g in trainer.opt.param_groups for p in g["params"]]
    out += [v for state in trainer.opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return out + [v for v in trainer.tracked.values() if isinstance(v, torch.Tensor)]


@contextlib.contextmanager
def rehearsal(live: Callable[[], list[torch.Tensor]]):
    """Steps run inside leave no trace: the tensors `live()` lists on entry get their values
    back on exit, and those that appeared inside (Adam's state, made lazily by its first step)
    are zeroed, as Adam's lazy start makes them. (A CUDA graph's warm-up trains for real.)"""
    before = live()
    saved = [x.detach().clone() for x in before]
    yield
    with torch.no_grad():
        for x, value in zip(before, saved):
            x.copy_(value)
        known = {id(x) for x in before}  # `before` holds them: their ids stay theirs
        for x in live():
            if id(x) not in known:
                x.zero_()


def shapes_of(inputs: dict[str, Any]) -> tuple:
    """The shapes of named arrays (tensors or the host batch's numpy arrays), as a graph's key."""
    return tuple((name, tuple(x.shape)) for name, x in sorted(inputs.items()))


class TrainerCore:
    """The part of common.training.Trainer that both workloads' trainers share. A workload's
    trainer builds its model, then `_train`s it and steps through `_update` (or, `graphs` on,
    a `StepGraph` of its own)."""

    backend = "torch"
    # Why this workload's step cannot be one CUDA graph (the record's env says so); None: it can.
    GRAPHS_REFUSED: str | None = None

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.device = runtime.configure(cfg)
        self.compile_cache: str | None = None  # eager: nothing is compiled
        self.graphs_mode = graphs_mode(cfg, self.device, self.GRAPHS_REFUSED)
        self.graphs = self.graphs_mode == "on"

    def _train(self, model: nn.Module) -> None:
        """Train `model`'s parameters that require grad; the others are `frozen` (by name)."""
        self.model = model
        self.opt, self.sched = make_optimizer(self.cfg, [p for p in model.parameters() if p.requires_grad],
                                              capturable=self.graphs)
        self.frozen = frozenset(k for k, p in model.named_parameters() if not p.requires_grad)
        self.tracked = initial_tracking(getattr(torch, self.cfg.dtype), self.device)

    def _update(self, loss: torch.Tensor) -> None:
        """One optimiser step on `loss`, tracked (`tracking`)."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.sched:
            self.sched.step()
        self.tracked = tracking(self.tracked, loss.detach())

    def loss(self) -> float:
        if self.device.type == "cuda":  # wait for the queued steps, as JAX's block_until_ready does
            torch.cuda.synchronize(self.device)
        return float(self.tracked["last_loss"])

    def loss_mean(self) -> float:
        self.tracked, mean = take_loss_mean(self.tracked, self.device)
        return mean

    def nonfinite_step(self) -> int | None:
        return int(self.tracked["first_bad"]) or None

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything training continues from (`state_arrays`), the frozen parameters left out."""
        return state_arrays(self)

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from `training_state()`'s arrays. ValueError, naming the array, if they do
        not fit this trainer."""
        state_from_arrays(self, state)

    def env(self) -> dict:
        """The runtime (runtime.describe) and how this trainer executes its steps: the config's
        execution modes, in the words JAX's record uses for the same keys."""
        return {**runtime.describe(self.device),
                "execution": {"unroll": "n/a (cuDNN/ATen loop)", "steps_per_call": "n/a (eager)",
                              "graphs": self.graphs_mode}}
