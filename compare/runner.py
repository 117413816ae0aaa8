"""Execute runs in warm, pinned worker processes, appending records as they finish.

Each slot (`--jobs`) keeps one worker per backend: the backend's own command line in serve mode
(`python -m jax_impl --serve`), which starts its framework once and then trains the runs it is
sent, one after another. So the two frameworks never share a process, the process start and
imports are paid once per slot rather than once per run, and a crash costs one run: a worker that
dies is replaced, and only the run it was training is recorded, as an error. Only this process
writes results.jsonl, one fsync'd line per finished run, and only one such process per output
folder (`lock_out`). A rerun skips every key already there, so a killed sweep resumes where it
stopped; a run recorded as an `error` (a killed worker, a full disk) is tried again, and its new
record, appended later, is the one that counts.

What runs (the pending runs, grouped into units) and the writing of their records (`Ledger`)
are the same whatever runs them; where the units run is the engine's: `execute` runs them in
this machine's slots, or hands them to another engine (compare.ray_engine: the same warm
workers, hosted by Ray actors on a cluster's nodes).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.backends import package
from common.config import MAX_SEEDS_PER_PROGRAM
from common.files import append_line, writing
from common.records import error_record, read
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
            record = read(json.loads(line))
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


def describe(unit: list[Run]) -> str:
    """A unit in a few words, for the progress bar: backend, config, seed(s)."""
    first, seeds = unit[0], [r.config.seed for r in unit]
    return f"{first.backend} {first.label} seed{'s' if len(seeds) > 1 else ''} " + ",".join(map(str, seeds))


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """Which runs of a sweep save mid-run checkpoints (the backends' --checkpoint_every), how
    often, and where: a rerun of the sweep (or a unit retried on another node, where `dir` is
    shared) resumes a run from its latest checkpoint instead of step 0. Single runs of either
    task checkpoint (a vmapped group of seeds does not, yet)."""

    every: int | None  # None: AUTO_EVERY steps for runs of at least AUTO_FROM steps; 0: never
    dir: Path

    AUTO_FROM: ClassVar[int] = 1000  # the paper presets' runs (3000 steps, up to 5000 digits; text: 3900)
    AUTO_EVERY: ClassVar[int] = 500  # a canonical checkpoint costs ~0.08 s; 500 steps cost ~2 s

    def for_unit(self, unit: list[Run]) -> dict[str, Any] | None:
        """The serve request's "checkpoint" object for `unit`, or None."""
        cfg = unit[0].config
        if len(unit) > 1:
            return None
        every = self.every if self.every is not None else self.AUTO_EVERY if cfg.steps >= self.AUTO_FROM else 0
        return {"every": every, "dir": str(self.dir)} if 0 < every < cfg.steps else None


def serve_request(unit: list[Run], out: Path, log: Path, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request a worker in serve mode reads for `unit` (common/cli.py `serve`): the one
    place both engines build it. Its records go to `out`, its output to `log`; `checkpoint`
    (CheckpointPolicy.for_unit) asks for mid-run checkpoints."""
    first = unit[0]
    request = {"task": first.config.task, "config": first.config.to_dict(), "seeds": len(unit),
               "out": str(out), "log": str(log)}
    return {**request, "checkpoint": checkpoint} if checkpoint else request


class Worker:
    """One warm backend process pinned to a slot's cores, serving units of runs one at a time: a
    unit is one run, or (JAX with vmap) consecutive seeds of one config trained together.

    `threads` is passed on as the worker's --threads (the local engine resolves it first; a Ray
    slot passes the config's own, which the worker resolves on its node)."""

    def __init__(self, backend: str, threads: int, device: str, cores: list[int], log_path: Path):
        self.key = (backend, threads, device)
        self.log_path = log_path
        with writing(log_path):
            self.log = open(log_path, "a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", package(backend), "--serve", "--threads", str(threads), "--device", device],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1, env=env,
            preexec_fn=_worker_setup(cores))
        self.served = 0
        self.unit: list[Run] | None = None
        self.reply: dict[str, Any] | None = None

    @property
    def what(self) -> str:
        return describe(self.unit)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, unit: list[Run], scratch: Path, logs: Path, checkpoint: dict[str, Any] | None = None) -> None:
        first = unit[0]
        self.unit, self.reply, self.submitted = unit, None, time.perf_counter()
        self.record_path = scratch / f"{first.key}.json"
        self.run_log = logs / f"{first.key}.log"
        self.record_path.unlink(missing_ok=True)
        request = serve_request(unit, self.record_path, self.run_log, checkpoint)
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died between runs: finished() sees it and the run is recorded as an error

    def finished(self) -> bool:
        """Has the current unit ended (answered, or the worker died)?"""
        if select.select([self.proc.stdout], [], [], 0)[0]:
            line = self.proc.stdout.readline()
            if line:
                self.reply = json.loads(line)
                return True
        return not self.alive

    def wait(self, timeout: float) -> bool:
        """finished(), after waiting up to `timeout` s for the worker to answer or die."""
        select.select([self.proc.stdout], [], [], timeout)
        if self.finished():
            return True
        time.sleep(0.01)  # its output closed but it is not reaped yet: no busy loop
        return False

    def records(self) -> list[dict[str, Any]]:
        """One record per run of the finished unit, in order, each with the unit's wall time."""
        unit, reply = self.unit, self.reply
        self.unit, self.served = None, self.served + 1
        if reply and "done" in reply:
            written = json.loads(self.record_path.read_text())
            records = written if isinstance(written, list) else [written]
            if len(records) != len(unit):  # never a run left unrecorded, nor a record put on the wrong run
                why = f"worker wrote {len(records)} run record(s) for a unit of {len(unit)} runs"
                records = [error_record(run.backend, run.config, why) for run in unit]
        else:
            why = (f"worker trained but could not write its run record: {reply['no_record']}" if reply
                   else self.failure())
            records = [error_record(run.backend, run.config, why) for run in unit]
        self.record_path.unlink(missing_ok=True)
        wall_s = time.perf_counter() - self.submitted
        return [{**r, "wall_s": wall_s, "warm": self.served > 1} for r in records]

    def failure(self) -> str:
        """Why a worker died without answering: its exit status and the last line it printed."""
        self.proc.wait()
        self.log.flush()
        tail = "no output"
        for path in (self.run_log, self.log_path):  # the run's own output first
            try:
                lines = path.read_text(errors="replace").strip().splitlines()
            except OSError:
                continue
            if lines:
                tail = lines[-1]
                break
        free = shutil.disk_usage(self.log_path.parent).free
        if tail == "no output" and free < _LOW_DISK:  # it could not even write its log
            tail = f"no output, and {self.log_path.parent} has {free // 1024} KB free"
        code = self.proc.returncode
        if code < 0:
            return f"worker killed by {signal.Signals(-code).name}: {tail}"
        return f"worker exit {code}: {tail}"

    def close(self) -> None:
        """Let it finish: end of input, then exit (killed if it does not within 10 s)."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.stop()
        self.log.close()

    def stop(self) -> None:
        """End the process now (the sweep was interrupted); its unit stays unrecorded."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def work_units(todo: list[Run], vmap_seeds: bool) -> list[list[Run]]:
    """Runs grouped into worker processes, in order. With vmap_seeds, the runs of one config
    whose seeds follow each other share a process (and one vmapped program), up to
    MAX_SEEDS_PER_PROGRAM of them, where their backend trains seed groups of their workload
    (the config's SEED_GROUPS: JAX's adder runs); every other run is a unit of its own."""
    units: list[list[Run]] = []
    open_units: dict[tuple, list[Run]] = {}
    for run in todo:
        if not vmap_seeds or run.backend not in run.config.SEED_GROUPS:
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


