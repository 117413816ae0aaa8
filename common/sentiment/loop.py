"""The sentiment task's training, for both backends: common.training's loop (timing, evals,
divergence, checkpoints; as the adder's) with this task's parts (`Sentiment`): batch k is
`dataset.train_batch(data, seed, k)`, the whole test split is scored every `eval_every` steps,
and the record gains the best test accuracy and the accuracy by text length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from common.checkpoint import Checkpointing
from common.controls import reorder_rows
from common.params import Params
from common.sentiment.config import TextConfig
from common.sentiment.dataset import TextBatch, TextData, eval_batches, padded_width, train_batch
from common import training
from common.training import Alone, fit_group


class Trainer(training.Trainer, Protocol):
    """What each backend's `sentiment.Trainer(cfg, embedding)` provides (jax_impl and torch_impl):
    the loop's methods (common.training.Trainer) and these."""

    def compile(self, train_widths: list[int], eval_widths: list[int]) -> float | None:
        """Compile the train step and the scorer for these batch widths; seconds, None if eager."""

    def step(self, batch: TextBatch) -> None:
        """One optimiser update; may return before the device has finished."""

    def score(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per text: prediction right (bool), and its loss."""

    def params(self) -> Params:
        """The parameters, neutral names and layouts (common/sentiment/params.py)."""

    def logits(self, batch: TextBatch) -> np.ndarray:
        """(batch,) logits with the current parameters."""

    def gradients(self, batch: TextBatch) -> tuple[float, Params]:
        """Loss and the trained parameters' gradients, updating nothing."""

    def env(self) -> dict[str, Any]:
        """Framework, device and threads, for the run record."""


def widths(cfg: TextConfig, data: TextData) -> tuple[list[int], list[int]]:
    """Batch widths the run can meet: any text's length may be the longest of its batch (train),
    and those the test split's fixed batches have (eval)."""
    cap = data.train.ids.shape[1]  # the longest training text: batches are never wider
    train = sorted({min(padded_width(int(n)), cap) for n in np.unique(data.train.lengths)})
    test = sorted({batch.ids.shape[1] for batch, _ in eval_batches(data, cfg.eval_batch)})
    return train, test


def training_batch(cfg: TextConfig, data: TextData, k: int) -> TextBatch:
    """Batch k of the run; a `reorder` control gets its rows in a fixed other order."""
    batch = train_batch(data, cfg.seed, k, cfg.batch_size)
    if cfg.control != "reorder":
        return batch
    rows = reorder_rows(cfg.seed, len(batch))
    return TextBatch(batch.ids[rows], batch.lengths[rows], batch.labels[rows])


def score_all(cfg: TextConfig, trainer: Trainer, data: TextData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per test text, longest first: right (bool), its loss, its length."""
    right, losses, lengths = [], [], []
    for batch, valid in eval_batches(data, cfg.eval_batch):
        r, loss = trainer.score(batch)
        right.append(np.asarray(r)[:valid])
        losses.append(np.asarray(loss)[:valid])
        lengths.append(batch.lengths[:valid])
    return np.concatenate(right), np.concatenate(losses), np.concatenate(lengths)


def by_length(right: np.ndarray, lengths: np.ndarray, groups: int = 4) -> list[dict[str, Any]]:
    """Accuracy on each quarter of the test texts by length (shortest first): does the model
    lose what it read long before the end of a long text?"""
    order = np.argsort(lengths, kind="stable")
    return [{"tokens": [int(lengths[part].min()), int(lengths[part].max())], "n": len(part),
             "test_acc": float(right[part].mean())} for part in np.array_split(order, groups) if len(part)]


class Sentiment:
    """The sentiment task's part of the loop for one run (common.training.Workload)."""

    def __init__(self, cfg: TextConfig, data: TextData):
        self.cfg, self.data = cfg, data
        self.notes: dict[str, Any] = {}

    def batch(self, k: int) -> TextBatch:
        return training_batch(self.cfg, self.data, k)

    def evaluate(self, trainer: Trainer) -> dict[str, Any]:
        right, losses, lengths = score_all(self.cfg, trainer, self.data)
        self.notes["lengths"] = by_length(right, lengths)
        return {"test_acc": float(right.mean()), "test_loss": float(losses.mean())}

    def stops(self, point: dict[str, Any]) -> bool:
        return False

    def finish(self, trainer: Trainer, status: str, curve: list[dict[str, Any]]) -> dict[str, Any]:
        best = max(curve, key=lambda p: p["test_acc"], default=None)
        near = next((p for p in curve if best and p["test_acc"] >= best["test_acc"] - 0.01), None)
        return {"best": {"test_acc": best["test_acc"], "step": best["step"],
                         "step_within_1_point": near["step"]} if best else None,
                # Accuracy per quarter of the test texts by length, at the last eval.
                "lengths": self.notes.get("lengths", [])}

    def timing(self, curve: list[dict[str, Any]]) -> dict[str, Any]:
        return {}


def fit(cfg: TextConfig, trainer: Trainer, data: TextData,
        on_step: Callable[[int], None] | None = None,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
        checkpointing: Checkpointing | None = None) -> dict[str, Any]:
    """Train for cfg.steps (common.training.fit_group); status, curve (step, loss,
    train_loss_mean, test_acc, test_loss, elapsed_s, train_s), best, lengths and timing, with
    the adder's timing fields. With `checkpointing` on, resume from the run's latest good
    checkpoint and save one every `checkpointing.every` steps."""
    return fit_group([Sentiment(cfg, data)], Alone(trainer), lambda: trainer.compile(*widths(cfg, data)),
                     on_step, on_eval and (lambda _, point: on_eval(point)), checkpointing)[0]
