"""The sentiment model's speed (compare.bench's text cases): padded batches of 64 texts whose
lengths are drawn uniformly from 50..400 tokens, a 25,000-word vocabulary of 100-d vectors (the
lab's GloVe size, kept frozen), every cell at hidden 256 and 1024.

Two kinds of batch, timed in interleaved blocks in one process: *random* (64 texts of any
length, as an unsorted loader gives them) and *bucketed* (64 texts of similar length, as our
training batches are: common.sentiment.dataset). JAX's masked scan and PyTorch's padded batch
(our default) compute every position of the padded batch, so bucketing is the lever that cuts
their pad work; PyTorch also runs the lab's packed sequence (`--pack`), which computes only real
tokens but whose CPU backward is slow (pytorch/pytorch#149194). Achieved GFLOP/s counts the
FLOPs of real tokens only, the work the task needs, so padding shows as lost efficiency.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from common import backends
from common.params import GATES
from common.sentiment.config import TextConfig
from common.sentiment.dataset import TextBatch, padded_width
from compare.bench.core import matmul_peak, time_arms

BATCH, SHORTEST, LONGEST, VOCAB, DIM = 64, 50, 400, 25_000, 100
CASES = {f"text-{cell}-{hidden}": TextConfig(cell=cell, hidden=hidden, batch_size=BATCH, max_len=LONGEST)
         for hidden in (256, 1024) for cell in ("rnn", "lstm", "gru")}
QUICK_CASES = ("text-rnn-256",)
PACKED_CPU_BELOW = 1024  # hidden sizes at which the bench also times PyTorch's packed sequence on a CPU


def _batch(lengths: np.ndarray, rng: np.random.Generator) -> TextBatch:
    lengths = np.sort(lengths)[::-1].astype(np.int32)
    ids = np.zeros((len(lengths), min(padded_width(int(lengths.max())), LONGEST)), np.int32)  # as max_len caps
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(2, VOCAB, n)
    return TextBatch(ids, lengths, rng.integers(0, 2, len(lengths)).astype(np.int32))


def batches(kind: str, count: int = 4, seed: int = 0) -> list[TextBatch]:  # count: a timed block's steps
    """`count` batches of BATCH texts: random lengths, or one length bucket each, as our training
    batches are (a pool of 10 batches sorted by length and cut into 10 buckets; `count` of them,
    evenly spread from the shortest to the longest)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return [_batch(rng.integers(SHORTEST, LONGEST + 1, BATCH), rng) for _ in range(count)]
    pool = np.sort(rng.integers(SHORTEST, LONGEST + 1, BATCH * 10))
    picks = np.linspace(0, 9, count).round().astype(int)
    return [_batch(pool[k * BATCH:(k + 1) * BATCH], rng) for k in picks]


def flops_per_step(cfg: TextConfig, tokens: float) -> float:
    """Matmul FLOPs of a training step over `tokens` tokens: forward, and twice that backward."""
    per_token = sum(2 * GATES[cfg.cell] * cfg.hidden * ((DIM if k == 0 else cfg.hidden) + cfg.hidden)
                    for k in range(cfg.layers))
    return 3 * per_token * tokens + 3 * 2 * cfg.hidden * BATCH  # + the head, once per text


def pad_share(batch: TextBatch) -> float:
    """The share of a padded batch's positions that are padding."""
    return 1 - float(batch.lengths.sum()) / batch.ids.size