class Ledger:
    """The driver's side of a sweep, whatever engine runs it: what is still to run (`units`, in
    order), the progress bar, and the one place records are written: each finished unit's
    records are appended to results.jsonl by `record`, here, in this process only."""

    def __init__(self, runs: list[Run], out_dir: Path, jobs: int, console: Console,
                 vmap_seeds: bool = False, retry_errors: bool = True,
                 checkpoints: CheckpointPolicy | None = None, title: str = "runs",
                 order: Callable[[list[Run]], Any] | None = None):
        self.path = out_dir / RESULTS
        self.title = title  # what the progress bar counts, e.g. "stage 2/3: 6 seeds"
        self.checkpoints = checkpoints
        self.logs = out_dir / "logs"
        self.jobs = jobs
        self.done = load_results(self.path)
        todo = pending(runs, self.done, retry_errors)
        self.units = work_units(todo, vmap_seeds)
        if order is not None:  # longest first: a long run started last would be the sweep's tail
            self.units.sort(key=order, reverse=True)
        with writing(self.logs):
            self.logs.mkdir(parents=True, exist_ok=True)
        self.total, self.finished = len(runs), len(runs) - len(todo)
        retried = sum(r.key in self.done for r in todo)
        if self.finished or retried:
            console.print(f"resuming: {self.finished} of {len(runs)} runs already in {self.path}"
                          + (f"; retrying {retried} that failed before" if retried else ""))
        self.console = console
        self._progress: Progress | None = None

    @contextlib.contextmanager
    def progress(self):
        columns = (TextColumn(f"[bold]{escape(self.title)}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[now]}"))
        with Progress(*columns, console=self.console, transient=False) as progress:
            self._progress = progress
            self._task = progress.add_task("runs", total=self.total, completed=self.finished, now="")
            try:
                yield self
            finally:
                self._progress = None

    def checkpoint(self, unit: list[Run]) -> dict[str, Any] | None:
        """The unit's serve request "checkpoint" object (CheckpointPolicy), if it checkpoints."""
        return self.checkpoints.for_unit(unit) if self.checkpoints else None

    def show(self, units: list[list[Run]]) -> None:
        """The units running now, on the progress bar."""
        if self._progress:
            self._progress.update(self._task, now=escape(" | ".join(describe(u) for u in units)))

    def say(self, line: str) -> None:
        (self._progress.console if self._progress else self.console).print(line)

    def record(self, unit: list[Run], written: list[dict[str, Any]]) -> None:
        """Append the finished unit's records (one per run, in order, as its worker wrote them)
        to results.jsonl, with what the driver knows of each run."""
        for run, record in zip(unit, written):
            record = {**record, "key": run.key, "sweep": run.sweep, "label": run.label,
                      "point": dict(run.point), "role": run.role, "jobs": self.jobs}
            append_result(self.path, record)
            self.done[run.key] = record
            if record["status"] == "error":
                self.say(f"[red]error[/] {escape(run.backend)} {escape(run.label)} seed "
                         f"{run.config.seed}: {escape(record['error'])}")
            if self._progress:
                self._progress.advance(self._task)


