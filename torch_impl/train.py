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


def update(trainer, loss: torch.Tensor) -> None:
    """One optimiser step on `loss` for a trainer with opt, sched, step_count, last_loss and
    first_bad (this module's and torch_impl.sentiment's). Divergence is tracked on the device,
    so no step waits for the host."""
    trainer.opt.zero_grad(set_to_none=True)
    loss.backward()
    trainer.opt.step()
    if trainer.sched:
        trainer.sched.step()
    trainer.step_count += 1
    trainer.last_loss = loss.detach()
    newly_bad = (trainer.first_bad == 0) & ~torch.isfinite(trainer.last_loss)
    trainer.first_bad = torch.where(newly_bad, trainer.step_count, trainer.first_bad)


class Trainer:
    """Owns the model, optimiser and carried state; see common.loop.Trainer for the contract."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.device = runtime.configure(cfg)
        self.model = make_model(cfg, self.device)
        self.opt, self.sched = make_optimizer(cfg, self.model)
        self.carry: torch.Tensor | None = None
        self.step_count = 0
        self.last_loss = torch.zeros((), device=self.device)
        # Divergence is tracked on the device so no step has to wait for the host.
        self.first_bad = torch.zeros((), dtype=torch.int64, device=self.device)
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
