"""The training loop, written once: both backends plug in a `Trainer` with the same methods.

Timing is honest for asynchronous frameworks: the host only waits for the device at eval points
(and once after step 1), so a JAX step is never timed before it has finished. JAX compiles
ahead of time inside `Trainer.compile`, reported as `compile_s` apart from step time.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from common.config import Config
from common.data import Batch, eval_chunk_size, eval_chunks, eval_set, train_batch
from common.params import Params
from common.probe import probe_states
from common.threads import CoreWatch

_PROBE_SEQUENCES = 1000  # held-out sequences whose hidden states the probe sees


class Trainer(Protocol):
    """What each backend's `train.Trainer` provides (same names in jax_impl and torch_impl)."""

    # After compile: 'memory' when this process had compiled the config's programs already (for
    # another seed), 'hit' when every program came from a persistent compilation cache,
    # 'compiled' otherwise; None where nothing is compiled (eager PyTorch).
    compile_cache: str | None

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


class Lockstep(Protocol):
    """Several runs (seeds of one config) trained by one program: one step advances them all.

    `views[k]` answers for run k alone (loss, divergence, scores, hidden states).
    """

    views: list[Trainer]

    def compile(self, batches: list[Batch]) -> float | None: ...

    def step(self, batches: list[Batch]) -> None: ...


class Alone:
    """One trainer as a group of one, so a single run and a lockstep group share one loop."""

    def __init__(self, trainer: Trainer):
        self.views = [trainer]

    def compile(self, batches: list[Batch]) -> float | None:
        return self.views[0].compile(batches[0])

    def step(self, batches: list[Batch]) -> None:
        self.views[0].step(batches[0])


@dataclasses.dataclass
class _Run:
    """What the loop keeps for one run of a group."""

    cfg: Config
    trainer: Trainer
    held_out: Batch
    curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    status: str = "ok"
    diverged_step: int | None = None
    lengths: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    probe: dict[str, Any] | None = None
    train_s: float = 0.0
    eval_s: float = 0.0
    total_s: float = 0.0
    done: bool = False

    def finish(self, t0: float, train_s: float) -> None:
        """Scores that need the weights as they are now, once the run stops."""
        if self.status == "ok":
            self.lengths = score_lengths(self.cfg, self.trainer)
            if self.cfg.probe and self.cfg.cell != "none":
                self.probe = probe_carry(self.cfg, self.trainer, self.held_out)
        self.train_s = train_s  # the group's training time until this run stopped
        self.total_s = time.perf_counter() - t0
        self.done = True


def fit(cfg: Config, trainer: Trainer,
        on_step: Callable[[int], None] | None = None,
        on_eval: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train for cfg.steps, evaluating every cfg.eval_every steps; returns status, curve, timing."""
    return fit_lockstep([cfg], Alone(trainer), on_step,
                        on_eval and (lambda _, point: on_eval(point)))[0]


def fit_lockstep(cfgs: list[Config], group: Lockstep,
                 on_step: Callable[[int], None] | None = None,
                 on_eval: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """`fit` for runs that differ only in seed and advance together; one record per run.

    A run that is solved (with stop_when_solved) or diverges is finished at once, with its
    weights as they are then; the others go on. Step times are those of the whole group.
    """
    cfg = cfgs[0]
    runs = [_Run(c, view, eval_set(c)) for c, view in zip(cfgs, group.views)]
    first_batches = [train_batch(c, 1) for c in cfgs]

    t0 = time.perf_counter()
    compile_s = group.compile(first_batches)
    per_step: list[float] = []  # seconds per step over each eval interval after step 1
    train_s = first_step_s = 0.0

    mark = time.perf_counter()
    last_step = 0
    for step in range(1, cfg.steps + 1):
        group.step(first_batches if step == 1 else [train_batch(c, step) for c in cfgs])
        if on_step:
            on_step(step)
        if step == 1:
            runs[0].trainer.loss()  # one extra sync so warm-up cost is reported apart from steady state
            first_step_s = time.perf_counter() - mark
            train_s += first_step_s
            mark, last_step = time.perf_counter(), 1
            watch = CoreWatch()  # who else used our cores while the steps were timed
        if step % cfg.eval_every and step != cfg.steps:
            continue

        losses = [run.trainer.loss() for run in runs]  # the first waits for the device
        now = time.perf_counter()
        if step > last_step:
            per_step.append((now - mark) / (step - last_step))
            train_s += now - mark
        for k, (run, loss) in enumerate(zip(runs, losses)):
            if run.done:
                continue
            run.diverged_step = run.trainer.nonfinite_step()
            if run.diverged_step is not None:
                run.status = "diverged"
                run.finish(t0, train_s)
                continue
            start = time.perf_counter()
            exact_acc, digit_acc = evaluate(run.cfg, run.trainer, run.held_out)
            run.eval_s += time.perf_counter() - start
            run.curve.append({"step": step, "loss": loss, "exact_acc": exact_acc,
                              "digit_acc": digit_acc, "elapsed_s": time.perf_counter() - t0,
                              "train_s": train_s + (compile_s or 0.0)})
            if on_eval:
                on_eval(k, run.curve[-1])
            if run.cfg.stop_when_solved and exact_acc == 1.0:
                run.finish(t0, train_s)
        mark, last_step = time.perf_counter(), step
        if all(run.done for run in runs):
            break
    for run in runs:
        if not run.done:
            run.finish(t0, train_s)

    step_s = statistics.median(per_step) if per_step else first_step_s
    contention = watch.others_share()
    return [_outcome(run, compile_s, first_step_s, step_s, len(runs), contention) for run in runs]


def _outcome(run: _Run, compile_s: float | None, first_step_s: float, step_s: float,
             group_size: int, contention: float | None) -> dict[str, Any]:
    """What training produced for one run: the part of its record (common.records.run_record)
    that the loop knows."""
    solved = next((p for p in run.curve if p["exact_acc"] == 1.0), None)
    return {
        "status": run.status,
        "diverged_step": run.diverged_step,
        "curve": run.curve,
        "lengths": run.lengths,  # accuracy on other operand lengths (cfg.test_lengths)
        "probe": run.probe,      # carry probe accuracy per layer (cfg.probe)
        "timing": {
            "compile_s": compile_s,
            "compile_cache": run.trainer.compile_cache,  # a cache hit is a load, not a compile
            "first_step_s": first_step_s,
            "step_s_median": step_s,
            "steps_per_s": 1 / step_s if step_s > 0 else None,
            "train_s": run.train_s,
            "eval_s": run.eval_s,
            "total_s": run.total_s,
            "solve_step": solved["step"] if solved else None,
            "solve_s": solved["elapsed_s"] if solved else None,
            # The same without eval time: compile plus training steps only.
            "solve_train_s": solved["train_s"] if solved else None,
            "runs_in_program": group_size,  # > 1: this many seeds shared each step (jax vmap)
            # Throughput comparable across backends: training steps of single runs per second.
            "run_steps_per_s": group_size / step_s if step_s > 0 else None,
            # Share of this run's cores that other processes used while it was timed
            # (common.threads.CoreWatch); above CONTENDED its speed is not its own.
            "contention": contention,
        },
    }