class Engine(Protocol):
    """Where a sweep's units run: `run` takes units off `ledger.units` until none is left or
    running, and hands each finished unit's records to `ledger.record`."""

    def run(self, ledger: Ledger, jobs: int, fresh_workers: bool) -> None: ...


class LocalEngine:
    """`jobs` slots on this machine, each with one warm worker per backend, pinned to the slot's
    cores."""

    def run(self, ledger: Ledger, jobs: int, fresh_workers: bool) -> None:
        units = ledger.units
        scratch, logs = ledger.path.parent / "scratch", ledger.logs
        with writing(scratch):
            scratch.mkdir(parents=True, exist_ok=True)
        cores = available_cores()

        def slot_cores(slot: int, threads: int) -> list[int]:
            return sorted({cores[(slot * threads + i) % len(cores)] for i in range(threads)})

        # slot -> backend -> its warm worker; at most one worker of a slot is busy at a time.
        slots: dict[int, dict[str, Worker]] = {slot: {} for slot in range(jobs)}
        busy: dict[int, Worker] = {}
        try:
            while units or busy:
                for slot in range(jobs):
                    if slot in busy or not units:
                        continue
                    unit = units.pop(0)
                    cfg = unit[0].config
                    key = (unit[0].backend, host_threads(cfg), cfg.device)
                    worker = slots[slot].get(key[0])
                    if worker is None or worker.key != key or not worker.alive:
                        if worker is not None:
                            worker.close()
                        worker = Worker(*key, slot_cores(slot, key[1]), logs / f"worker-{slot}-{key[0]}.log")
                        slots[slot][key[0]] = worker
                    worker.submit(unit, scratch, logs, ledger.checkpoint(unit))
                    busy[slot] = worker
                ledger.show([w.unit for w in busy.values()])
                select.select([w.proc.stdout for w in busy.values()], [], [], 0.05)
                for slot, worker in list(busy.items()):
                    if not worker.finished():
                        continue
                    del busy[slot]
                    unit = worker.unit
                    ledger.record(unit, worker.records())
                    if fresh_workers or not worker.alive:
                        worker.close()
                        del slots[slot][worker.key[0]]
            for workers in slots.values():
                for worker in workers.values():
                    worker.close()
        finally:
            for workers in slots.values():
                for worker in workers.values():
                    if worker.alive:
                        worker.stop()
            shutil.rmtree(scratch, ignore_errors=True)


def execute(runs: list[Run], out_dir: Path, jobs: int, console: Console,
            vmap_seeds: bool = False, retry_errors: bool = True,
            fresh_workers: bool = False, engine: Engine | None = None,
            checkpoints: CheckpointPolicy | None = None, title: str = "runs",
            order: Callable[[list[Run]], Any] | None = None) -> dict[str, dict[str, Any]]:
    """Run whatever of `runs` is not in out_dir/results.jsonl yet (and, with retry_errors, what
    failed there before) on `engine` (default: LocalEngine, this machine); returns every record
    by key. `fresh_workers` ends each worker after one unit (a new process per run, as before
    warm workers). Interrupted (Ctrl-C) or failing to write, the engine ends its workers before
    the exception leaves; their runs stay unrecorded. With `checkpoints`, long runs save
    mid-run checkpoints, so a run that was stopped resumes where it was. `title` names the batch
    on the progress bar. With `order` (a unit's expected cost, compare.estimate.order), the
    units run longest first (stable: equal costs keep the sweep's order)."""
    ledger = Ledger(runs, out_dir, jobs, console, vmap_seeds, retry_errors, checkpoints, title, order)
    with ledger.progress():
        (engine or LocalEngine()).run(ledger, jobs, fresh_workers)
    return ledger.done
