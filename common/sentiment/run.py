"""The sentiment workload on the backends' command line (`python -m jax_impl --task sentiment`,
common/cli.py) and in compare.run's warm workers: the twin of common/run.py (the adder's).
Flags the adder also has (cell, layers, hidden, lr, steps, seed, ...) are shared and keep their
meaning; a shared flag left unset takes the sentiment default, not the adder's."""

from __future__ import annotations

import functools
import time
from typing import Any

from rich.console import Console

from common import backends, memory
from common.app import one_line, training_progress
from common.checkpoint import Checkpointing
from common.config import ConfigError
from common.params import GATES
from common.records import environment, error_record, process_age, run_record, timestamp
from common.sentiment import DataError
from common.sentiment.config import TextConfig
from common.sentiment.dataset import TextData, load, padded_width
from common.sentiment.loop import fit
from common.tasks import SENTIMENT
from common.threads import thread_policy

# Flag help of the fields only this task has (common/cli.py; the shared ones are common/run.py's).
HELP = {
    "corpus": "sentiment: default = tweets and word vectors installed by the text extra; imdb = the "
              "aclImdb folder or aclImdb_v1.tar.gz; csv = a CSV/TSV with text and label columns",
    "corpus_path": "sentiment: the imdb folder/archive or the csv file",
    "vectors": "sentiment: GloVe-format word vectors (.txt, or .zip with --vectors_member); "
               "empty: the default corpus's vectors",
    "vectors_member": "sentiment: the vectors file inside the .zip (e.g. glove.6B.100d.txt)",
    "csv_text": "sentiment, csv: the text column",
    "csv_label": "sentiment, csv: the label column",
    "csv_positive": "sentiment, csv: the label of a positive text",
    "csv_negative": "sentiment, csv: the label of a negative text",
    "max_len": "sentiment: tokens kept from the start of each text",
    "max_size": "sentiment: vocabulary size (the most frequent training words)",
    "min_count": "sentiment: a word seen fewer times in training is <unk>",
    "train_embedding": "sentiment: train the word vectors too (default: keep them as they are)",
    "pack": "sentiment, PyTorch: pack each batch (pack_padded_sequence, the lab's code); default: the padded "
            "batch, reading each text's last real output (on a CPU the packed backward is 6-25x slower, "
            "pytorch/pytorch#149194)",
    "filler": "sentiment, default corpus: append this many tokens of neutral tweets to every text, so its "
              "label-bearing words sit that far from the end (a long-range memory test)",
    "eval_batch": "sentiment: test texts per eval batch",
}
def load_data(cfg: TextConfig) -> TextData:
    """The run's data, before any framework starts; bad data is a ConfigError (one line, exit 2)."""
    try:
        data = load(cfg)
    except DataError as e:
        raise ConfigError(str(e)) from None
    if cfg.batch_size > len(data.train):
        raise ConfigError(f"batch_size={cfg.batch_size}: must be between 1 and the {len(data.train)} training texts")
    check_memory(cfg, data)  # before the framework starts; run() checks a GPU's memory too
    return data


def run(backend: str, cfg: TextConfig, console: Console, seeds: int = 1, requested_at: float | None = None,
        checkpointing: Checkpointing | None = None) -> list[dict[str, Any]]:
    """Train one sentiment run on one backend (common/run.py's `run`, for this task): its record,
    summarised on `console`. Bad data, sizes that cannot fit and `seeds` > 1 (no backend trains
    several text seeds in one program) raise ConfigError before anything is trained. The data
    stay loaded for the next run of the same data (a warm worker: the run's controls, other
    seeds). With `checkpointing` on, the run resumes from its latest checkpoint, if any."""
    if seeds != 1:
        raise ConfigError(f"{seeds} seeds in one run: the {SENTIMENT.name} task trains one seed at a time")
    with console.status("preparing the data"):
        data = _cached_data(cfg.replace(control="none"))  # a control trains on its run's data
    runtime, cores = backends.start(backend, cfg)
    check_memory(cfg, data, device_free=runtime.free_device_memory(cfg))
    startup_s = time.time() - requested_at if requested_at is not None else process_age()
    started = timestamp()
    env = None
    try:
        build = time.perf_counter()
        trainer = backends.module(backend, SENTIMENT.trainer_module).Trainer(cfg, data.embedding)
        build_s = time.perf_counter() - build
        env = environment(trainer.env(), cores, thread_policy(cfg))
        outcome = _fit_with_progress(cfg, trainer, data, console, checkpointing)
        outcome["timing"].update(startup_s=startup_s, build_s=build_s)
    except Exception as e:  # a crash mid-run still yields a record saying so
        return [error_record(backend, cfg, one_line(e), started, env)]
    record = run_record(backend, cfg, outcome, started, env)
    console.print(summarise(record, data))
    return [record]


