"""The training loop both workloads run: timing, the eval schedule, divergence, the stop rule,
lockstep (several seeds in one program) and mid-run checkpoints, written once. What differs
between the adder (common/loop.py) and the sentiment task (common/sentiment/loop.py) comes in
as a `Workload` per run: batch k, what an eval point holds, when a run may stop, and what the
record gains once it has.

Timing is honest for asynchronous frameworks: the host only waits for the device at eval points
and checkpoints (and once after the first step), so a JAX step is never timed before it has
finished. Compiling (JAX, ahead of time) is reported as `compile_s`, apart from step time.

Every eval point holds `loss`, the loss of that step's one batch, and `train_loss_mean`, the mean
over the steps since the previous eval point: the trainer sums the losses on the device (no host
wait per step) and `Trainer.loss_mean` reads and restarts the sum.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from common.checkpoint import Checkpointing, Checkpoints
from common.config import ConfigError
from common.threads import CoreWatch


class Trainer(Protocol):
    """What the loop itself asks of a trainer; each workload's contract adds its own methods
    (common.loop.Trainer, common.sentiment.loop.Trainer)."""

    # After compile: 'memory' when this process had compiled the config's programs already (for
    # another seed), 'hit' when every program came from a persistent compilation cache,
    # 'compiled' otherwise; None where nothing is compiled (eager PyTorch).
    compile_cache: str | None
    backend: str  # "jax" or "torch": names its checkpoints (common/checkpoint.py)

    def loss(self) -> float:
        """Wait for the device and return the latest training loss."""

    def loss_mean(self) -> float:
        """Wait for the device and return the mean training loss over the steps since the previous
        call (or the start); the next interval starts here. Summed on the device, step by step."""

    def nonfinite_step(self) -> int | None:
        """The first step whose loss was NaN or inf, if any (tracked on the device)."""

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything training continues from (weights, optimiser and schedule state, carried
        hidden state, step, divergence tracking and the interval's loss sum) as named host
        arrays, for a checkpoint."""

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from `training_state()`'s arrays; called after compile."""


class Workload(Protocol):
    """One run's task-specific parts."""

    cfg: Any  # the run's config: steps, eval_every, to_json()
    # What the workload notes at its evals for its record (JSON), saved with the curve.
    notes: dict[str, Any]

    def batch(self, k: int) -> Any:
        """Training batch k (a pure function of the config and k: a resumed run sees the same)."""

    def evaluate(self, trainer: Trainer) -> dict[str, Any]:
        """The task's fields of an eval point, e.g. exact_acc and digit_acc."""

    def stops(self, point: dict[str, Any]) -> bool:
        """Whether the run ends at this eval point (the adder's stop_when_solved)."""

    def finish(self, trainer: Trainer, status: str, curve: list[dict[str, Any]]) -> dict[str, Any]:
        """The task's record fields, once the run has stopped (weights as they are then)."""

    def timing(self, curve: list[dict[str, Any]]) -> dict[str, Any]:
        """The task's own timing fields (the adder's time to solve)."""


class Lockstep(Protocol):
    """Several runs (seeds of one config) trained by one program: one step advances them all.

    `views[k]` answers for run k alone (loss, divergence, scores, hidden states). A group that
    can take several steps in one call (cfg.steps_per_call) has `step_many(batches)`, batches[i]
    being step i's batches (one per run); the loop finds it by its presence.
    """

    views: list[Any]

    def step(self, batches: list[Any]) -> None: ...


class Alone:
    """One trainer as a group of one, so a single run and a lockstep group share one loop."""

    def __init__(self, trainer):
        self.views = [trainer]
        if hasattr(trainer, "step_many"):  # a capability of the trainer is the group's
            self.step_many = lambda batches: trainer.step_many([b[0] for b in batches])

    def compile(self, batches: list[Any]) -> float | None:
        return self.views[0].compile(batches[0])

    def step(self, batches: list[Any]) -> None:
        self.views[0].step(batches[0])


@dataclasses.dataclass
class _Run:
    """What the loop keeps for one run of a group."""

    work: Workload
    trainer: Trainer
    curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    status: str = "ok"
    diverged_step: int | None = None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)  # the workload's, at the end
    train_s: float = 0.0
    eval_s: float = 0.0
    total_s: float = 0.0
    done: bool = False

    def finish(self, t0: float, train_s: float) -> None:
        self.fields = self.work.finish(self.trainer, self.status, self.curve)
        self.train_s = train_s  # the group's training time until this run stopped
        self.total_s = time.perf_counter() - t0
        self.done = True


