"""PyTorch training: Adam from torch.optim, MultiStepLR, mean cross-entropy over every position."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from common.config import Config
from common.data import Batch
from common.params import Params, init_params
from torch_impl import runtime
from torch_impl.model import Adder
from torch_impl.params import export_params, load_params


def make_model(cfg: Config, device: torch.device) -> Adder:
    torch.manual_seed(cfg.seed)  # native init draws from torch's own generator
    model = Adder(cfg).to(device=device, dtype=getattr(torch, cfg.dtype))
    if cfg.init == "shared":
        load_params(model, init_params(cfg))
    return model


def make_optimizer(cfg: Config, model: Adder):
    # One fused kernel for all parameters (CPU and CUDA) instead of a loop of small ops per tensor.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    sched = None
    if cfg.schedule == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), gamma=cfg.decay)
    return opt, sched


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def start_tracking(trainer, dtype: torch.dtype) -> None:
    """`update`'s counters before the first step: the step count, the latest loss, the first
    step whose loss was not finite, and the loss sum and count since the interval started."""
    trainer.step_count = 0
    trainer.last_loss = torch.zeros((), device=trainer.device)
    trainer.first_bad = torch.zeros((), dtype=torch.int64, device=trainer.device)
    trainer.loss_sum = torch.zeros((), dtype=dtype, device=trainer.device)
    trainer.loss_count = 0


def update(trainer, loss: torch.Tensor) -> None:
    """One optimiser step on `loss` for a trainer with opt, sched and `start_tracking`'s counters
    (this module's and torch_impl.sentiment's). Divergence and the interval's loss sum are kept
    on the device, so no step waits for the host."""
    trainer.opt.zero_grad(set_to_none=True)
    loss.backward()
    trainer.opt.step()
    if trainer.sched:
        trainer.sched.step()
    trainer.step_count += 1
    trainer.last_loss = loss.detach()
    newly_bad = (trainer.first_bad == 0) & ~torch.isfinite(trainer.last_loss)
    trainer.first_bad = torch.where(newly_bad, trainer.step_count, trainer.first_bad)
    trainer.loss_sum.add_(trainer.last_loss)
    trainer.loss_count += 1


def loss_mean(trainer) -> float:
    """The mean loss since the previous call (common.training.Trainer.loss_mean); starts the
    next interval."""
    mean = float(trainer.loss_sum) / trainer.loss_count  # waits for the device, as .item() does
    trainer.loss_sum = torch.zeros_like(trainer.loss_sum)
    trainer.loss_count = 0
    return mean


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


def optimizer_state(opt: torch.optim.Optimizer, sched) -> dict[str, np.ndarray]:
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


def restore_optimizer(opt: torch.optim.Optimizer, sched, arrays: dict[str, np.ndarray]) -> None:
    """Put `optimizer_state`'s arrays back (Adam casts and places them as its parameters are)."""
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


