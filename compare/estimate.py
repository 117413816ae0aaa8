"""How long a sweep will take on this machine, said before it runs, and checked after.

A run in a warm worker (compare.runner) costs

    fixed + compile + first step + (steps - 1) x step + evals x eval

`fixed` being the rest of its wall time (model build, data, length tests, probe, its record, the
request's round trip) and `compile` a JAX program loaded from the persistent compilation cache
(tracing and lowering: the cache cannot skip them), paid once per worker and config: the seeds of
a config share their programs in a worker, and PyTorch is eager. A worker process costs its start
once (interpreter and framework imports; PyTorch's first optimizer imports torch._dynamo).

The figures are measured, not modelled from FLOPs (on these small shapes a step is mostly per-op
overhead, README "Speed"): each distinct *shape* (a run's backend and config less what changes
neither its programs nor a step's cost: seed, lr and schedule, steps, eval cadence, init) is
trained for CALIBRATION_STEPS steps in the backends' own warm workers, then (where it compiled
afresh) for one more step in a fresh worker, whose compile is the cache hit the sweep's runs pay.
That is seconds per shape, its cold compiles fill the persistent cache the sweep then reads, and
the figures are cached per machine (CPU model, device, cores, instruction-set caps, Python and
framework versions), so a shape is measured once. On a shared machine the share of the cores
other processes take moves a step's time by 2x within minutes: figures are kept for a core of
their own (scaled by the share the run had) and a forecast slows them by the share the threads
runnable now would take (expected_contention).
The sweep's wall time is its runs laid out on its `--jobs` slots as the runner lays them: longest
first, each to the slot that frees first.

Not known in advance, so left out and said: the follow-ups (controls and float64 runs, made only
for configs whose curves part), and early stops (a stop_when_solved run is counted at its cap:
an upper bound).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console

from common import cpu
from common.files import write_atomic, writing
from common.threads import available_cores, host_threads
from compare.runner import execute, work_units
from compare.sweeps import Run

CALIBRATION_STEPS, CALIBRATION_EVERY = 12, 6  # two timed blocks of 5 and 6 steps, two evals
# Fields that change neither a run's programs nor the cost of its steps and evals: a shape is a
# config with these at their defaults (the lr lives in the optimizer state; a schedule scales it).
NOT_SHAPE = ("seed", "lr", "schedule", "milestones", "decay", "steps", "eval_every", "stop_when_solved", "init")
KEEP_PROGRAMS = 8  # a JAX worker keeps its 8 latest configs' programs (jax_impl/core.py)
FORMAT = 2  # of the cache file; another is ignored, and rewritten
MAX_CONTENTION = 0.9  # a share measured above this says little about the core's own speed


@dataclasses.dataclass(frozen=True)
class Figures:
    """One shape's measured costs, in seconds of a core of its own: measured while other processes
    had a share c of the cores (timing.contention), times (1 - c). On the shared 2-core box that
    share moved a step's time 2x between calibration and sweep; so normalised, the figures put
    the digits sweep's runs, each at its own share, within 5 % of their wall time."""
    fixed_s: float
    compile_s: float  # a worker's first run of a config (0: eager)
    first_step_s: float
    step_s: float
    eval_s: float  # one eval

    def run_s(self, cfg, compiled: bool = False) -> float:
        """A run of `cfg` (this shape) in a warm worker; `compiled`: its worker holds the config's programs."""
        evals = -(-cfg.steps // cfg.eval_every)  # every eval_every steps, and at the last
        return (self.fixed_s + (0.0 if compiled else self.compile_s) + self.first_step_s
                + (cfg.steps - 1) * self.step_s + evals * self.eval_s)


def shape(run: Run) -> str:
    """The cache's key for what a run's steps cost: its backend and its config less NOT_SHAPE."""
    default = type(run.config)()
    fields = {f.name for f in dataclasses.fields(run.config)}
    normal = run.config.replace(**{k: getattr(default, k) for k in NOT_SHAPE if k in fields})
    return f"{run.backend} {normal.to_json()}"


def worker_key(run: Run) -> str:
    """The worker process a run needs (compare.runner.Worker's key)."""
    return f"{run.backend} threads={host_threads(run.config)} device={run.config.device}"


def machine(device: str) -> dict[str, Any]:
    """What the figures hold for: this CPU, device, cores, instruction-set caps and versions."""
    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    # JAX's persistent cache turned off (ADDER_JAX_CACHE=''): every compile is cold, another machine.
    uncached = {"jax_cache": "off"} if os.environ.get("ADDER_JAX_CACHE") == "" else {}
    return {"cpu": cpu.model(), "isa_caps": cpu.caps_in_force(), "cores": len(available_cores()),
            "device": device, "python": platform.python_version(),
            **{name: installed(name) for name in ("jax", "jaxlib", "torch")}, **uncached}


def cache_dir() -> Path:
    """The user's cache (XDG), never the repository: figures are the machine's, not the project's."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnn-adder" / "estimates"


class Book:
    """One machine's calibrated figures: shapes and worker starts, a JSON file in cache_dir()."""

    def __init__(self, device: str, folder: Path | None = None):
        self.machine = machine(device)
        digest = hashlib.sha1(json.dumps(self.machine, sort_keys=True).encode()).hexdigest()[:16]
        self.path = (folder or cache_dir()) / f"{digest}.json"
        self.shapes: dict[str, Figures] = {}
        self.starts: dict[str, float] = {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") == FORMAT:
                self.shapes = {k: Figures(**v) for k, v in data["shapes"].items()}
                self.starts = data["starts"]
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass  # none yet, or unreadable: calibrate afresh

    def save(self) -> None:
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"format": FORMAT, "machine": self.machine, "starts": self.starts,
                                            "shapes": {k: dataclasses.asdict(v) for k, v in self.shapes.items()}},
                                           indent=1) + "\n")

    def missing(self, runs: list[Run]) -> list[Run]:
        """One run of each shape the book has no figures for."""
        return list({shape(r): r for r in runs if shape(r) not in self.shapes}.values())

    def unit_s(self, unit: list[Run]) -> float | None:
        """A unit's seconds in a warm worker that has not compiled it; None if uncalibrated. A
        vmapped group is counted as its seeds one by one (an upper bound on a CPU)."""
        figures = [self.shapes.get(shape(r)) for r in unit]
        return None if None in figures else sum(f.run_s(r.config) for f, r in zip(figures, unit))


