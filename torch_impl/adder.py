"""The adder's PyTorch trainer (on torch_impl.core): mean cross-entropy over every position.
With cfg.graphs on a GPU each training step is one replay of a captured CUDA graph (core.StepGraph);
elsewhere the eager step, and env()["execution"]["graphs"] says which."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from common.config import Config
from common.data import Batch
from common.params import Params, init_params, param_shapes
from torch_impl.core import StepGraph, TrainerCore, shapes_of, state_from_arrays
from torch_impl.model import Adder
from torch_impl.params import to_native, to_neutral


def make_model(cfg: Config, device: torch.device) -> Adder:
    torch.manual_seed(cfg.seed)  # native init draws from torch's own generator
    model = Adder(cfg).to(device=device, dtype=getattr(torch, cfg.dtype))
    if cfg.init == "shared":
        model.load_state_dict(to_native(init_params(cfg)), strict=True)
    return model


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


class Trainer(TrainerCore):
    """Owns the model, optimiser and carried state; see common.loop.Trainer for the contract."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self._train(make_model(cfg, self.device))
        self.carry: torch.Tensor | None = None
        self._graph: StepGraph | None = None
        self._inputs: dict[str, torch.Tensor] = {}  # the graph's static inputs

    def _on_device(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        to = lambda x: torch.from_numpy(x).to(self.device, non_blocking=True)  # noqa: E731
        return to(batch.a).long(), to(batch.b).long(), to(batch.target).long(), to(batch.h0)

    def compile(self, batch: Batch) -> float | None:
        """Eager: nothing to compile (None). Graphs on: capture the step on this batch's shapes;
        the seconds it took (warm-up and capture)."""
        if not self.graphs:
            return None
        return self._capture(batch).seconds

    def _capture(self, batch: Batch) -> StepGraph:
        """A new step graph on `batch`'s shapes, its static inputs holding `batch`."""
        if self._graph is not None and self.carry is not None:
            self.carry = self.carry.clone()  # the old graph's output: its memory goes with it
        self._graph = None
        self._inputs = dict(zip(("a", "b", "target", "h0"), (x.clone() for x in self._on_device(batch))))
        self._graph = StepGraph(self, self._inputs, self._body)
        return self._graph

    def _body(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._inputs
        logits, final = self.model(x["a"], x["b"], x["h0"])
        return loss_fn(logits, x["target"]), final.detach()

    def _graphed_step(self, batch: Batch) -> None:
        """Fill the static inputs from the host batch and replay; capture first if the graph no
        longer fits (other shapes, a new lr from the schedule, state replaced by a restore)."""
        host = {"a": batch.a, "b": batch.b, "target": batch.target, "h0": batch.h0}
        if self._graph is None or not self._graph.fits(shapes_of(host)):
            self._capture(batch)
        else:
            for name, x in host.items():
                self._inputs[name].copy_(torch.from_numpy(x), non_blocking=True)
        if self.cfg.carry_state and self.carry is not None:
            self._inputs["h0"].copy_(self.carry)
        self.carry = self._graph.replay()
        if self.sched:
            self.sched.step()

    def step(self, batch: Batch) -> None:
        if self.graphs:
            self._graphed_step(batch)
            return
        a, b, target, h0 = self._on_device(batch)
        if self.cfg.carry_state and self.carry is not None:
            h0 = self.carry
        self.model.train()
        logits, final = self.model(a, b, h0)
        self._update(loss_fn(logits, target))
        self.carry = final.detach()

    @torch.no_grad()
    def score(self, chunk: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Per sequence: whole sum right (bool), and how many digits are right."""
        a, b, target, h0 = self._on_device(chunk)
        self.model.eval()
        logits, _ = self.model(a, b, h0)
        right = logits.argmax(-1) == target
        return right.all(-1).cpu().numpy(), right.sum(-1).cpu().numpy()

    def params(self) -> Params:
        return to_neutral(self.model.state_dict(), param_shapes(self.cfg))

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything training continues from (core's), and the carried hidden state."""
        out = super().training_state()
        if self.carry is not None:
            out["carry"] = self.carry.cpu().numpy().copy()
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from `training_state()`'s arrays. ValueError, naming the array, if they do
        not fit this trainer."""
        state_from_arrays(self, state, optional=frozenset({"carry"}))
        self.carry = torch.tensor(state["carry"], device=self.device) if "carry" in state else None
        if self._graph is not None:  # the restore replaced Adam's state: capture on it now, not mid-run
            self._graph = StepGraph(self, self._inputs, self._body)

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
        grads = to_neutral({name: p.grad for name, p in self.model.named_parameters()}, param_shapes(self.cfg))
        self.model.zero_grad(set_to_none=True)
        return float(loss.detach()), grads
