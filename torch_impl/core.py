"""What both workloads' PyTorch trainers share (torch_impl.adder, torch_impl.sentiment): Adam from
torch.optim with MultiStepLR, the divergence flag and the interval's loss sum tracked on the
device, the trainer's state as checkpoint arrays. jax_impl/core.py is its mirror; eager PyTorch
compiles nothing, so there is no program cache here.

Parameters that do not require grad are frozen: not trained, and left out of checkpoints (the
data rebuild them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from common.config import RunConfig
from torch_impl import runtime

State = dict[str, Any]


def make_optimizer(cfg: RunConfig, parameters: Iterable[nn.Parameter]):
    # One fused kernel for all parameters (CPU and CUDA) instead of a loop of small ops per tensor.
    opt = torch.optim.Adam(parameters, lr=cfg.lr, fused=True)
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
    """(the state with a new interval started, the mean loss of the interval that ended)."""
    mean = float(state["loss_sum"]) / state["loss_count"]  # waits for the device, as .item() does
    return {**state, **_interval_start(state["loss_sum"].dtype, device)}, mean


def _numbers(d: dict, prefix: str) -> dict[str, np.ndarray]:
    """The numbers (and lists of numbers) of an optimiser's param group or a scheduler's
    state_dict as arrays; the rest (milestones, betas, param indices) follows from the config."""
    def numbers(value) -> bool:
        if isinstance(value, list):
            return bool(value) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return isinstance(value, (bool, int, float))

    return {f"{prefix}/{key}": np.array(value) for key, value in d.items() if numbers(value)}


def _with_numbers(d: dict, prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    """`d` with the numbers `_numbers` took from it replaced by those in `arrays`, typed as in `d`."""
    out = dict(d)
    for key, value in d.items():
        name = f"{prefix}/{key}"
        if name not in arrays:
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


class TrainerCore:
    """The part of common.training.Trainer that both workloads' trainers share. A workload's
    trainer builds its model, then `_train`s it and steps through `_update`."""

    backend = "torch"

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.device = runtime.configure(cfg)
        self.compile_cache: str | None = None  # eager: nothing is compiled

    def _train(self, model: nn.Module) -> None:
        """Train `model`'s parameters that require grad; the others are `frozen` (by name)."""
        self.model = model
        self.opt, self.sched = make_optimizer(self.cfg, [p for p in model.parameters() if p.requires_grad])
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
        return runtime.describe(self.device)