def order(book: Book):
    """The runner's sort key for longest first: calibrated units by their seconds; uncalibrated
    ones before them, by a work proxy (steps x positions x layers x hidden^2), as the likely long."""
    def key(unit: list[Run]) -> tuple[int, float]:
        seconds = book.unit_s(unit)
        if seconds is not None:
            return 0, seconds
        cfg = unit[0].config
        positions = getattr(cfg, "positions", None) or getattr(cfg, "max_len", 1)
        return 1, float(len(unit) * cfg.steps * positions * cfg.layers * cfg.hidden ** 2)
    return key


@dataclasses.dataclass
class Forecast:
    """A sweep's expected wall time on its slots, and what it leaves out."""
    wall_s: float  # of the calibrated runs, laid out on the slots
    jobs: int
    runs: int
    by_sweep: dict[str, float]  # seconds of work (all slots together)
    by_config: collections.Counter  # (sweep, label) -> seconds of work, both backends
    uncalibrated: list[Run]  # runs left out: their shapes have no figures
    capped: int  # stop_when_solved runs, counted at their cap
    contention: float = 0.0  # the share of the slots' cores other processes are expected to take
    calibrated: int = 0  # shapes measured for this forecast
    calibration_s: float = 0.0

    def lines(self, where: str) -> list[str]:
        work = sum(self.by_sweep.values()) or 1.0
        head = (f"estimate: {_duration(self.wall_s)} wall for {self.runs - len(self.uncalibrated)} runs at "
                f"{self.jobs} job(s) on {where}")
        if self.contention:
            head += f", other processes taking ~{self.contention:.0%} of its cores"
        if self.calibrated:
            head += f" (calibrated {self.calibrated} shape(s) just now, in {self.calibration_s:.0f} s)"
        lines = [head]
        if len(self.by_sweep) > 1:  # each sweep's share of the wall time, by its share of the work
            lines.append("  by sweep: " + ", ".join(f"{name} {_duration(s / work * self.wall_s)}"
                                                   for name, s in sorted(self.by_sweep.items(), key=lambda x: -x[1])))
        top = self.by_config.most_common(3)
        if top:
            lines.append("  most of it: " + ", ".join(f"{sweep} {label or '(one config)'} {s / work:.0%}"
                                                    for (sweep, label), s in top))
        left = ["follow-ups (controls, float64: only for configs whose curves part)"]
        if self.capped:
            left.append(f"{self.capped} run(s) stop when solved: counted at their cap, an upper bound")
        if self.uncalibrated:
            shapes = len({shape(r) for r in self.uncalibrated})
            left.append(f"{len(self.uncalibrated)} run(s) of {shapes} uncalibrated shape(s): not counted")
        lines.append("  not in it: " + "; ".join(left))
        return lines


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def forecast(runs: list[Run], book: Book, jobs: int, vmap_seeds: bool = False, contention: float = 0.0) -> Forecast:
    """Lay the runs' units out on `jobs` slots as LocalEngine does (longest first, each unit to
    the slot that frees first, lowest slot on a tie), charging a worker's start where a slot
    starts one and a compile where its worker does not hold the config's programs; the runs slowed
    by `contention`, the share of their cores other processes are expected to take (expected())."""
    slow = 1 / (1 - min(MAX_CONTENTION, contention))
    units = sorted(work_units(runs, vmap_seeds), key=order(book), reverse=True)
    free = [0.0] * jobs
    workers: list[dict[str, tuple[str, collections.OrderedDict]]] = [{} for _ in range(jobs)]
    by_sweep: dict[str, float] = collections.defaultdict(float)
    by_config: collections.Counter = collections.Counter()
    uncalibrated = []
    for unit in units:
        figures = [book.shapes.get(shape(r)) for r in unit]
        if None in figures:
            uncalibrated += unit
            continue
        slot = min(range(jobs), key=free.__getitem__)
        first = unit[0]
        key, held = workers[slot].get(first.backend, (None, collections.OrderedDict()))
        cost = 0.0
        if key != worker_key(first):  # the runner replaces a slot's worker of another kind
            key, held = worker_key(first), collections.OrderedDict()
            cost += book.starts.get(key, 0.0)
        program = (first.backend, first.config.replace(seed=0))
        compiled = program in held
        held[program] = True
        held.move_to_end(program)
        while len(held) > KEEP_PROGRAMS:
            held.popitem(last=False)
        workers[slot][first.backend] = key, held
        runs_s = slow * sum(f.run_s(r.config, compiled or k > 0) for k, (f, r) in enumerate(zip(figures, unit)))
        free[slot] += cost + runs_s
        by_sweep[first.sweep] += cost + runs_s
        by_config[(first.sweep, first.label)] += cost + runs_s
    capped = sum(bool(getattr(r.config, "stop_when_solved", False)) for r in runs)
    return Forecast(max(free, default=0.0), jobs, len(runs), dict(by_sweep), by_config, uncalibrated, capped,
                    contention)


