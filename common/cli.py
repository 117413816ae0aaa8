"""The command line both backends share: `python -m jax_impl …` and `python -m torch_impl …`.

Flags are defined once, from the Config fields. Bad input of any kind (flags, config file,
--out) ends in one line on stderr and exit status 2, before anything is written or trained
(common/app.py: the rules every command of the project shares).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from absl import flags
from rich.console import Console

from common import backends, memory, tasks
from common.app import check_out_dir, check_writable, define_field_flags, fail, one_line, run_app, training_progress
from common.checkpoint import Checkpointing
from common.config import CHOICES, MAX_LAYERS, MAX_SEEDS_PER_PROGRAM, Config, ConfigError
from common.files import WriteFailed, write_atomic
from common.loop import fit_lockstep
from common.records import environment, error_record, run_record, timestamp
from common.sentiment import run as sentiment
from common.threads import host_threads, pin_threads, thread_policy
from common.training import Alone

FLAGS = flags.FLAGS

HELP = {
    "digits": "digits per operand (sequences have digits + 1 positions)",
    "base": "number base, 2-36",
    "order": "lsb: least-significant digit first (as in the reports); msb: most-significant first",
    "data": "handout: train operands in [0, 55…5), test in [55…5, 99…9) (decimal); "
            "uniform: every digit uniform at random",
    "cell": "recurrent cell; none = embedding + linear only (the reports' ablation)",
    "layers": f"stacked recurrent layers (at most {MAX_LAYERS})",
    "hidden": "hidden size",
    "embed": "embedding size per operand digit",
    "activation": "rnn cell nonlinearity",
    "h0": "initial hidden state: zeros, N(0,1), 10*N(0,1), xavier or he normal",
    "carry_state": "use the previous batch's final hidden state as the next h0",
    "init": "shared: identical numpy-drawn weights in both backends; native: each framework's defaults",
    "lr": "Adam learning rate",
    "schedule": "constant, or multistep: lr *= decay at each milestone",
    "milestones": "steps at which multistep decays the learning rate",
    "decay": "multistep decay factor",
    "batch_size": "training sequences per step (a fresh random batch every step)",
    "steps": "training steps",
    "eval_every": "evaluate on the held-out set every this many steps",
    "eval_size": "held-out sums (fixed per seed)",
    "stop_when_solved": "stop at the first eval with every held-out sum right",
    "test_lengths": "after training, score fresh sums with these operand lengths (length generalisation)",
    "test_size": "sums per test length",
    "probe": "after training, fit a linear carry probe to each layer's hidden states",
    "control": "a rounding-noise control of this run: ulp nudges every initial weight by one ulp; "
               "reorder puts every batch's rows in a fixed other order (common/controls.py)",
    "seed": "seed for data, h0 and init",
    "dtype": "floating-point type of parameters and activations",
    "threads": "host cores to pin this process to; 0: 1 for a CPU run, up to 8 for a GPU run",
    "device": "auto picks a GPU when one is visible",
    "tf32": "allow TF32 matmuls on GPU (off: full fp32, as equivalence needs)",
}


def define_flags() -> None:
    """One absl flag per Config field, typed and defaulted from the dataclass, plus I/O flags."""
    define_field_flags(dataclasses.fields(Config), Config(), CHOICES, HELP)
    flags.DEFINE_enum("task", tasks.DEFAULT, list(tasks.TASKS), "adder: learn to add digit by digit; sentiment: classify "
                      f"texts over pretrained word vectors (its defaults for shared flags: {sentiment.shared_defaults()})")
    sentiment.define_flags()
    flags.DEFINE_string("config", None, "JSON config file; flags given on the command line override it")
    flags.DEFINE_string("out", None, "write the run record (JSON) to this file")
    # Not Config fields: they change whether a rerun resumes, never what a run computes (a
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


def config_from_flags() -> Config:
    wrong = sentiment.own_flags_given()
    if wrong:
        raise ConfigError(f"{wrong[0]}: a flag of --task sentiment, not of the adder")
    base: dict[str, Any] = {}
    if FLAGS.config:
        try:
            base = Config.from_json(Path(FLAGS.config).read_text(encoding="utf-8")).to_dict()
        except OSError as e:
            raise ConfigError(f"--config={FLAGS.config}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"--config={FLAGS.config}: not UTF-8 text (byte {e.start}: "
                              f"{e.object[e.start:e.start + 1]!r})") from None
    for field in dataclasses.fields(Config):
        if FLAGS[field.name].present or field.name not in base:
            base[field.name] = FLAGS[field.name].value
    for name in ("milestones", "test_lengths"):  # absl list flags arrive as strings
        if isinstance(base.get(name), list) and all(isinstance(m, str) for m in base[name]):
            try:
                base[name] = [int(m) for m in base[name]]
            except ValueError:
                raise ConfigError(f"{name}={','.join(base[name])}: must be whole numbers") from None
    return Config.from_dict(base)


def train_with_progress(cfgs: list[Config], group, console: Console,
                        checkpointing: Checkpointing | None = None) -> list[dict[str, Any]]:
    """fit_lockstep with a progress bar and one line per eval (per seed, when there are several)."""
    with training_progress(console, cfgs[0].steps) as (progress, task):
        def on_eval(k: int, point: dict[str, Any]) -> None:
            seed = f"seed {cfgs[k].seed}  " if len(cfgs) > 1 else ""
            line = (f"{seed}step {point['step']:>6}  loss {point['train_loss_mean']:.4g} (mean since the last "
                    f"eval; batch {point['loss']:.4g})  exact {point['exact_acc']:.4f}  digit {point['digit_acc']:.4f}"
                    f"  {point['elapsed_s']:.1f}s")
            progress.update(task, last=line)
            progress.console.print(line, highlight=False)

        return fit_lockstep(cfgs, group, on_step=lambda s: progress.update(task, completed=s),
                            on_eval=on_eval, checkpointing=checkpointing)


def summarise(record: dict[str, Any]) -> str:
    t, final = record["timing"], record["final"]
    cfg = record["config"]
    what = (f"{record['backend']} {cfg['cell']} {cfg['layers']}x{cfg['hidden']}, {cfg['digits']} digits, "
            f"seed {cfg['seed']}")
    if record["status"] == "error":
        return f"{what}: error: {record['error']}"
    solved = (f"100% exact at step {t['solve_step']} ({t['solve_s']:.2f} s)" if t["solve_step"]
              else "never reached 100% exact")
    if record["status"] == "diverged":
        solved = f"diverged (non-finite loss) at step {record['diverged_step']}"
    compile_s = f"{t['compile_s']:.2f} s" if t["compile_s"] is not None else "none (eager)"
    final_s = ("none" if final["exact_acc"] is None else
               f"exact {final['exact_acc']:.4f}, digit {final['digit_acc']:.4f}, loss {final['loss']:.4g}")
    lines = [
        f"{what}: {solved}",
        f"  final: {final_s}",
        f"  compile {compile_s}, first step {t['first_step_s']:.3f} s",
        f"  {t['steps_per_s']:.1f} steps/s (median), train {t['train_s']:.1f} s, eval {t['eval_s']:.1f} s",
    ]
    if t.get("resumed_from"):
        lines.append(f"  resumed from the checkpoint of step {', '.join(map(str, t['resumed_from']))}")
    if record.get("lengths"):
        lines.append("  other lengths (exact): " + ", ".join(
            f"{p['digits']} digits {p['exact_acc']:.3f}" for p in record["lengths"]))
    return "\n".join(lines)


def start_backend(backend: str, cfg: Config, seeds: int = 1):
    """For a process that runs this one config: pin it to the run's host cores, start the backend
    (frameworks size their thread pools when they start), and check that `seeds` seeds of the
    config fit in the memory of the device it picked (ConfigError if not). Returns (train module,
    cores)."""
    cores = pin_threads(host_threads(cfg))
    runtime = backends.module(backend, "runtime")
    runtime.configure_process(cfg)
    memory.check(cfg, seeds, device_free=runtime.free_device_memory(cfg))
    return backends.module(backend, "train"), cores


def process_age() -> float:
    """Seconds since this process started: interpreter start-up and imports included (kernel
    clock ticks, 10 ms resolution)."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def run(backend: str, cfg: Config, console: Console, seeds: int = 1,
        requested_at: float | None = None,
        checkpointing: Checkpointing | None = None) -> list[dict[str, Any]]:
    """Train seeds cfg.seed … cfg.seed + seeds - 1 of one config on one backend; their run records.

    Several seeds share one compiled program (train.SeedGroup: JAX vmap) and advance together.
    A failure once the backend has started (building the model included) becomes the records'
    `error`; bad input and a config that cannot fit raise ConfigError before.
    `timing.startup_s` is what the run waited for its process: since the process started, or
    (a warm worker) since the run was asked for at `requested_at` (time.time()).
    With `checkpointing` on (one seed), the run resumes from its latest checkpoint, if any.
    """
    cfgs = [cfg.replace(seed=cfg.seed + k) for k in range(seeds)]
    train, cores = start_backend(backend, cfg, seeds)
    startup_s = time.time() - requested_at if requested_at is not None else process_age()
    started = timestamp()
    env = None
    try:
        build = time.perf_counter()
        group = train.SeedGroup(cfgs) if seeds > 1 else Alone(train.Trainer(cfg))
        build_s = time.perf_counter() - build
        env = environment(group.views[0].env(), cores, thread_policy(cfg))
        results = train_with_progress(cfgs, group, console, checkpointing)
        for result in results:
            result["timing"].update(startup_s=startup_s, build_s=build_s)
    except Exception as e:  # a crash mid-run still yields records saying so
        return [error_record(backend, c, one_line(e), started, env) for c in cfgs]
    return [run_record(backend, c, result, started, env) for c, result in zip(cfgs, results)]


