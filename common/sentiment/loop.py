"""The sentiment training loop, written once for both backends (as common/loop.py for the adder):
batch k is `dataset.train_batch(data, seed, k)`, the whole test split is scored every
`eval_every` steps, and timing follows the adder's rules (the host waits for the device only at
evals and once after step 1; compiling is timed apart from the steps).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from common.sentiment.config import TextConfig
from common.controls import reorder_rows
from common.params import Params
from common.sentiment.dataset import TextBatch, TextData, eval_batches, padded_width, train_batch
from common.threads import CoreWatch


class Trainer(Protocol):
    """What each backend's `sentiment.Trainer(cfg, embedding)` provides (jax_impl and torch_impl)."""

    # After compile: as common.loop.Trainer ('memory', 'hit', 'compiled'; None when eager).
    compile_cache: str | None

    def compile(self, train_widths: list[int], eval_widths: list[int]) -> float | None:
        """Compile the train step and the scorer for these batch widths; seconds, None if eager."""

    def step(self, batch: TextBatch) -> None:
        """One optimiser update; may return before the device has finished."""

    def loss(self) -> float:
        """Wait for the device and return the latest training loss."""

    def nonfinite_step(self) -> int | None:
        """The first step whose loss was NaN or inf, if any."""

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


def evaluate(cfg: TextConfig, trainer: Trainer, data: TextData) -> tuple[float, float]:
    """(accuracy, mean loss) over the whole test split."""
    right, losses, _ = score_all(cfg, trainer, data)
    return float(right.mean()), float(losses.mean())


def fit(cfg: TextConfig, trainer: Trainer, data: TextData,
        on_step: Callable[[int], None] | None = None,
        on_eval: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train for cfg.steps; status, curve (step, loss, test_acc, test_loss, elapsed_s, train_s)
    and timing, with the adder's timing fields."""
    t0 = time.perf_counter()
    compile_s = trainer.compile(*widths(cfg, data))
    curve: list[dict[str, Any]] = []
    per_step: list[float] = []
    train_s = first_step_s = eval_s = 0.0
    status, diverged_step = "ok", None
    mark, last_step = time.perf_counter(), 0
    for step in range(1, cfg.steps + 1):
        trainer.step(training_batch(cfg, data, step))
        if on_step:
            on_step(step)
        if step == 1:
            trainer.loss()  # warm-up reported apart from the steady state
            first_step_s = train_s = time.perf_counter() - mark
            mark, last_step = time.perf_counter(), 1
            watch = CoreWatch()
        if step % cfg.eval_every and step != cfg.steps:
            continue
        loss = trainer.loss()
        now = time.perf_counter()
        if step > last_step:
            per_step.append((now - mark) / (step - last_step))
            train_s += now - mark
        diverged_step = trainer.nonfinite_step()
        if diverged_step is not None:
            status = "diverged"
            break
        start = time.perf_counter()
        right, losses, lengths = score_all(cfg, trainer, data)
        test_acc, test_loss = float(right.mean()), float(losses.mean())
        eval_s += time.perf_counter() - start
        curve.append({"step": step, "loss": loss, "test_acc": test_acc, "test_loss": test_loss,
                      "elapsed_s": time.perf_counter() - t0, "train_s": train_s + (compile_s or 0.0)})
        if on_eval:
            on_eval(curve[-1])
        mark, last_step = time.perf_counter(), step
    step_s = statistics.median(per_step) if per_step else first_step_s
    best = max(curve, key=lambda p: p["test_acc"], default=None)
    near = next((p for p in curve if best and p["test_acc"] >= best["test_acc"] - 0.01), None)
    return {
        "status": status,
        "diverged_step": diverged_step,
        "curve": curve,
        "best": {"test_acc": best["test_acc"], "step": best["step"],
                 "step_within_1_point": near["step"]} if best else None,
        # Accuracy per quarter of the test texts by length, at the last eval.
        "lengths": by_length(right, lengths) if curve else [],
        "timing": {
            "compile_s": compile_s,
            "compile_cache": trainer.compile_cache,
            "first_step_s": first_step_s,
            "step_s_median": step_s,
            "steps_per_s": 1 / step_s if step_s > 0 else None,
            "train_s": train_s,
            "eval_s": eval_s,
            "total_s": time.perf_counter() - t0,
            "runs_in_program": 1,
            "run_steps_per_s": 1 / step_s if step_s > 0 else None,
            "contention": watch.others_share(),
        },
    }