def _fit_with_progress(cfg: TextConfig, trainer, data: TextData, console: Console,
                       checkpointing: Checkpointing | None) -> dict[str, Any]:
    with training_progress(console, cfg.steps) as (progress, task):
        def on_eval(point: dict[str, Any]) -> None:
            line = (f"step {point['step']:>6}  loss {point['train_loss_mean']:.4g} (mean since the last "
                    f"eval; batch {point['loss']:.4g})  test acc {point['test_acc']:.4f}  test loss "
                    f"{point['test_loss']:.4f}  {point['elapsed_s']:.1f}s")
            progress.update(task, last=line)
            progress.console.print(line, highlight=False)

        return fit(cfg, trainer, data, on_step=lambda s: progress.update(task, completed=s), on_eval=on_eval,
                   checkpointing=checkpointing)


def summarise(record: dict[str, Any], data: TextData) -> str:
    cfg, t, final = record["config"], record["timing"], record["final"]
    what = f"{record['backend']} sentiment {cfg['cell']} {cfg['layers']}x{cfg['hidden']}, seed {cfg['seed']}"
    if record["status"] == "error":
        return f"{what}: error: {record['error']}"
    share = float(data.test.labels.mean())
    lines = [f"{what}: {len(data.train)} training / {len(data.test)} test texts, vocabulary {len(data.words)} "
             f"({data.missing} words without a pretrained vector)"]
    if record["status"] == "diverged":
        lines.append(f"  diverged (non-finite loss) at step {record['diverged_step']}")
    if record.get("best"):
        best = record["best"]
        lines.append(f"  best test accuracy {best['test_acc']:.4f} at step {best['step']} (within 1 point from "
                     f"step {best['step_within_1_point']}); always answering the majority class: "
                     f"{max(share, 1 - share):.4f}")
    if final["step"] is not None:
        lines.append(f"  final: step {final['step']}, test accuracy {final['test_acc']:.4f}, "
                     f"test loss {final['test_loss']:.4f}, training loss {final['loss']:.4g}")
    compile_s = f"{t['compile_s']:.2f} s ({t['compile_cache']})" if t["compile_s"] is not None else "none (eager)"
    lines.append(f"  compile {compile_s}, {t['steps_per_s']:.1f} steps/s (median), train {t['train_s']:.1f} s, "
                 f"eval {t['eval_s']:.1f} s")
    if t.get("resumed_from"):
        lines.append(f"  resumed from the checkpoint of step {', '.join(map(str, t['resumed_from']))}")
    return "\n".join(lines)


def memory_need(cfg: TextConfig, data: TextData) -> memory.Estimate:
    """Peak bytes of a sentiment run, counted as common/memory.py counts the adder's: weights with
    (when trained) their gradients and Adam's two moments, the activations a training batch
    keeps for backward at the widest batch, one eval batch, and the prepared arrays on the host."""
    item = 8 if cfg.dtype == "float64" else 4
    vocab, dim = data.embedding.shape
    width = padded_width(int(max(data.train.lengths.max(), data.test.lengths.max())))
    gates = GATES[cfg.cell]
    recurrent = sum(gates * cfg.hidden * ((dim if k == 0 else cfg.hidden) + cfg.hidden + 2)
                    for k in range(cfg.layers)) + cfg.hidden + 1
    embedding = vocab * dim
    weights = (4 * (recurrent + embedding) if cfg.train_embedding else 4 * recurrent + embedding) * item
    per_token = (dim + cfg.layers * cfg.hidden * (gates + 2)) * item
    device = weights + 2 * cfg.batch_size * width * per_token + cfg.eval_batch * width * per_token
    host = (data.train.ids.nbytes + data.test.ids.nbytes) * 2 + embedding * 4
    return memory.Estimate(device=device, host=host)


def check_memory(cfg: TextConfig, data: TextData, device_free: int | None = None) -> None:
    """ConfigError (one line, exit 2) if the run cannot fit; GPU runs pass the GPU's free bytes."""
    what = (f"sentiment {cfg.cell} with layers={cfg.layers}, hidden={cfg.hidden}, batch_size={cfg.batch_size}, "
            f"eval_batch={cfg.eval_batch}, vocabulary {len(data.words)} x {data.embedding.shape[1]}")
    memory.check_estimate(memory_need(cfg, data), what, device_free=device_free)


@functools.lru_cache(maxsize=2)
def _cached_data(cfg: TextConfig) -> TextData:
    return load_data(cfg)