def calibration_config(run: Run, steps: int = CALIBRATION_STEPS, every: int = CALIBRATION_EVERY):
    """The run's shape as a short run: NOT_SHAPE at its defaults, `steps` steps, an eval every `every`."""
    default = type(run.config)()
    fields = {f.name for f in dataclasses.fields(run.config)}
    return run.config.replace(**{**{k: getattr(default, k) for k in NOT_SHAPE if k in fields},
                                 "steps": steps, "eval_every": every})


def figures(record: dict[str, Any], probe: dict[str, Any] | None, extra_build_s: float = 0.0) -> Figures:
    """A shape's figures from its calibration record (a run of CALIBRATION_STEPS) and, where it
    compiled afresh, its probe's (one step in a fresh worker: the compile a cache hit costs).
    `extra_build_s`: what the record's build paid once for its worker (PyTorch's first optimizer)."""
    t = record["timing"]
    evals = max(1, len(record["curve"]))
    start = (t.get("startup_s") or 0.0) + extra_build_s if not record.get("warm") else 0.0
    compile_s = t["compile_s"] or 0.0
    fixed = record["wall_s"] - start - compile_s - t["train_s"] - t["eval_s"]
    probe_compile = probe["timing"]["compile_s"] if probe and probe["status"] != "error" else None
    own = 1 - min(MAX_CONTENTION, t.get("contention") or 0.0)  # the share of its core the run had
    probe_own = 1 - min(MAX_CONTENTION, probe["timing"].get("contention") or 0.0) if probe_compile is not None else own
    return Figures(fixed_s=max(0.0, fixed) * own,
                   compile_s=probe_compile * probe_own if probe_compile is not None else compile_s * own,
                   first_step_s=t["first_step_s"] * own, step_s=t["step_s_median"] * own,
                   eval_s=t["eval_s"] / evals * own)