def trainer_arrays(trainer, frozen: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """What a trainer with model, opt, sched and `start_tracking`'s counters continues from, as
    host arrays (common/checkpoint.py saves them): the model's state_dict but its `frozen`
    entries (which the trainer rebuilds), Adam's and the LR scheduler's state, the counters."""
    out = {f"model/{k}": v.detach().cpu().numpy().copy() for k, v in trainer.model.state_dict().items()
           if k not in frozen}
    out.update(optimizer_state(trainer.opt, trainer.sched))
    out["step_count"] = np.array(trainer.step_count, np.int64)
    out["first_bad"] = trainer.first_bad.cpu().numpy().copy()
    out["last_loss"] = trainer.last_loss.cpu().numpy().copy()
    out["loss_sum"] = trainer.loss_sum.cpu().numpy().copy()
    out["loss_count"] = np.array(trainer.loss_count, np.int64)
    return out


def restore_trainer(trainer, arrays: dict[str, np.ndarray], frozen: frozenset[str] = frozenset(),
                    optional: frozenset[str] = frozenset()) -> None:
    """Put `trainer_arrays`' arrays back; arrays named in `optional` (the trainer's own, such as
    a carried state) may be there or not. ValueError, naming the array, if they do not fit."""
    sd = trainer.opt.state_dict()
    own = {k: v for k, v in trainer.model.state_dict().items() if k not in frozen}
    expected = {f"model/{k}" for k in own} | {"step_count", "first_bad", "last_loss", "loss_sum", "loss_count"}
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
    restore_optimizer(trainer.opt, trainer.sched, arrays)
    trainer.step_count = int(arrays["step_count"])
    trainer.first_bad = torch.tensor(arrays["first_bad"], device=trainer.device)
    trainer.last_loss = torch.tensor(arrays["last_loss"], device=trainer.device)
    trainer.loss_sum = torch.tensor(arrays["loss_sum"], device=trainer.device)
    trainer.loss_count = int(arrays["loss_count"])


class Trainer:
    """Owns the model, optimiser and carried state; see common.loop.Trainer for the contract."""

    backend = "torch"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.device = runtime.configure(cfg)
        self.model = make_model(cfg, self.device)
        self.opt, self.sched = make_optimizer(cfg, self.model)
        self.carry: torch.Tensor | None = None
        start_tracking(self, getattr(torch, cfg.dtype))
        self.compile_cache: str | None = None  # eager: nothing is compiled

    def _on_device(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        to = lambda x: torch.from_numpy(x).to(self.device, non_blocking=True)  # noqa: E731
        return to(batch.a).long(), to(batch.b).long(), to(batch.target).long(), to(batch.h0)

    def compile(self, batch: Batch) -> float | None:
        return None  # eager: nothing to compile

    def step(self, batch: Batch) -> None:
        a, b, target, h0 = self._on_device(batch)
        if self.cfg.carry_state and self.carry is not None:
            h0 = self.carry
        self.model.train()
        logits, final = self.model(a, b, h0)
        update(self, loss_fn(logits, target))
        self.carry = final.detach()

    def loss(self) -> float:
        if self.device.type == "cuda":  # wait for the queued steps, as JAX's block_until_ready does
            torch.cuda.synchronize(self.device)
        return float(self.last_loss)

    def loss_mean(self) -> float:
        return loss_mean(self)

    def nonfinite_step(self) -> int | None:
        bad = int(self.first_bad)
        return bad or None

    @torch.no_grad()
    def score(self, chunk: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Per sequence: whole sum right (bool), and how many digits are right."""
        a, b, target, h0 = self._on_device(chunk)
        self.model.eval()
        logits, _ = self.model(a, b, h0)
        right = logits.argmax(-1) == target
        return right.all(-1).cpu().numpy(), right.sum(-1).cpu().numpy()

    def params(self) -> Params:
        return export_params(self.model)

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything training continues from (`trainer_arrays`, and the carried hidden state)."""
        out = trainer_arrays(self)
        if self.carry is not None:
            out["carry"] = self.carry.cpu().numpy().copy()
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from `training_state()`'s arrays. ValueError, naming the array, if they do
        not fit this trainer."""
        restore_trainer(self, state, optional=frozenset({"carry"}))
        self.carry = torch.tensor(state["carry"], device=self.device) if "carry" in state else None

    @torch.no_grad()
    def logits(self, batch: Batch) -> np.ndarray:
        """Forward pass with the current parameters (for equivalence checks)."""
        a, b, _, h0 = self._on_device(batch)
        return self.model(a, b, h0)[0].cpu().numpy()

    @torch.no_grad()
    def hidden_states(self, batch: Batch) -> np.ndarray:
        """(layers, batch, positions, hidden) outputs of every recurrent layer (for probes)."""
        a, b, _, h0 = self._on_device(batch)
        return self.model.hidden_states(a, b, h0).cpu().numpy()

    def gradients(self, batch: Batch) -> tuple[float, Params]:
        """Loss and parameter gradients (neutral names and layouts) without updating anything."""
        a, b, target, h0 = self._on_device(batch)
        self.model.zero_grad(set_to_none=True)
        loss = loss_fn(self.model(a, b, h0)[0], target)
        loss.backward()
        grads = {name: p.grad.detach().cpu().numpy().copy() for name, p in self.model.named_parameters()}
        self.model.zero_grad(set_to_none=True)
        return float(loss.detach()), grads

    def env(self) -> dict:
        return runtime.describe(self.device)