def worker(backend: str, case: str, device: str, threads: int, quick: bool) -> dict[str, Any]:
    """One backend on one text case: build, compile (JAX: every width the batches have), a first
    step, then the two kinds of batch in interleaved blocks."""
    cfg = CASES[case].replace(device=device, threads=threads)
    start = time.perf_counter()
    sentiment = backends.module(backend, "sentiment")
    import_s = time.perf_counter() - start
    embedding = np.random.default_rng(1).standard_normal((VOCAB, DIM)).astype(np.float32)
    kinds = {kind: batches(kind) for kind in ("random", "bucketed")}
    start = time.perf_counter()
    trainer = sentiment.Trainer(cfg, embedding)
    build_s = time.perf_counter() - start
    widths = sorted({b.ids.shape[1] for group in kinds.values() for b in group})
    compile_s = trainer.compile(widths, [])
    start = time.perf_counter()
    trainer.step(kinds["random"][0])
    trainer.loss()
    first_step_s = time.perf_counter() - start
    # A block steps through every batch of its kind once, so its time and the FLOPs counted (the
    # batches' mean) are of the same batches.
    blocks, block_steps = (2, 4) if quick else (3, 4)
    arms = {f"{kind}_step_s": (lambda i, group=group: trainer.step(group[i % len(group)]), trainer.loss)
            for kind, group in kinds.items()}
    # The lab's idiom beside our default, a packed sequence (cfg.pack), where it is affordable:
    # on a CPU its backward (pytorch/pytorch#149194) takes 15 s (rnn) to minutes a step at 1024.
    if backend == "torch" and (trainer.env()["device"] == "gpu" or cfg.hidden < PACKED_CPU_BELOW):
        packed = sentiment.Trainer(cfg.replace(pack=True), embedding)
        packed.step(kinds["random"][0])
        arms.update({f"packed_{kind}_step_s": (lambda i, group=group: packed.step(group[i % len(group)]),
                                               packed.loss) for kind, group in kinds.items()})
    times = time_arms(arms, blocks, block_steps)
    packed_s = {k: statistics.median(v) for k, v in times.items() if k.startswith("packed_")}
    env = trainer.env()
    real = {kind: statistics.fmean(float(b.lengths.sum()) for b in group) for kind, group in kinds.items()}
    return {"backend": backend, "case": case, "import_s": import_s, "build_s": build_s, "data_s": None,
            "compile_s": compile_s, "first_step_s": first_step_s,
            "step_s": statistics.median(times["random_step_s"]), "step_s_all": times["random_step_s"],
            "bucketed_step_s": statistics.median(times["bucketed_step_s"]),
            "flops": flops_per_step(cfg, real["random"]), "bucketed_flops": flops_per_step(cfg, real["bucketed"]),
            "pad_share": statistics.fmean(pad_share(b) for b in kinds["random"]),
            "bucketed_pad_share": statistics.fmean(pad_share(b) for b in kinds["bucketed"]),
            **packed_s, "peak_gflops": matmul_peak(backend, trainer.device, env["device"]), "env": env}


def print_table(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Table(title="Sentiment model: batches of 64 texts of 50..400 tokens, random lengths vs length "
                        "buckets (GFLOP/s of real tokens only)")
    for col in ("case", "thr", "backend", "compile s", "random: step s", "pad", "GFLOP/s", "eff.",
                "bucketed: step s", "pad", "GFLOP/s", "eff.", "bucketed speed-up", "PyTorch packed: step s random/bucketed"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("case", "backend") else "right")
    f = lambda x, spec: "–" if x is None else f"{x:{spec}}"  # noqa: E731
    for r in rows:
        table.add_row(r["case"], str(r["threads"]), r["backend"], f(r["compile_warm_s"] or r["compile_cold_s"], ".2f"),
                      f(r["step_s"], ".3f"), f"{r['pad_share']:.0%}", f(r["gflops"], ".1f"),
                      f"{r['efficiency']:.0%}", f(r["bucketed_step_s"], ".3f"), f"{r['bucketed_pad_share']:.0%}",
                      f(r["bucketed_gflops"], ".1f"), f"{r['bucketed_efficiency']:.0%}",
                      f"x{r['step_s'] / r['bucketed_step_s']:.2f}",
                      f"{f(r.get('packed_random_step_s'), '.3f')} / {f(r.get('packed_bucketed_step_s'), '.3f')}")
    console.print(table)
    console.print("pad: the share of a padded batch's positions that are padding (JAX's masked scan and "
                  "PyTorch's padded batch compute them); eff. = GFLOP/s of real tokens over the same run's "
                  "matmul peak. Compile: JAX, every batch width (warm cache; cold on the first repeat). "
                  "PyTorch packed: the lab's pack_padded_sequence (--pack), which computes real tokens only.")
