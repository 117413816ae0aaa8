"""The adder on the backends' command line (`python -m jax_impl …`, common/cli.py) and in
compare.run's warm workers: one config's seeds trained on one backend, their records and
summaries. common/sentiment/run.py is the sentiment task's twin (common.tasks.Task.command).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from common import backends, memory
from common.app import one_line, training_progress
from common.checkpoint import Checkpointing
from common.config import MAX_LAYERS, Config
from common.loop import fit_lockstep
from common.records import environment, error_record, process_age, run_record, timestamp
from common.tasks import ADDER
from common.threads import thread_policy
from common.training import Alone

# Flag help of the config's fields (common/cli.py makes one flag of each); the shared fields'
# help is here too: the adder is the default task, and its flags are everyone's.
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
    "unroll": "JAX: positions per lax.scan iteration (1: a loop; 0: fully unrolled); may change the "
              "last bits of a result, so it is part of the run's key when set",
    "steps_per_call": "JAX: training steps per compiled call (a scan over K batches made on the host); "
                      "steps and eval_every must be multiples of it",
    "graphs": "PyTorch on a GPU: capture the whole training step once and replay it as one CUDA graph "
              "(elsewhere: the eager step, and the record's env says so)",
}


def run(backend: str, cfg: Config, console: Console, seeds: int = 1, requested_at: float | None = None,
        checkpointing: Checkpointing | None = None) -> list[dict[str, Any]]:
    """Train seeds cfg.seed … cfg.seed + seeds - 1 of one config on one backend; their run records,
    each summarised on `console` as it ends.

    Several seeds share one compiled program (the trainer module's SeedGroup: JAX vmap) and
    advance together. Bad input and a config that cannot fit raise ConfigError before anything
    is trained; a failure once the backend has started (building the model included) becomes
    the records' `error`. `timing.startup_s` is what the run waited for its process: since the
    process started, or (a warm worker) since the run was asked for at `requested_at`
    (time.time()). With `checkpointing` on (one seed), the run resumes from its latest checkpoint.
    """
    cfgs = [cfg.replace(seed=cfg.seed + k) for k in range(seeds)]
    memory.check(cfg, seeds)  # before the framework starts, then the GPU's own memory
    runtime, cores = backends.start(backend, cfg)
    memory.check(cfg, seeds, device_free=runtime.free_device_memory(cfg))
    trainers = backends.module(backend, ADDER.trainer_module)
    startup_s = time.time() - requested_at if requested_at is not None else process_age()
    started = timestamp()
    env = None
    try:
        build = time.perf_counter()
        group = trainers.SeedGroup(cfgs) if seeds > 1 else Alone(trainers.Trainer(cfg))
        build_s = time.perf_counter() - build
        env = environment(group.views[0].env(), cores, thread_policy(cfg))
        results = _train_with_progress(cfgs, group, console, checkpointing)
        for result in results:
            result["timing"].update(startup_s=startup_s, build_s=build_s)
    except Exception as e:  # a crash mid-run still yields records saying so
        return [error_record(backend, c, one_line(e), started, env) for c in cfgs]
    records = [run_record(backend, c, result, started, env) for c, result in zip(cfgs, results)]
    for record in records:
        console.print(summarise(record))
    return records


def _train_with_progress(cfgs: list[Config], group, console: Console,
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
