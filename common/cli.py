"""The command line both backends share: `python -m jax_impl …` and `python -m torch_impl …`,
for every workload (`--task`, common/tasks.py; each task's run is its `command` module).

Flags are defined once, from the workloads' config fields. Bad input of any kind (flags, config
file, --out) ends in one line on stderr and exit status 2, before anything is written or trained
(common/app.py: the rules every command of the project shares).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from absl import flags
from rich.console import Console

from common import backends, tasks
from common.app import check_out_dir, check_writable, define_field_flags, fail, run_app
from common.checkpoint import Checkpointing
from common.config import MAX_SEEDS_PER_PROGRAM, ConfigError, RunConfig
from common.files import WriteFailed, write_atomic
from common.records import error_record
from common.threads import host_threads

FLAGS = flags.FLAGS


def command(task: tasks.Task) -> ModuleType:
    """The task's command-line run (`Task.command`: HELP, run)."""
    return importlib.import_module(task.command)


def _fields(task: tasks.Task) -> list[dataclasses.Field]:
    return list(dataclasses.fields(task.config))


def _shared_defaults(task: tasks.Task) -> str:
    """Where a task's defaults for the flags defined by the default task differ, for --help."""
    default = tasks.TASKS[tasks.DEFAULT].config()
    own = task.config()
    return ", ".join(f"{f.name}={getattr(own, f.name)}" for f in _fields(task)
                     if hasattr(default, f.name) and getattr(default, f.name) != getattr(own, f.name))


def define_flags() -> None:
    """One absl flag per config field of every task, typed and defaulted from the first task
    that has it (the default task first: its flags read as they always did), plus I/O flags."""
    defined: set[str] = set()
    for task in sorted(tasks.TASKS.values(), key=lambda t: t.name != tasks.DEFAULT):
        fields = [f for f in _fields(task) if f.name not in defined]
        define_field_flags(fields, task.config(), task.config.CHOICES, command(task).HELP)
        defined |= {f.name for f in fields}
    about = "; ".join(f"{t.name}: {t.about}" + (f" (its defaults for shared flags: {_shared_defaults(t)})"
                                                  if t.name != tasks.DEFAULT else "")
                      for t in tasks.TASKS.values())
    flags.DEFINE_enum("task", tasks.DEFAULT, list(tasks.TASKS), about)
    flags.DEFINE_string("config", None, "JSON config file; flags given on the command line override it")
    flags.DEFINE_string("out", None, "write the run record (JSON) to this file")
    # Not config fields: they change whether a rerun resumes, never what a run computes (a
    # run's results key and JAX's program cache are keyed by the config).
    flags.DEFINE_integer("checkpoint_every", 0, "save a checkpoint every this many steps into "
                         "--checkpoint_dir (0: none); a rerun of the same config resumes from the latest, "
                         "a finished run deletes them (one seed)")
    flags.DEFINE_string("checkpoint_dir", None, "folder of --checkpoint_every's checkpoints")


def checkpointing_from_flags(seeds: int = 1) -> Checkpointing:
    """--checkpoint_every and --checkpoint_dir, checked (ConfigError) before anything is built;
    creates nothing."""
    checkpointing = Checkpointing(every=FLAGS.checkpoint_every, dir=FLAGS.checkpoint_dir or "")
    if checkpointing.on:
        checkpointing.check_group(seeds)
        check_out_dir(Path(checkpointing.dir), "--checkpoint_dir")
    return checkpointing


