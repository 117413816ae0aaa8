"""`compare.run --engine ray`: the same sweep, its units run on the nodes of a Ray cluster.

What runs is decided as for the local engine (compare.runner.Ledger: resume, pending runs, units)
and only the driver appends records. Where: each slot is one Ray actor (`_Slot`) that reserves a
run's CPUs (`num_cpus`: the run's threads) and, for a GPU run, a GPU, and hosts the same warm
workers as the local engine (compare.runner.Worker: the backend's own command line in serve
mode, a subprocess on the actor's node, one per backend), so the two frameworks never share a
process and a crash costs one run. The driver hands the next unit to whichever slot is idle and
collects results with ray.wait as they finish; a slot returns a unit's records and its logs (no
shared file system is needed).

Faults: a unit whose slot dies under it (its node died, or the actor process did) goes back to
the front of the queue and runs on another slot, at most MAX_RETRIES more times, then it is
recorded as an error with the reason; the slot is replaced by a new actor, which Ray places on a
node that is alive. A unit's records are appended only when its result reaches the driver, so
none is lost or written twice. A worker that crashes inside a live slot costs its run, recorded
as an error and retried on rerun, as on the local engine.

Pinning: num_cpus reserves CPUs but pins nothing, and a worker pins itself to the first N cores
it may use (common/threads.py), so two slots of a node would pile onto the same cores. Each slot
therefore claims cores of its node for its workers, with one lock file per core that it holds
while it lives; where none are free (more CPUs declared to Ray than the node has) it shares cores
round-robin, as the local engine's slots do.

Safe by default: a local instance (no --address) listens on loopback only, sends no usage
statistics and runs no dashboard; `ray` is imported only here, only for --engine ray.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import ipaddress
import logging
import os
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.markup import escape

from common.config import ConfigError
from common.files import writing
from common.records import error_record
from common.threads import GPU_HOST_CORES, available_cores
from compare import devices
from compare.runner import Ledger, Worker, describe
from compare.sweeps import Run

INSTALL = "pip install -e '.[cluster]'"
MAX_RETRIES = 2  # a unit whose node dies under it runs again on another, at most this often
OBJECT_STORE_BYTES = 128 * 2**20  # a local instance's shared memory: results are a few KB
CONNECT_TIMEOUT_S = 3.0
JOIN_TIMEOUT_S = 30.0  # ray.init retries a head that answers but never lets it join for minutes
START_TIMEOUT_S = 300.0  # no slot placed on any node for this long: the cluster cannot host one
# Every process of a local instance: no usage statistics, no token (nothing listens beyond
# loopback), and loopback addresses: Ray otherwise binds and advertises the host's own address.
_PRIVATE = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class EngineError(Exception):
    """The cluster cannot run the sweep (no node takes a worker): one line; rerun to resume."""


def check_installed() -> None:
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(f"--engine ray needs Ray, which comes with the cluster extra: {INSTALL}")


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address={address}: expected HOST:PORT of a Ray head node "
                          f"(`ray start --head` prints it; port 6379 by default)")
    return host, int(port)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (a Ray head's GCS) answers
# with a SETTINGS frame of its own, anything else does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within `timeout` s (ConfigError, one line) unless a Ray head may be at `address`:
    ray.init itself retries an address that does not answer for minutes."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            if os.environ.get("RAY_USE_TLS", "0") in ("0", ""):
                conn.settimeout(timeout)
                conn.sendall(_H2_PREFACE)
                frame = conn.recv(9)
                if len(frame) < 4 or frame[3] != 4:  # the frame's type: SETTINGS
                    raise ConfigError(f"--address={address}: something answers there, but not a Ray "
                                      f"head (no gRPC)")
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ConfigError(f"--address={address}: no Ray cluster answers there ({why})") from None


@contextlib.contextmanager
def _deadline(seconds: float, message: str):
    """Ends the process with `message` (one line, exit status 2) if the block takes longer."""
    def expire() -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _one_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(e).__name__}: {text[:300]}".rstrip(": ")


def _node_folder() -> Path:
    """This node's folder of the slots' files (core locks, each slot's scratch files and logs)."""
    return Path(tempfile.gettempdir()) / f"rnn-adder-ray-{os.getuid()}"


def _slot_folder(slot: int) -> Path:
    """A new folder for this slot's files; removes those of slots whose process is gone (they
    died with their node's Ray processes, unable to clean up)."""
    base = _node_folder()
    base.mkdir(exist_ok=True)
    for old in base.glob("slot*-*"):
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = base / f"slot{slot}-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _claim_cores(n: int, slot: int) -> tuple[list[int], list[Any]]:
    """`n` cores of this node that no other slot holds (their lock files, kept open), or where
    too few are free, n cores shared round-robin by slot number (no locks)."""
    cores = available_cores()
    folder = _node_folder() / "cores"
    held: list[tuple[int, Any]] = []
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        for core in cores:
            if len(held) == n:
                break
            f = open(folder / str(core), "a")  # noqa: SIM115  (held while the slot lives)
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append((core, f))
            except BlockingIOError:
                f.close()
    if len(held) == n:
        return sorted(c for c, _ in held), [f for _, f in held]
    for _, f in held:
        f.close()
    return sorted({cores[(slot * n + i) % len(cores)] for i in range(n)}), []


class _Slot:
    """A Ray actor: one slot of the sweep on some node, with one warm worker per backend pinned
    to the cores it claimed there. Its methods run one at a time."""

    def __init__(self, slot: int, cpus: int):
        import ray  # on the node

        self.node = ray.get_runtime_context().get_node_id()
        self.dir = _slot_folder(slot)
        self.cores, self._locks = _claim_cores(cpus, slot)
        self.workers: dict[str, Worker] = {}
        self.read_to: dict[Path, int] = {}

    def ready(self) -> dict[str, Any]:
        return {"node": self.node, "host": platform.node(), "cores": self.cores, "own_cores": bool(self._locks)}

    def run(self, unit: list[Run], fresh: bool, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train the unit in this slot's worker for its backend (started, or replaced if its
        threads or device differ or it died); its records and what it printed."""
        first = unit[0]
        key = (first.backend, first.config.threads, first.config.device)  # threads resolved by the worker
        worker = self.workers.get(first.backend)
        if worker is None or worker.key != key or not worker.alive:
            if worker is not None:
                worker.close()
            worker = Worker(*key, self.cores, self.dir / f"worker-{first.backend}.log")
            self.workers[first.backend] = worker
        worker.submit(unit, self.dir, self.dir, checkpoint)
        while not worker.wait(1.0):
            pass
        records = worker.records()
        log = self._read(worker.run_log, whole=True)
        worker.run_log.unlink(missing_ok=True)
        worker_log = self._read(worker.log_path)
        if fresh or not worker.alive:
            worker.close()
            del self.workers[first.backend]
        return {"records": records, "log": log, "worker_log": worker_log}

    def _read(self, path: Path, whole: bool = False) -> str:
        """The file's text (or what was added since the last read), "" if there is none."""
        try:
            with open(path, "rb") as f:
                f.seek(0 if whole else self.read_to.get(path, 0))
                data = f.read()
                self.read_to[path] = f.tell()
        except OSError:
            return ""
        return data.decode(errors="replace")

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        for f in self._locks:
            f.close()


class _SlotState:
    """The driver's view of one slot: its actor, the resources it reserved, where it runs once
    it has started (`info`), and the unit it is running."""

    def __init__(self, actor, shape: tuple[int, int]):
        self.actor, self.shape, self.since = actor, shape, time.perf_counter()
        self.info: dict[str, Any] | None = None
        self.unit: list[Run] | None = None
        self.sent = 0.0


class RayEngine:
    """Connects (or starts a local instance) on creation; `close` disconnects (and stops it)."""

    def __init__(self, address: str | None):
        self.address = address
        if address is None or _loopback(_host_port(address)[0]):
            # A cluster at a loopback address listens on loopback: the driver must too.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        if address is None:
            os.environ.update(_PRIVATE)
        start = time.perf_counter()
        import ray  # only here: compare.run works without ray installed
        from ray import exceptions

        self._ray, self._errors = ray, exceptions
        options = {"logging_level": logging.WARNING, "log_to_driver": False, "namespace": "rnn-adder"}
        where = "start a local Ray instance" if address is None else f"join the Ray cluster at {address}"
        try:
            if address is None:
                ray.init(address="local", num_cpus=len(available_cores()), include_dashboard=False,
                         object_store_memory=OBJECT_STORE_BYTES, **options)
            else:
                # Nothing is written and nothing started yet: a join that hangs may end the process.
                with _deadline(JOIN_TIMEOUT_S, f"--engine ray: cannot {where}: no answer within "
                                               f"{JOIN_TIMEOUT_S:.0f} s (is it a Ray head of the same version?)"):
                    ray.init(address=address, **options)
        except Exception as e:  # noqa: BLE001  (a version mismatch, a refused token, …: one line)
            with contextlib.suppress(Exception):
                ray.shutdown()
            raise ConfigError(f"--engine ray: cannot {where}: {_one_line(e)}") from None
        self.start_s = time.perf_counter() - start
        self.stop_s: float | None = None
        self._slot_class = ray.remote(_Slot)
        self.retried = 0  # runs run again after their node or slot was lost
        self._largest: int | None = None  # CPUs of the largest node, once asked

    @property
    def joined(self) -> bool:
        return self.address is not None

    def summary(self) -> str:
        nodes = [n for n in self._ray.nodes() if n["Alive"]]
        cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
        gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
        where = f"Ray cluster at {self.address}" if self.joined else "local Ray instance"
        return (f"{where}: {len(nodes)} node(s), {cpus:g} CPU(s), {gpus:g} GPU(s) "
                f"(ready in {self.start_s:.1f} s)")

    def shape(self, run: Run) -> tuple[int, int]:
        """(CPUs, GPUs) a slot for `run` reserves: its threads (a GPU run at threads 0: up to
        GPU_HOST_CORES, as many as the largest node has), and one GPU for a GPU run."""
        gpu = run.config.device == "gpu"
        if run.config.threads:
            return run.config.threads, int(gpu)
        if gpu and self._largest is None:
            self._largest = int(max((n["Resources"].get("CPU", 0) for n in self._ray.nodes() if n["Alive"]),
                                    default=1))
        return (max(1, min(GPU_HOST_CORES, self._largest)) if gpu else 1), int(gpu)

    def capacity(self, shape: tuple[int, int]) -> int:
        """How many slots of `shape` the cluster's live nodes hold."""
        cpus, gpus = shape
        total = 0
        for node in self._ray.nodes():
            if node["Alive"]:
                fits = int(node["Resources"].get("CPU", 0) // cpus)
                if gpus:
                    fits = min(fits, int(node["Resources"].get("GPU", 0) // gpus))
                total += fits
        return total

    def resolve_device(self, requested: str, backends: list[str]) -> tuple[str, str]:
        """devices.resolve, asked on a node of the cluster (one with a GPU, if any has one):
        what the runs will see there, not what this machine sees."""
        if requested == "cpu":
            return devices.resolve(requested, backends)
        gpus = self._ray.cluster_resources().get("GPU", 0)
        probe = self._ray.remote(num_cpus=1, num_gpus=1 if gpus else 0)(_resolve_on_node)
        device, note = self._ray.get(probe.remote(requested, backends))
        if device is None:
            raise ConfigError(note)
        return device, note

    def close(self) -> None:
        if self._ray.is_initialized():
            start = time.perf_counter()
            self._ray.shutdown()
            self.stop_s = time.perf_counter() - start

    # --- running units -------------------------------------------------------------------

    def run(self, ledger: Ledger, jobs: int, fresh_workers: bool) -> None:
        ray = self._ray
        slots: dict[int, _SlotState] = {}
        calls: dict[Any, tuple[str, int]] = {}  # ObjectRef -> ("ready" | "run", slot)
        losses: dict[str, int] = {}  # a unit's first key -> times its slot was lost under it
        failed_starts = 0

        def start(slot: int, shape: tuple[int, int]) -> None:
            actor = self._slot_class.options(num_cpus=shape[0], num_gpus=shape[1], scheduling_strategy="SPREAD",
                                             max_restarts=0, max_task_retries=0).remote(slot, shape[0])
            slots[slot] = _SlotState(actor, shape)
            calls[actor.ready.remote()] = ("ready", slot)

        def end(state: _SlotState) -> None:
            with contextlib.suppress(Exception):
                ray.kill(state.actor, no_restart=True)

        def lost(slot: int, state: _SlotState, why: str) -> None:
            """The slot's actor is gone: replace it; its unit runs again elsewhere, or is an error."""
            nonlocal failed_starts
            end(state)
            unit = state.unit
            if state.info is None:  # it died starting
                failed_starts += 1
                if failed_starts > 2 * jobs + 2:
                    raise EngineError(f"Ray slots keep dying as they start ({why}); is the project installed "
                                      f"on every node? Rerun the same command to resume")
            if unit is not None:
                tries = losses[unit[0].key] = losses.get(unit[0].key, 0) + 1
                where = f" on {state.info['host']}" if state.info else ""
                if tries <= MAX_RETRIES:
                    self.retried += len(unit)
                    ledger.units.insert(0, unit)
                    ledger.say(f"[yellow]lost[/] {escape(describe(unit))}{escape(where)} ({escape(why)}): "
                               f"running it again on another slot ({tries} of {MAX_RETRIES})")
                else:
                    wall_s = time.perf_counter() - state.sent
                    ledger.record(unit, [{**error_record(r.backend, r.config, f"lost with its Ray node or "
                                                         f"worker {tries} times: {why}"),
                                          "wall_s": wall_s, "warm": False} for r in unit])
            start(slot, state.shape)

        for slot in range(min(jobs, len(ledger.units))):
            start(slot, self.shape(ledger.units[0][0]))
        try:
            while ledger.units or any(s.unit for s in slots.values()):
                for slot, state in list(slots.items()):
                    if state.info is None or state.unit is not None or not ledger.units:
                        continue
                    shape = self.shape(ledger.units[0][0])
                    if shape != state.shape:  # another sweep's threads or device: a slot shaped for it
                        end(state)
                        start(slot, shape)
                        continue
                    state.unit, state.sent = ledger.units.pop(0), time.perf_counter()
                    calls[state.actor.run.remote(state.unit, fresh_workers, ledger.checkpoint(state.unit))] = ("run", slot)
                ledger.show([s.unit for s in slots.values() if s.unit])
                finished, _ = ray.wait(list(calls), num_returns=1, timeout=0.5)
                for ref in finished:
                    kind, slot = calls.pop(ref)
                    state = slots[slot]
                    try:
                        value = ray.get(ref)
                    except self._errors.RayTaskError as e:  # this module's code raised on the node
                        cause = e.cause if getattr(e, "cause", None) is not None else e
                        if kind == "ready":
                            lost(slot, state, _one_line(cause))
                            continue
                        ledger.record(state.unit, [{**error_record(r.backend, r.config, f"Ray slot: {_one_line(cause)}"),
                                                    "wall_s": time.perf_counter() - state.sent, "warm": False}
                                                   for r in state.unit])
                        state.unit = None
                        end(state)
                        start(slot, state.shape)
                        continue
                    except self._errors.RayError as e:  # the actor or its node is gone
                        lost(slot, state, _one_line(e))
                        continue
                    if kind == "ready":
                        state.info, failed_starts = value, 0
                    else:
                        self._collect(ledger, slot, state.unit, value)
                        state.unit = None
                waiting = [s for s in slots.values() if s.info is None]
                if ledger.units and waiting and not any(s.info for s in slots.values()) and \
                        time.perf_counter() - min(s.since for s in waiting) > START_TIMEOUT_S:
                    cpus, gpus = waiting[0].shape
                    raise EngineError(f"no node of the Ray cluster took a worker of {cpus} CPU(s)"
                                      + (f" and {gpus} GPU(s)" if gpus else "")
                                      + f" within {START_TIMEOUT_S:.0f} s; rerun the same command to resume")
            self._close_slots(slots.values())
        finally:
            for state in slots.values():
                end(state)

    def _close_slots(self, states) -> None:
        """Let the slots end their workers and clean up on their nodes (then they are killed)."""
        closing = [s.actor.close.remote() for s in states if s.info is not None]
        with contextlib.suppress(Exception):
            self._ray.wait(closing, num_returns=len(closing), timeout=30)

    @staticmethod
    def _collect(ledger: Ledger, slot: int, unit: list[Run], value: dict[str, Any]) -> None:
        """A finished unit: its logs into logs/ (as the local engine's workers write them), then
        its records into results.jsonl."""
        run_log = ledger.logs / f"{unit[0].key}.log"
        with writing(run_log):
            run_log.write_text(value["log"])
        worker_log = ledger.logs / f"worker-{slot}-{unit[0].backend}.log"
        with writing(worker_log), open(worker_log, "a") as f:
            f.write(value["worker_log"])
        ledger.record(unit, value["records"])


def _resolve_on_node(requested: str, backends: list[str]) -> tuple[str | None, str]:
    """devices.resolve where this runs: (device, note), or (None, why) for a device that is not there."""
    try:
        device, note = devices.resolve(requested, backends)
    except ConfigError as e:
        return None, f"{e} (on Ray node {platform.node()})"
    return device, f"{note}, on Ray node {platform.node()}"
