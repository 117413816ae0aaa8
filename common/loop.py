"""The training loop, written once: both backends plug in a `Trainer` with the same methods.

Timing is honest for asynchronous frameworks: the host only waits for the device at eval points
(and once after step 1), so a JAX step is never timed before it has finished. JAX compiles
ahead of time inside `Trainer.compile`, reported as `compile_s` apart from step time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from common.config import Config
from common.data import Batch, eval_chunk_size, eval_chunks, eval_set, train_batch
from common.probe import probe_states

_PROBE_SEQUENCES = 1000  # held-out sequences whose hidden states the probe sees


class Trainer(Protocol):
    """What each backend's `train.Trainer` provides (same names in jax_impl and torch_impl)."""

    def compile(self, batch: Batch) -> float | None:
        """Compile the train and eval steps for these shapes; seconds taken, None if eager."""

    def step(self, batch: Batch) -> None:
        """One optimiser update; may return before the device has finished."""

    def loss(self) -> float:
        """Wait for the device and return the latest training loss."""

    def nonfinite_step(self) -> int | None:
        """The first step whose loss was NaN or inf, if any (tracked on the device)."""

    def score(self, chunk: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Per sequence of `chunk`: whole sum right (bool), number of digits right."""

    def hidden_states(self, batch: Batch) -> np.ndarray:
        """(layers, sequences, positions, hidden): every recurrent layer's outputs."""


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


def fit(cfg: Config, trainer: Trainer,
        on_step: Callable[[int], None] | None = None,
        on_eval: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train for cfg.steps, evaluating every cfg.eval_every steps; returns status, curve, timing."""
    held_out = eval_set(cfg)
    first_batch = train_batch(cfg, 1)

    t0 = time.perf_counter()
    compile_s = trainer.compile(first_batch)
    curve: list[dict[str, Any]] = []
    per_step: list[float] = []  # seconds per step over each eval interval after step 1
    train_s = eval_s = first_step_s = 0.0
    status, diverged_step = "ok", None

    mark = time.perf_counter()
    last_step = 0
    for step in range(1, cfg.steps + 1):
        trainer.step(first_batch if step == 1 else train_batch(cfg, step))
        if on_step:
            on_step(step)
        if step == 1:
            trainer.loss()  # one extra sync so warm-up cost is reported apart from steady state
            first_step_s = time.perf_counter() - mark
            train_s += first_step_s
            mark, last_step = time.perf_counter(), 1
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
        exact_acc, digit_acc = evaluate(cfg, trainer, held_out)
        mark, last_step = time.perf_counter(), step
        eval_s += mark - now
        curve.append({"step": step, "loss": loss, "exact_acc": exact_acc,
                      "digit_acc": digit_acc, "elapsed_s": mark - t0,
                      "train_s": train_s + (compile_s or 0.0)})
        if on_eval:
            on_eval(curve[-1])
        if cfg.stop_when_solved and exact_acc == 1.0:
            break

    trained = status == "ok"
    lengths = score_lengths(cfg, trainer) if trained else []
    probe = probe_carry(cfg, trainer, held_out) if trained and cfg.probe and cfg.cell != "none" else None
    solved = next((p for p in curve if p["exact_acc"] == 1.0), None)
    step_s = statistics.median(per_step) if per_step else first_step_s
    return {
        "status": status,
        "diverged_step": diverged_step,
        "curve": curve,
        "lengths": lengths,  # accuracy on other operand lengths (cfg.test_lengths)
        "probe": probe,      # carry probe accuracy per layer (cfg.probe)
        "timing": {
            "compile_s": compile_s,
            "first_step_s": first_step_s,
            "step_s_median": step_s,
            "steps_per_s": 1 / step_s if step_s > 0 else None,
            "train_s": train_s,
            "eval_s": eval_s,
            "total_s": time.perf_counter() - t0,
            "solve_step": solved["step"] if solved else None,
            "solve_s": solved["elapsed_s"] if solved else None,
            # The same without eval time: compile plus training steps only.
            "solve_train_s": solved["train_s"] if solved else None,
        },
    }