def config_from_flags(task: tasks.Task) -> RunConfig:
    """The task's config: its --config file, if any, then the flags given on the command line;
    unset fields take the task's defaults. Another task's own flag is refused, by name."""
    own = {f.name for f in _fields(task)}
    for other in tasks.TASKS.values():
        wrong = [f"--{f.name}" for f in _fields(other) if f.name not in own and FLAGS[f.name].present]
        if wrong:
            raise ConfigError(f"{wrong[0]}: a flag of --task {other.name}, not of --task {task.name}")
    values: dict[str, Any] = {}
    if FLAGS.config:
        try:
            values = task.config.from_json(Path(FLAGS.config).read_text(encoding="utf-8")).to_dict()
        except OSError as e:
            raise ConfigError(f"--config={FLAGS.config}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"--config={FLAGS.config}: not UTF-8 text (byte {e.start}: "
                              f"{e.object[e.start:e.start + 1]!r})") from None
    values.update({name: FLAGS[name].value for name in own if FLAGS[name].present})
    for name in task.config.TUPLES:  # absl list flags arrive as strings
        if isinstance(values.get(name), list) and all(isinstance(m, str) for m in values[name]):
            try:
                values[name] = [int(m) for m in values[name]]
            except ValueError:
                raise ConfigError(f"{name}={','.join(values[name])}: must be whole numbers") from None
    return task.config.from_dict(values)


# A worker's exit status when it trained but could not write its run record (disk full, folder
# gone): the harness tells this apart from a failed run.
EXIT_NO_RECORD = 3


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """A run's record file: one record, or a JSON list for seeds trained together."""
    write_atomic(path, json.dumps(records if len(records) > 1 else records[0], indent=1) + "\n")


def serve(backend: str, cfg: RunConfig) -> None:
    """A warm worker of compare.run: start the framework once, pinned and configured for
    `cfg`'s threads and device, then run one request after another, of any task, read as JSON
    lines on stdin: {"task": name, "config": {...}, "seeds": K, "out": record file, "log": log
    file}, and optionally "checkpoint": {"every": N, "dir": folder} (one seed only: save a
    checkpoint every N steps into the folder and resume from the latest one there;
    common/checkpoint.py; a bad value makes the run's error records, "refused: …"). Each run's
    records are written to "out" as the one-shot command line writes them, and a line {"done":
    out} (or {"no_record": why}) is answered on the original stdout; everything else printed
    goes to stderr. A run that raises becomes its error records and the worker goes on."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints of the frameworks and ours cannot garble the replies
    backends.start(backend, cfg)  # import and start the framework now, before the first request
    pinned = (host_threads(cfg), cfg.device)
    first = True  # the first run also waited for the process to start: its startup_s says so
    for line in sys.stdin:
        requested_at, first = (None if first else time.time()), False
        # What earlier runs left must not be work for this run's collector: measured, a warm JAX
        # worker stepped ~3 % slower than a fresh process without this (README "Speed").
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        request = json.loads(line)
        task = tasks.of(request)
        run_cfg = task.config.from_dict(request["config"])
        seeds = request["seeds"]
        cfgs = [run_cfg.replace(seed=run_cfg.seed + k) for k in range(seeds)]
        with open(request["log"], "w") as log:
            console = Console(file=log, highlight=False, width=120)
            if (host_threads(run_cfg), run_cfg.device) != pinned:
                records = [error_record(backend, c, f"worker pinned for {pinned} got a run for "
                                                    f"{(host_threads(run_cfg), run_cfg.device)}") for c in cfgs]
            elif seeds > 1 and not hasattr(backends.module(backend, task.trainer_module), "SeedGroup"):
                # Never one record for several seeds: the driver would lose the others unnoticed.
                records = [error_record(backend, c, f"refused: {seeds} seeds in one request; {backend} trains "
                                                    f"one {run_cfg.task} seed at a time") for c in cfgs]
            else:
                try:
                    checkpointing = Checkpointing.from_dict(request.get("checkpoint"))
                    checkpointing.check_group(seeds)
                    records = command(task).run(backend, run_cfg, console, seeds, requested_at, checkpointing)
                except ConfigError as e:  # bad data, does not fit this GPU, a bad "checkpoint"
                    records = [error_record(backend, c, f"refused: {e}") for c in cfgs]
            for record in records:
                if record["status"] == "error":
                    console.print(f"seed {record['config']['seed']}: error: {record['error']}")
        try:
            write_records(Path(request["out"]), records)
            replies.write(json.dumps({"done": request["out"]}) + "\n")
        except WriteFailed as e:
            replies.write(json.dumps({"no_record": str(e)}) + "\n")


def run_backend(backend: str) -> None:
    """`python -m <backend>_impl`: one run of any task, its summary, and its record in --out; or
    (--serve) a warm worker of compare.run."""
    groups = any(backend in task.config.SEED_GROUPS for task in tasks.TASKS.values())

    def define() -> None:
        define_flags()
        flags.DEFINE_bool("serve", False, "internal (compare.run's warm workers): run the configs read "
                          "as JSON lines on stdin, one after another, in this process")
        if groups:
            flags.DEFINE_integer("vmap_seeds", 1, "train seeds seed … seed+K-1 together in one compiled "
                                 f"program (jax.vmap; at most {MAX_SEEDS_PER_PROGRAM}); --out then holds "
                                 "a JSON list of K records")

    def main(argv: list[str]) -> None:
        task = tasks.TASKS[FLAGS.task]
        seeds = FLAGS.vmap_seeds if groups else 1
        try:
            if not 1 <= seeds <= MAX_SEEDS_PER_PROGRAM:
                raise ConfigError(f"--vmap_seeds={seeds}: must be in [1, {MAX_SEEDS_PER_PROGRAM}]")
            if seeds > 1 and backend not in task.config.SEED_GROUPS:
                raise ConfigError(f"--vmap_seeds={seeds}: {backend} trains one {task.name} seed at a time")
            cfg = config_from_flags(task)
            checkpointing = checkpointing_from_flags(seeds)
            if FLAGS.serve:
                if checkpointing.on:
                    raise ConfigError(f"--checkpoint_every={checkpointing.every} with --serve: a "
                                      "request's \"checkpoint\" field asks for checkpoints")
                return serve(backend, cfg)
            out = check_writable(FLAGS.out) if FLAGS.out else None
            console = Console(highlight=False)
            records = command(task).run(backend, cfg, console, seeds, checkpointing=checkpointing)
        except ConfigError as e:
            fail(str(e))
        errors = {r["error"] for r in records if r["status"] == "error"}
        if errors:
            print("\n".join(f"error: {e}" for e in sorted(errors)), file=sys.stderr)
        if out:
            try:
                write_records(out, records)
            except WriteFailed as e:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(EXIT_NO_RECORD)
            console.print(f"run record{'s' if len(records) > 1 else ''} written to {out}")
        sys.exit(1 if errors else 0)

    run_app(main, define, may_be_empty=sorted({f.name for task in tasks.TASKS.values() for f in _fields(task)
                                               if isinstance(f.default, tuple)}))