def calibrate(runs: list[Run], book: Book, jobs: int, console: Console) -> tuple[int, float]:
    """Measure the shapes of `runs` the book lacks, in warm workers on `jobs` slots (compare.runner,
    into a temporary folder), and save them; returns (shapes measured, seconds taken). A shape
    whose calibration run fails is left uncalibrated."""
    todo = book.missing(runs)
    if not todo:
        return 0, 0.0
    start = time.perf_counter()
    cal = {shape(r): Run("calibrate", r.backend, calibration_config(r), ()) for r in todo}
    with tempfile.TemporaryDirectory(prefix="rnn-estimate-") as tmp:
        done = execute(list(cal.values()), Path(tmp) / "shapes", jobs, console, title="calibrating the estimate")
        records = {s: done.get(r.key) for s, r in cal.items()}
        ok = {s: rec for s, rec in records.items() if rec and rec["status"] != "error"}
        # The shapes that compiled afresh, again for one step in fresh workers: their compile is
        # now a cache hit, as the sweep's will be (one that was a hit already is its own probe).
        probes = {s: Run("calibrate", cal[s].backend, calibration_config(cal[s], 1, 1), ())
                  for s, rec in ok.items()
                  if rec["timing"]["compile_s"] is not None and rec["timing"].get("compile_cache") != "hit"}
        done = execute(list(probes.values()), Path(tmp) / "probes", jobs, console,
                       title="calibrating compiles") if probes else {}
    typical = {}  # each backend's build of a run in a warm worker
    for backend in {rec["backend"] for rec in ok.values()}:
        builds = [r["timing"]["build_s"] for r in ok.values() if r["backend"] == backend and r.get("warm")]
        typical[backend] = statistics.median(builds) if builds else None
    starts = collections.defaultdict(list)
    for s, rec in ok.items():
        warm_build = typical[rec["backend"]]
        extra = 0.0 if rec.get("warm") or warm_build is None else max(0.0, rec["timing"]["build_s"] - warm_build)
        probe = probes.get(s)
        book.shapes[s] = figures(rec, done.get(probe.key) if probe else None, extra)
        if not rec.get("warm"):
            starts[worker_key(cal[s])].append((rec["timing"].get("startup_s") or 0.0) + extra)
    book.starts.update({k: statistics.median(v) for k, v in starts.items()})
    book.save()
    return len(ok), time.perf_counter() - start


def expected_contention(jobs: int, seconds: float = 1.0) -> float:
    """The share of its cores other processes should take from a sweep of `jobs` slots, from how
    many threads they keep runnable now (/proc/stat procs_running, sampled over `seconds` while
    this process waits): fair_share(). Measured on the shared 2-core box, an idle-busy share
    could not tell 2 other threads from 5 (both fill the cores); the count can."""
    samples = []
    for _ in range(20):
        try:
            with open("/proc/stat") as f:
                running = next(int(line.split()[1]) for line in f if line.startswith("procs_running"))
        except (OSError, StopIteration, ValueError):
            return 0.0  # not Linux: assume the machine is the sweep's
        samples.append(running - 1)  # this process, reading
        time.sleep(seconds / 20)
    return fair_share(statistics.mean(samples), jobs, len(available_cores()))


def fair_share(others: float, jobs: int, cores: int) -> float:
    """What the scheduler leaves to `others` runnable threads of a slot's core when `jobs` slots
    run on `cores` cores: nothing while all fit, else each thread's fair share is cores / threads."""
    threads = others + jobs
    return 0.0 if threads <= cores else 1 - cores / threads


def contention_seen(records: list[dict[str, Any] | None]) -> float | None:
    """The median share of their cores other processes took from these runs (timing.contention)."""
    seen = [r["timing"]["contention"] for r in records
            if r and r.get("timing") and r["timing"].get("contention") is not None]
    return statistics.median(seen) if seen else None


def verdict(estimate_s: float, measured_s: float, expected: float = 0.0, seen: float | None = None) -> str:
    """The estimate against the wall time measured, for the sweep's last lines and its report;
    with the share of the cores other processes were expected to take and took (the estimate's
    largest error on a shared machine)."""
    off = (estimate_s - measured_s) / measured_s if measured_s > 0 else 0.0
    share = f"; other processes' share of the cores: {expected:.0%} expected, {seen:.0%} seen" if seen is not None else ""
    return f"estimated {_duration(estimate_s)}, measured {_duration(measured_s)} ({off:+.0%}){share}"
