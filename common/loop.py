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

from common.checkpoint import Checkpointing, Checkpoints
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
    backend: str  # "jax" or "torch": names its checkpoints (common/checkpoint.py)

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

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything training continues from (weights, optimiser and schedule state, carried
        hidden state, step and divergence tracking) as named host arrays, for a checkpoint."""

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from `training_state()`'s arrays; called after compile."""


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
        on_eval: Callable[[dict[str, Any]], None] | None = None,
        checkpointing: Checkpointing | None = None) -> dict[str, Any]:
    """Train for cfg.steps, evaluating every cfg.eval_every steps; returns status, curve, timing.
    With `checkpointing` on, resume from the run's latest good checkpoint and save one every
    `checkpointing.every` steps (see fit_lockstep)."""
    return fit_lockstep([cfg], Alone(trainer), on_step,
                        on_eval and (lambda _, point: on_eval(point)), checkpointing)[0]


def fit_lockstep(cfgs: list[Config], group: Lockstep,
                 on_step: Callable[[int], None] | None = None,
                 on_eval: Callable[[int, dict[str, Any]], None] | None = None,
                 checkpointing: Checkpointing | None = None) -> list[dict[str, Any]]:
    """`fit` for runs that differ only in seed and advance together; one record per run.

    A run that is solved (with stop_when_solved) or diverges is finished at once, with its
    weights as they are then; the others go on. Step times are those of the whole group.

    Checkpoints (a single run only; `checkpointing` on): after compiling, the run continues from
    its latest good checkpoint, if any (trainer state, curve and timers restored; batch k is a
    pure function of seed and k, so the rest of the run is the uninterrupted run's, bit for bit).
    Every `checkpointing.every` steps, after the step has finished (and after that step's eval),
    one is saved; a finished run deletes them. Timing after a resume: the timers go on from the
    checkpoint's (elapsed_s as if the run had not stopped); compile_s and first_step_s stay the
    first process's; the resumed process's compile and restore are `resume_s`, its first step is
    a warm-up again (synced, counted in train_s, left out of the step-time median), and
    `contention` covers the steps since the last resume only.
    """
    cfg = cfgs[0]
    runs = [_Run(c, view, eval_set(c)) for c, view in zip(cfgs, group.views)]
    first_batches = [train_batch(c, 1) for c in cfgs]
    checkpoints = None
    if checkpointing is not None and checkpointing.on:
        checkpointing.check_group(len(runs))
        checkpoints = Checkpoints(checkpointing, runs[0].trainer.backend, cfg.to_json())

    t0 = time.perf_counter()
    compile_s = group.compile(first_batches)
    timers: dict[str, Any] = {"compile_s": compile_s, "first_step_s": 0.0, "train_s": 0.0,
                              "per_step": [],  # seconds per step over each interval after a warm-up
                              "resume_s": 0.0, "checkpoint_s": 0.0, "resumed_from": []}
    start_step = 1
    if checkpoints is not None:
        snapshot = checkpoints.latest()
        if snapshot is not None:
            runs[0].trainer.restore(snapshot.arrays)
            run_meta, saved = snapshot.meta["run"], snapshot.meta["timers"]
            runs[0].curve, runs[0].eval_s = run_meta["curve"], run_meta["eval_s"]
            resume_s = time.perf_counter() - t0  # this process's compile and restore
            timers = {**saved, "resume_s": saved["resume_s"] + resume_s,
                      "resumed_from": [*saved["resumed_from"], snapshot.step]}
            t0 = time.perf_counter() - snapshot.meta["elapsed_s"]  # elapsed goes on from the checkpoint's
            start_step = snapshot.step + 1
    per_step: list[float] = timers["per_step"]
    compile_s, first_step_s, train_s = timers["compile_s"], timers["first_step_s"], timers["train_s"]
    watch = None

    mark = time.perf_counter()
    last_step = start_step - 1
    for step in range(start_step, cfg.steps + 1):
        group.step(first_batches if step == 1 else [train_batch(c, step) for c in cfgs])
        if on_step:
            on_step(step)
        if step == start_step:
            # One extra sync so warm-up cost (step 1, or the first step after a resume) is
            # reported apart from the steady state.
            runs[0].trainer.loss()
            warm_s = time.perf_counter() - mark
            train_s += warm_s
            if step == 1:
                first_step_s = warm_s
            mark, last_step = time.perf_counter(), step
            watch = CoreWatch()  # who else used our cores while the steps were timed
        evals = not (step % cfg.eval_every and step != cfg.steps)
        saves = checkpoints is not None and checkpoints.due(step) and step != cfg.steps
        if not (evals or saves):
            continue

        losses = [run.trainer.loss() for run in runs]  # the first waits for the device
        now = time.perf_counter()
        if step > last_step:
            per_step.append((now - mark) / (step - last_step))
            train_s += now - mark
        for k, (run, loss) in enumerate(zip(runs, losses)):
            if run.done or not evals:
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
        if saves and not runs[0].done:
            start = time.perf_counter()
            timers.update(first_step_s=first_step_s, train_s=train_s)
            checkpoints.save(step, runs[0].trainer.training_state(),
                             {"timers": timers, "elapsed_s": start - t0,
                              "run": {"curve": runs[0].curve, "eval_s": runs[0].eval_s}})
            timers["checkpoint_s"] += time.perf_counter() - start
        mark, last_step = time.perf_counter(), step
        if all(run.done for run in runs):
            break
    for run in runs:
        if not run.done:
            run.finish(t0, train_s)
    if checkpoints is not None:
        checkpoints.clear()  # finished: a rerun starts afresh

    step_s = statistics.median(per_step) if per_step else first_step_s
    contention = watch.others_share() if watch is not None else None
    return [_outcome(run, compile_s, first_step_s, step_s, len(runs), contention, timers) for run in runs]


def _outcome(run: _Run, compile_s: float | None, first_step_s: float, step_s: float,
             group_size: int, contention: float | None, timers: dict[str, Any]) -> dict[str, Any]:
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
            # Checkpoints (fit_lockstep): the steps this run was resumed from, the seconds the
            # resumed processes spent compiling and restoring, and the seconds spent saving.
            "resumed_from": timers["resumed_from"],
            "resume_s": timers["resume_s"],
            "checkpoint_s": timers["checkpoint_s"],
        },
    }