def fit_group(works: list[Workload], group: Lockstep, compile: Callable[[], float | None],
              on_step: Callable[[int], None] | None = None,
              on_eval: Callable[[int, dict[str, Any]], None] | None = None,
              checkpointing: Checkpointing | None = None) -> list[dict[str, Any]]:
    """Train the runs of `works` (seeds of one config; one, unless `group` is a lockstep group)
    for cfg.steps, evaluating every cfg.eval_every steps and at the last; `compile` compiles the
    group's programs. One outcome per run: status, diverged_step, curve, the workload's fields,
    timing (common.records.run_record makes it a record).

    A run that stops (the workload says so) or diverges is finished at once, with its weights as
    they are then; the others go on. Step times are those of the whole group.

    Checkpoints (a single run only; `checkpointing` on): after compiling, the run continues from
    its latest good checkpoint, if any (trainer state, curve, the workload's notes and timers
    restored; batch k is a pure function of the config and k, so the rest of the run is the
    uninterrupted run's, bit for bit). Every `checkpointing.every` steps, after the step has
    finished (and after that step's eval), one is saved; a finished run deletes them. Timing
    after a resume: the timers go on from the checkpoint's (elapsed_s as if the run had not
    stopped); compile_s and first_step_s stay the first process's; the resumed process's compile
    and restore are `resume_s`, its first step is a warm-up again (synced, counted in train_s,
    left out of the step-time median), and `contention` covers the steps since the last resume only.
    """
    cfg = works[0].cfg
    runs = [_Run(work, view) for work, view in zip(works, group.views)]
    checkpoints = None
    if checkpointing is not None and checkpointing.on:
        checkpointing.check_group(len(runs))
        checkpoints = Checkpoints(checkpointing, runs[0].trainer.backend, cfg.to_json())

    t0 = time.perf_counter()
    compile_s = compile()
    timers: dict[str, Any] = {"compile_s": compile_s, "first_step_s": 0.0, "train_s": 0.0,
                              "per_step": [],  # seconds per step over each interval after a warm-up
                              "resume_s": 0.0, "checkpoint_s": 0.0, "resumed_from": []}
    start_step = 1
    if checkpoints is not None:
        snapshot = checkpoints.latest()
        if snapshot is not None:
            run = runs[0]
            run.trainer.restore(snapshot.arrays)
            saved_run, saved = snapshot.meta["run"], snapshot.meta["timers"]
            run.curve, run.eval_s, run.work.notes = saved_run["curve"], saved_run["eval_s"], saved_run["notes"]
            resume_s = time.perf_counter() - t0  # this process's compile and restore
            timers = {**saved, "resume_s": saved["resume_s"] + resume_s,
                      "resumed_from": [*saved["resumed_from"], snapshot.step]}
            t0 = time.perf_counter() - snapshot.meta["elapsed_s"]  # elapsed goes on from the checkpoint's
            start_step = snapshot.step + 1
    per_step: list[float] = timers["per_step"]
    compile_s, first_step_s, train_s = timers["compile_s"], timers["first_step_s"], timers["train_s"]
    watch = None

    # Steps per call: cfg.steps_per_call where the group can (step_many), else one; evals and the
    # last step fall between calls (the config's rule), and so must checkpoints (checked here).
    per_call = cfg.steps_per_call if hasattr(group, "step_many") else 1
    if checkpoints is not None and checkpointing.every % per_call:
        raise ConfigError(f"checkpoint every {checkpointing.every} steps: must be a multiple of "
                          f"steps_per_call={per_call}")
    mark = time.perf_counter()
    last_step = start_step - 1
    for step in range(start_step + per_call - 1, cfg.steps + 1, per_call):
        if per_call == 1:
            group.step([run.work.batch(step) for run in runs])
        else:
            group.step_many([[run.work.batch(k) for run in runs] for k in range(step - per_call + 1, step + 1)])
        if on_step:
            on_step(step)
        if step == start_step + per_call - 1:
            # One extra sync so warm-up cost (the first call, or the first after a resume) is
            # reported apart from the steady state.
            runs[0].trainer.loss()
            warm_s = time.perf_counter() - mark
            train_s += warm_s
            if step == per_call:
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
            loss_mean = run.trainer.loss_mean()
            start = time.perf_counter()
            fields = run.work.evaluate(run.trainer)
            run.eval_s += time.perf_counter() - start
            run.curve.append({"step": step, "loss": loss, "train_loss_mean": loss_mean, **fields,
                              "elapsed_s": time.perf_counter() - t0, "train_s": train_s + (compile_s or 0.0)})
            if on_eval:
                on_eval(k, run.curve[-1])
            if run.work.stops(run.curve[-1]):
                run.finish(t0, train_s)
        if saves and not runs[0].done:
            run, start = runs[0], time.perf_counter()
            timers.update(first_step_s=first_step_s, train_s=train_s)
            checkpoints.save(step, run.trainer.training_state(),
                             {"timers": timers, "elapsed_s": start - t0,
                              "run": {"curve": run.curve, "eval_s": run.eval_s, "notes": run.work.notes}})
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
    """What training produced for one run: the part of its record that the loop knows."""
    return {
        "status": run.status,
        "diverged_step": run.diverged_step,
        "curve": run.curve,
        **run.fields,
        "timing": {
            "compile_s": compile_s,
            "compile_cache": run.trainer.compile_cache,  # a cache hit is a load, not a compile
            "first_step_s": first_step_s,
            "step_s_median": step_s,
            "steps_per_s": 1 / step_s if step_s > 0 else None,
            "train_s": run.train_s,
            "eval_s": run.eval_s,
            "total_s": run.total_s,
            **run.work.timing(run.curve),
            "runs_in_program": group_size,  # > 1: this many seeds shared each step (jax vmap)
            # Throughput comparable across backends: training steps of single runs per second.
            "run_steps_per_s": group_size / step_s if step_s > 0 else None,
            # Share of this run's cores that other processes used while it was timed
            # (common.threads.CoreWatch); above CONTENDED its speed is not its own.
            "contention": contention,
            # Checkpoints: the steps this run was resumed from, the seconds the resumed
            # processes spent compiling and restoring, and the seconds spent saving.
            "resumed_from": timers["resumed_from"],
            "resume_s": timers["resume_s"],
            "checkpoint_s": timers["checkpoint_s"],
        },
    }
