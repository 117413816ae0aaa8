"""Execute runs, each in its own pinned worker process, appending records as they finish.

Workers are the backends' own command lines (`python -m jax_impl --config … --out …`), so a
framework never shares a process with the other and a crash costs one run. Only this process
writes results.jsonl, one fsync'd line per finished run, and only one such process per output
folder (`lock_out`). A rerun skips every key already there, so a killed sweep resumes where it
stopped; a run recorded as an `error` (a killed worker, a full disk) is tried again, and its new
record, appended later, is the one that counts.
"""

from __future__ import annotations

import ctypes
import fcntl
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

from common.cli import EXIT_NO_RECORD
from common.config import MAX_SEEDS_PER_PROGRAM
from common.files import append_line, writing
from common.threads import available_cores, host_threads
from compare.sweeps import Run

RESULTS = "results.jsonl"
LOCK = ".lock"
_LOW_DISK = 2**20  # a worker with no output and less free space than this: say so
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None)  # loaded here, not in the forked child


class ResultsError(Exception):
    """results.jsonl holds something that is not ours."""


class Busy(Exception):
    """Another sweep is writing to the same output folder."""


def lock_out(out_dir: Path):
    """Hold out_dir for this process: an exclusive lock the kernel drops when the process ends,
    however it ends (kill -9 included), so a stale lock cannot exist. Raises Busy, naming the
    holder's pid, if another process holds it. Keep the returned file open while writing."""
    path = out_dir / LOCK
    with writing(path):
        f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise Busy(f"--out={out_dir}: another sweep (pid {holder}) is writing there; wait for it "
                   f"or choose another --out") from None
    with writing(path):
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
    return f


def load_results(path: Path, repair: bool = True) -> dict[str, dict[str, Any]]:
    """Records by key; where a key appears more than once (a retried error), the latest line
    wins. A last line cut short by a kill is dropped, and with `repair` cut off the file too
    (only the holder of the folder's lock may)."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    if good_end < len(data) and repair:
        with writing(path), open(path, "r+b") as f:
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
    append_line(path, json.dumps(record))


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
        with writing(self.config_path):
            self.config_path.write_text(first.config.to_json())
        self.record_path.unlink(missing_ok=True)
        with writing(self.log_path):
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

    def stop(self) -> None:
        """End the process now (the sweep was interrupted); its runs stay unrecorded."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def records(self) -> list[dict[str, Any]]:
        """One record per run, in the order of self.runs."""
        self.log.close()
        if self.record_path.exists():
            written = json.loads(self.record_path.read_text())
            records = written if isinstance(written, list) else [written]
        else:  # the worker died, refused the run, or could not write its record
            records = [{"backend": run.backend, "config": run.config.to_dict(),
                        "status": "error", "error": self.failure(), "diverged_step": None,
                        "curve": [], "timing": None, "env": None,
                        "final": {"step": None, "loss": None, "exact_acc": None, "digit_acc": None}}
                       for run in self.runs]
        self.config_path.unlink(missing_ok=True)
        self.record_path.unlink(missing_ok=True)
        return records

    def failure(self) -> str:
        """Why a worker left no record, from its exit status and the last line it printed."""
        try:
            tail = (self.log_path.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
        except OSError as e:
            tail = f"(its log is unreadable: {e.strerror})"
        free = shutil.disk_usage(self.log_path.parent).free
        if tail == "no output" and free < _LOW_DISK:  # it could not even write its log
            tail = f"no output, and {self.log_path.parent} has {free // 1024} KB free"
        code = self.proc.returncode
        if code < 0:
            return f"worker killed by {signal.Signals(-code).name}: {tail}"
        if code == EXIT_NO_RECORD:
            return f"worker trained but could not write its run record: {tail}"
        if code == 2:
            return f"worker refused the run: {tail}"
        return f"worker exit {code}: {tail}"


def work_units(todo: list[Run], vmap_seeds: bool) -> list[list[Run]]:
    """Runs grouped into worker processes, in order. With vmap_seeds, the JAX runs of one config
    whose seeds follow each other share a process (and one vmapped program), up to
    MAX_SEEDS_PER_PROGRAM of them."""
    units: list[list[Run]] = []
    open_units: dict[tuple, list[Run]] = {}
    for run in todo:
        if not vmap_seeds or run.backend != "jax":
            units.append([run])
            continue
        family = (run.sweep, run.label, run.config.replace(seed=0))
        unit = open_units.get(family)
        if unit and unit[-1].config.seed + 1 == run.config.seed and len(unit) < MAX_SEEDS_PER_PROGRAM:
            unit.append(run)
        else:
            open_units[family] = [run]
            units.append(open_units[family])
    return units


def pending(runs: list[Run], done: dict[str, dict[str, Any]], retry_errors: bool = True) -> list[Run]:
    """The runs still to do: those without a record, and (retry_errors) those whose latest record
    is an error. A diverged run is a result, never retried."""
    return [r for r in runs if r.key not in done or (retry_errors and done[r.key]["status"] == "error")]


def execute(runs: list[Run], out_dir: Path, jobs: int, console: Console,
            vmap_seeds: bool = False, retry_errors: bool = True) -> dict[str, dict[str, Any]]:
    """Run whatever of `runs` is not in out_dir/results.jsonl yet (and, with retry_errors, what
    failed there before); returns every record by key. Interrupted (Ctrl-C) or failing to write,
    it ends its workers before the exception leaves; their runs stay unrecorded."""
    results_path = out_dir / RESULTS
    done = load_results(results_path)
    todo = pending(runs, done, retry_errors)
    retried = sum(r.key in done for r in todo)
    units = work_units(todo, vmap_seeds)
    scratch = out_dir / "scratch"
    with writing(scratch):
        scratch.mkdir(parents=True, exist_ok=True)
        (out_dir / "logs").mkdir(exist_ok=True)
    cores = available_cores()

    def slot_cores(slot: int, threads: int) -> list[int]:
        return sorted({cores[(slot * threads + i) % len(cores)] for i in range(threads)})

    finished = len(runs) - len(todo)
    if finished or retried:
        console.print(f"resuming: {finished} of {len(runs)} runs already in {results_path}"
                      + (f"; retrying {retried} that failed before" if retried else ""))
    running: dict[int, _Worker] = {}
    columns = (TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[now]}"))
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("runs", total=len(runs), completed=len(runs) - len(todo), now="")
            while units or running:
                for slot in range(jobs):
                    if slot not in running and units:
                        unit = units.pop(0)
                        running[slot] = _Worker(unit, scratch, slot_cores(slot, host_threads(unit[0].config)))
                progress.update(task, now=escape(" | ".join(w.what for w in running.values())))
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
                            progress.console.print(f"[red]error[/] {escape(run.backend)} {escape(run.label)} seed "
                                                   f"{run.config.seed}: {escape(record['error'])}")
                        progress.advance(task)
    finally:
        for worker in running.values():
            worker.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return done
