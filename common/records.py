"""The run record: what one training run leaves behind, built here only, in one schema.

A run that trained (status ok or diverged) and one that produced nothing but an error (it
raised, its worker died, its config was refused) carry the same fields, so no reader needs to
ask which fields a record has. `task` says what was learnt; records written before it existed
are adder runs, and `read` says so.
"""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

from common import cpu
from common.config import RunConfig
from common.tasks import DEFAULT, TASKS


def _record(backend: str, cfg: RunConfig, *, started_at: str | None, env: dict[str, Any] | None,
            status: str, error: str | None, diverged_step: int | None, curve: list[dict[str, Any]],
            timing: dict[str, Any] | None, lengths: list[dict[str, Any]] | None = None,
            probe: dict[str, Any] | None = None, **extras: Any) -> dict[str, Any]:
    """Every record of a task, whatever its status: one set of fields, and the task's own
    (`Task.extra_fields`: sentiment's `best`, best test accuracy, its step and the first step
    within 1 point of it; None in an error record). `lengths` and `probe`: the adder's analyses."""
    task = TASKS[cfg.task]
    unknown = sorted(set(extras) - set(task.extra_fields))
    if unknown:
        raise TypeError(f"{task.name} records have no field {unknown[0]!r}")
    last = curve[-1] if curve else None
    return {"task": task.name, "backend": backend, "config": cfg.to_dict(), "started_at": started_at, "env": env,
            "status": status, "diverged_step": diverged_step, "curve": curve, "lengths": lengths or [],
            "probe": probe, "timing": timing, "error": error,
            "final": {k: last[k] if last else None for k in task.final},
            **{name: extras.get(name) for name in task.extra_fields}}


def run_record(backend: str, cfg: RunConfig, outcome: dict[str, Any], started_at: str,
               env: dict[str, Any]) -> dict[str, Any]:
    """The record of a run that trained: `outcome` is what its task's fit returned (status ok or
    diverged, curve, timing; the adder's lengths and probe, sentiment's best). `cfg.task` says
    which task (common/tasks.py)."""
    return _record(backend, cfg, started_at=started_at, env=env, error=None, **outcome)


def error_record(backend: str, cfg: RunConfig, message: str, started_at: str | None = None,
                 env: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a run that produced nothing but the error `message`; `started_at` and `env`
    where the run got as far as its backend."""
    return _record(backend, cfg, started_at=started_at, env=env, status="error", error=message,
                   diverged_step=None, curve=[], timing=None)


def read(record: dict[str, Any]) -> dict[str, Any]:
    """A record as read back from a file: one written before records had a task is an adder run."""
    return {"task": DEFAULT, **record}


def timestamp() -> str:
    """When a run started, for `started_at` (UTC, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def environment(framework: dict[str, Any], cores: list[int], thread_policy: str) -> dict[str, Any]:
    """A record's `env`: the backend's own description (framework, device, threads) and where it ran,
    the host CPU and any instruction-set caps included (float32 outcomes ride on them: common/cpu.py)."""
    return {**framework, "cores": cores, "thread_policy": thread_policy, "python": platform.python_version(),
            "host": platform.node(), **cpu.describe()}


def process_age() -> float:
    """Seconds since this process started: interpreter start-up and imports included (kernel
    clock ticks, 10 ms resolution); a record's `startup_s` when its process ran only it."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