# A worker's exit status when it trained but could not write its run record (disk full, folder
# gone): the harness tells this apart from a failed run.
EXIT_NO_RECORD = 3


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """A run's record file: one record, or a JSON list for seeds trained together."""
    write_atomic(path, json.dumps(records if len(records) > 1 else records[0], indent=1) + "\n")


def serve(backend: str, cfg: Config) -> None:
    """A warm worker of compare.run: start the framework once, pinned and configured for
    `cfg`'s threads and device, then run one request after another, read as JSON lines on stdin:
    {"config": {...}, "seeds": K, "out": record file, "log": log file}, and optionally
    "checkpoint": {"every": N, "dir": folder} (one seed only: save a checkpoint every N steps
    into the folder and resume from the latest one there; common/checkpoint.py; a bad value
    makes the run's error records, "refused: …"). Each run's records are
    written to "out" as the one-shot command line writes them, and a line {"done": out} (or
    {"no_record": why}) is answered on the original stdout; everything else printed goes to
    stderr. A run that raises becomes its error records and the worker goes on."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints of the frameworks and ours cannot garble the replies
    start_backend(backend, cfg)  # import and start the framework now, before the first request
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
        text = task is tasks.SENTIMENT
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
                    if text:
                        records = [sentiment.serve_run(backend, run_cfg, console, checkpointing)]
                    else:
                        records = run(backend, run_cfg, console, seeds, requested_at, checkpointing)
                except ConfigError as e:  # does not fit this GPU, say; a bad "checkpoint"
                    records = [error_record(backend, c, f"refused: {e}") for c in cfgs]
                if not text:
                    for record in records:
                        console.print(summarise(record))
        try:
            write_records(Path(request["out"]), records)
            replies.write(json.dumps({"done": request["out"]}) + "\n")
        except WriteFailed as e:
            replies.write(json.dumps({"no_record": str(e)}) + "\n")


def run_backend(backend: str) -> None:
    def define() -> None:
        define_flags()
        flags.DEFINE_bool("serve", False, "internal (compare.run's warm workers): run the configs read "
                          "as JSON lines on stdin, one after another, in this process")
        if backend == "jax":
            flags.DEFINE_integer("vmap_seeds", 1, "train seeds seed … seed+K-1 together in one compiled "
                                 f"program (jax.vmap; at most {MAX_SEEDS_PER_PROGRAM}); --out then holds "
                                 "a JSON list of K records")

    def main(argv: list[str]) -> None:
        if FLAGS.task == tasks.SENTIMENT.name:
            return run_sentiment(backend)
        seeds = FLAGS.vmap_seeds if backend == "jax" else 1
        try:
            if not 1 <= seeds <= MAX_SEEDS_PER_PROGRAM:
                raise ConfigError(f"--vmap_seeds={seeds}: must be in [1, {MAX_SEEDS_PER_PROGRAM}]")
            cfg = config_from_flags()
            checkpointing = checkpointing_from_flags(seeds)
            if FLAGS.serve:
                if checkpointing.on:
                    raise ConfigError(f"--checkpoint_every={checkpointing.every} with --serve: a "
                                      "request's \"checkpoint\" field asks for checkpoints")
                return serve(backend, cfg)
            out = check_writable(FLAGS.out) if FLAGS.out else None
            memory.check(cfg, seeds)  # before the framework starts; start_backend checks a GPU too
            console = Console(highlight=False)
            records = run(backend, cfg, console, seeds, checkpointing=checkpointing)
        except ConfigError as e:
            fail(str(e))
        errors = {r["error"] for r in records if r["status"] == "error"}
        if errors:
            print("\n".join(f"error: {e}" for e in sorted(errors)), file=sys.stderr)
        for record in records:
            if record["status"] != "error":
                console.print(summarise(record))
        if out:
            try:
                write_records(out, records)
            except WriteFailed as e:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(EXIT_NO_RECORD)
            console.print(f"run record{'s' if seeds > 1 else ''} written to {out}")
        sys.exit(1 if errors else 0)

    run_app(main, define, may_be_empty=[f.name for f in dataclasses.fields(Config)
                                        if isinstance(f.default, tuple)])


def run_sentiment(backend: str) -> None:
    """`--task sentiment`: one run, its summary, and its record in --out."""
    try:
        if backend == "jax" and FLAGS.vmap_seeds != 1:
            raise ConfigError(f"--vmap_seeds={FLAGS.vmap_seeds}: the sentiment task trains one seed at a time")
        if FLAGS.serve:
            raise ConfigError("--serve: compare.run's workers run the adder only, for now")
        cfg = sentiment.config_from_flags()
        checkpointing = checkpointing_from_flags()
        out = check_writable(FLAGS.out) if FLAGS.out else None
        console = Console(highlight=False)
        with console.status("preparing the data"):
            data = sentiment.load_data(cfg)
        record = sentiment.run(backend, cfg, data, console, checkpointing)
    except ConfigError as e:
        fail(str(e))
    if record["status"] == "error":
        print(f"error: {record['error']}", file=sys.stderr)
    else:
        console.print(sentiment.summarise(record, data))
    if out:
        try:
            write_records(out, [record])
        except WriteFailed as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_NO_RECORD)
        console.print(f"run record written to {out}")
    sys.exit(1 if record["status"] == "error" else 0)
