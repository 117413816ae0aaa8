"""The adder's training: both backends plug in a `Trainer` with the same methods, and
common.training's loop (timing, evals, divergence, lockstep, checkpoints) runs it with the
adder's batches, scores, stop rule and end-of-run analyses (`Adder`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from common.checkpoint import Checkpointing
from common.config import Config
from common.data import Batch, eval_chunk_size, eval_chunks, eval_set, train_batch
from common.params import Params
from common.probe import probe_states
from common import training
from common.training import Alone, Lockstep, fit_group

_PROBE_SEQUENCES = 1000  # held-out sequences whose hidden states the probe sees


class Trainer(training.Trainer, Protocol):
    """What each backend's `train.Trainer` provides (same names in jax_impl and torch_impl): the
    loop's methods (common.training.Trainer: loss, loss_mean, nonfinite_step, training_state,
    restore, compile_cache, backend) and these."""

    def compile(self, batch: Batch) -> float | None:
        """Compile the train and eval steps for these shapes; seconds taken, None if eager."""

    def step(self, batch: Batch) -> None:
        """One optimiser update; may return before the device has finished."""

    def score(self, chunk: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Per sequence of `chunk`: whole sum right (bool), number of digits right."""

    def hidden_states(self, batch: Batch) -> np.ndarray:
        """(layers, sequences, positions, hidden): every recurrent layer's outputs."""

    def params(self) -> Params:
        """The current weights, neutral names and layouts, to compare across backends."""

    def logits(self, batch: Batch) -> np.ndarray:
        """Forward pass with the current weights, updating nothing (equivalence checks)."""

    def gradients(self, batch: Batch) -> tuple[float, Params]:
        """Loss and parameter gradients (neutral names and layouts), updating nothing."""

    def env(self) -> dict:
        """The framework, device and threads this trainer runs on, for the run record."""


def evaluate(cfg: Config, trainer: Trainer, batch: Batch) -> tuple[float, float]:
    """(exact-match accuracy, per-digit accuracy) over `batch`, scored in memory-bounded chunks."""
    exact = digits = 0
    for chunk, valid in eval_chunks(batch, eval_chunk_size(cfg)):
        whole, right = trainer.score(chunk)
        exact += int(np.asarray(whole)[:valid].sum())
        digits += int(np.asarray(right)[:valid].sum())
    return exact / len(batch), digits / batch.target.size


def score_lengths(cfg: Config, trainer: Trainer) -> list[dict[str, Any]]:
    """Length generalisation: accuracy on fresh sums of each of cfg.test_lengths digits."""
    out = []
    for digits in cfg.test_lengths:
        test_cfg = cfg.replace(digits=digits, eval_size=cfg.test_size)
        exact, digit = evaluate(test_cfg, trainer, eval_set(test_cfg))
        out.append({"digits": digits, "exact_acc": exact, "digit_acc": digit})
    return out


def probe_carry(cfg: Config, trainer: Trainer, held_out: Batch) -> dict[str, Any]:
    """Linear carry probes on the hidden states of (up to 1000) held-out sums."""
    n = _PROBE_SEQUENCES
    sample = Batch(held_out.a[:n], held_out.b[:n], held_out.target[:n], held_out.h0[:, :, :n])
    return probe_states(sample, trainer.hidden_states(sample), cfg.base, cfg.order)


class Adder:
    """The adder's part of the loop for one run (common.training.Workload)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.held_out = eval_set(cfg)
        self.notes: dict[str, Any] = {}

    def batch(self, k: int) -> Batch:
        return train_batch(self.cfg, k)

    def evaluate(self, trainer: Trainer) -> dict[str, Any]:
        exact_acc, digit_acc = evaluate(self.cfg, trainer, self.held_out)
        return {"exact_acc": exact_acc, "digit_acc": digit_acc}

    def stops(self, point: dict[str, Any]) -> bool:
        return self.cfg.stop_when_solved and point["exact_acc"] == 1.0

    def finish(self, trainer: Trainer, status: str, curve: list[dict[str, Any]]) -> dict[str, Any]:
        """Scores that need the weights as they are now: other lengths, the carry probe."""
        ok = status == "ok"
        return {"lengths": score_lengths(self.cfg, trainer) if ok else [],  # accuracy on cfg.test_lengths
                "probe": probe_carry(self.cfg, trainer, self.held_out)  # carry probe accuracy per layer
                if ok and self.cfg.probe and self.cfg.cell != "none" else None}

    def timing(self, curve: list[dict[str, Any]]) -> dict[str, Any]:
        solved = next((p for p in curve if p["exact_acc"] == 1.0), None)
        return {"solve_step": solved["step"] if solved else None,
                "solve_s": solved["elapsed_s"] if solved else None,
                # The same without eval time: compile plus training steps only.
                "solve_train_s": solved["train_s"] if solved else None}


def fit(cfg: Config, trainer: Trainer,
        on_step: Callable[[int], None] | None = None,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
        checkpointing: Checkpointing | None = None) -> dict[str, Any]:
    """Train for cfg.steps, evaluating every cfg.eval_every steps; returns status, curve, timing.
    With `checkpointing` on, resume from the run's latest good checkpoint and save one every
    `checkpointing.every` steps (common.training.fit_group)."""
    return fit_lockstep([cfg], Alone(trainer), on_step,
                        on_eval and (lambda _, point: on_eval(point)), checkpointing)[0]


def fit_lockstep(cfgs: list[Config], group: Lockstep, on_step: Callable[[int], None] | None = None,
                 on_eval: Callable[[int, dict[str, Any]], None] | None = None,
                 checkpointing: Checkpointing | None = None) -> list[dict[str, Any]]:
    """`fit` for runs that differ only in seed and advance together (`group`, with
    `compile(batches)` too: jax_impl.adder.SeedGroup, or Alone); one outcome per run. A solved
    (with stop_when_solved) or diverged run is finished at once."""
    works = [Adder(cfg) for cfg in cfgs]
    return fit_group(works, group, lambda: group.compile([work.batch(1) for work in works]),
                     on_step, on_eval, checkpointing)
