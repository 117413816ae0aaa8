"""Execute runs, each in its own pinned worker process, appending records as they finish.

Workers are the backends' own command lines (`python -m jax_impl --config … --out …`), so a
framework never shares a process with the other and a crash costs one run. Only this process
writes results.jsonl, one fsync'd line per finished run; a rerun skips every key already there,
so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.threads import available_cores, host_threads
from compare.sweeps import Run

RESULTS = "results.jsonl"
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None)  # loaded here, not in the forked child


class ResultsError(Exception):
    """results.jsonl holds something that is not ours."""


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """Records by key. A last line cut short by a kill is dropped from the file, not kept."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    if good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    records = {}
    for number, line in enumerate(data[:good_end].splitlines(), 1):
        try:
            record = json.loads(line)
            records[record["key"]] = record
        except (ValueError, KeyError, TypeError):
            raise ResultsError(f"{path}:{number}: not a run record; move the file away to start over") from None
    return records


def append_result(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _worker_setup(cores: list[int]):
    def setup() -> None:
        os.sched_setaffinity(0, cores)
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the harness, not run on orphaned
    return setup


class _Worker:
    """One backend process for a unit of runs: one run, or (JAX with vmap) consecutive seeds of
    one config trained together by `python -m jax_impl --vmap_seeds K`."""

    def __init__(self, runs: list[Run], scratch: Path, cores: list[int]):
        self.runs, self.cores = runs, cores
        first = runs[0]
        self.config_path = scratch / f"{first.key}.config.json"
        self.record_path = scratch / f"{first.key}.json"
        self.log_path = scratch.parent / "logs" / f"{first.key}.log"
        self.config_path.write_text(first.config.to_json())
        self.record_path.unlink(missing_ok=True)
        self.log = open(self.log_path, "w")
        vmap = ["--vmap_seeds", str(len(runs))] if len(runs) > 1 else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"{first.backend}_impl", "--config", str(self.config_path),
             "--out", str(self.record_path), *vmap],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_worker_setup(cores))

    @property
    def what(self) -> str:
        first, seeds = self.runs[0], [r.config.seed for r in self.runs]
        return f"{first.backend} {first.label} seed{'s' if len(seeds) > 1 else ''} " + ",".join(map(str, seeds))

    def records(self) -> list[dict[str, Any]]:
        """One record per run, in the order of self.runs."""
        self.log.close()
        if self.record_path.exists():
            written = json.loads(self.record_path.read_text())
            records = written if isinstance(written, list) else [written]
        else:  # killed or crashed before it could write anything
            tail = self.log_path.read_text().strip().splitlines()[-1:] or ["no output"]
            records = [{"backend": run.backend, "config": run.config.to_dict(),
                        "status": "error", "error": f"worker exit {self.proc.returncode}: {tail[0]}",
                        "diverged_step": None, "curve": [], "timing": None, "env": None,
                        "final": {"step": None, "loss": None, "exact_acc": None, "digit_acc": None}}
                       for run in self.runs]
        self.config_path.unlink(missing_ok=True)
        self.record_path.unlink(missing_ok=True)
        return records


def work_units(todo: list[Run], vmap_seeds: bool) -> list[list[Run]]:
    """Runs grouped into worker processes, in order. With vmap_seeds, the JAX runs of one config
    whose seeds follow each other share a process (and one vmapped program)."""
    units: list[list[Run]] = []
    open_units: dict[tuple, list[Run]] = {}
    for run in todo:
        if not vmap_seeds or run.backend != "jax":
            units.append([run])
            continue
        family = (run.sweep, run.label, run.config.replace(seed=0))
        unit = open_units.get(family)
        if unit and unit[-1].config.seed + 1 == run.config.seed:
            unit.append(run)
        else:
            open_units[family] = [run]
            units.append(open_units[family])
    return units


def execute(runs: list[Run], out_dir: Path, jobs: int, console: Console,
            vmap_seeds: bool = False) -> dict[str, dict[str, Any]]:
    """Run whatever of `runs` is not in out_dir/results.jsonl yet; returns every record by key."""
    results_path = out_dir / RESULTS
    done = load_results(results_path)
    todo = [r for r in runs if r.key not in done]
    units = work_units(todo, vmap_seeds)
    scratch = out_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(exist_ok=True)
    cores = available_cores()

    def slot_cores(slot: int, threads: int) -> list[int]:
        return sorted({cores[(slot * threads + i) % len(cores)] for i in range(threads)})

    if len(todo) < len(runs):
        console.print(f"resuming: {len(runs) - len(todo)} of {len(runs)} runs already in {results_path}")
    running: dict[int, _Worker] = {}
    columns = (TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[now]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("runs", total=len(runs), completed=len(runs) - len(todo), now="")
        while units or running:
            for slot in range(jobs):
                if slot not in running and units:
                    unit = units.pop(0)
                    running[slot] = _Worker(unit, scratch, slot_cores(slot, host_threads(unit[0].config)))
            progress.update(task, now=" | ".join(w.what for w in running.values()))
            time.sleep(0.05)
            for slot, worker in list(running.items()):
                if worker.proc.poll() is None:
                    continue
                del running[slot]
                for run, written in zip(worker.runs, worker.records()):
                    record = {**written, "key": run.key, "sweep": run.sweep, "label": run.label,
                              "point": dict(run.point), "role": run.role, "jobs": jobs}
                    append_result(results_path, record)
                    done[run.key] = record
                    if record["status"] == "error":
                        progress.console.print(f"[red]error[/] {run.backend} {run.label} seed "
                                               f"{run.config.seed}: {escape(record['error'])}")
                    progress.advance(task)
    shutil.rmtree(scratch, ignore_errors=True)
    return done
