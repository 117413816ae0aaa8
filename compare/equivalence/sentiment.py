"""Do the two backends compute the same sentiment classifier? (`python -m compare.equivalence
--task sentiment`.) The adder's checks (compare/equivalence/adder.py) on texts of mixed lengths: the
same shared weights and batches in both backends, then logits, loss and every gradient (the
embedding's included: it is trained here), an N-step Adam run, and padding invariance on each
backend. The bounds are the adder's: the same cells, parameterisation and optimiser.

The data are synthetic (random token ids of lengths 1..40 over a random 16-d embedding), made
here with numpy: the check is about the arithmetic, not the corpus, and needs no download.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from common import backends
from common.sentiment.config import TextConfig
from common.sentiment.dataset import Encoded, TextBatch, TextData, padded_width, train_batch
from compare.equivalence.core import RELU_FLOAT32_STEPS, STEPS, VARIANTS, Result, bounds_for, worst

VOCAB, DIM, LONGEST = 200, 16, 40
EXTRA_PAD = 24  # pad columns added for the padding check (beyond the ladder width)


def _split(rng: np.random.Generator, n: int) -> Encoded:
    lengths = rng.integers(1, LONGEST + 1, n).astype(np.int32)
    ids = np.zeros((n, LONGEST), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(2, VOCAB, length)
    return Encoded(ids, lengths, rng.integers(0, 2, n).astype(np.int32))


def synthetic_data(seed: int = 0) -> TextData:
    """256 training and 64 test texts of random tokens, lengths 1..40, over a random embedding."""
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal((VOCAB, DIM)).astype(np.float32)
    embedding[0] = 0
    words = tuple(["<pad>", "<unk>"] + [f"w{i}" for i in range(2, VOCAB)])
    return TextData(_split(rng, 256), _split(rng, 64), words, embedding, missing=0, undecodable=0)


def base_config(variant: str, layers: int, dtype: str, device: str = "cpu") -> TextConfig:
    steps = RELU_FLOAT32_STEPS if (variant, dtype) == ("rnn-relu", "float32") else STEPS
    return TextConfig(**VARIANTS[variant], layers=layers, hidden=32, dtype=dtype, device=device, threads=1,
                      batch_size=32, eval_batch=32, steps=steps, train_embedding=True)


def trainer(backend: str, cfg: TextConfig, data: TextData):
    return backends.module(backend, "sentiment").Trainer(cfg, data.embedding)


def _padded(batch: TextBatch) -> TextBatch:
    return TextBatch(np.pad(batch.ids, ((0, 0), (0, EXTRA_PAD))), batch.lengths, batch.labels)


def padding_gap(model, batch: TextBatch) -> float:
    """max |Δ logit| of one backend between the batch as it comes, the same texts with more pad
    columns, and each text alone in a batch of one (its own width)."""
    reference = model.logits(batch)
    alone = []
    for i in range(len(batch)):
        width = padded_width(int(batch.lengths[i]))
        alone.append(model.logits(TextBatch(batch.ids[i:i + 1, :width], batch.lengths[i:i + 1],
                                            batch.labels[i:i + 1]))[0])
    return float(max(np.abs(model.logits(_padded(batch)) - reference).max(),
                     np.abs(np.array(alone) - reference).max()))


@dataclasses.dataclass
class TextResult(Result):
    padding: float = 0.0  # worst padding_gap of the two backends

    def violations(self) -> list[str]:
        broken = super().violations()
        bound = bounds_for(self.variant, self.dtype, self.device).logits
        if not self.padding <= bound:
            broken.append(f"{self.variant} x{self.layers} {self.dtype}: padding changed a logit by "
                          f"{self.padding:.2e} > {bound:.0e}")
        return broken


# As compare/equivalence/adder.py's: no options; the lab's text models have 1 or 2 layers.
OPTIONS = ()
LAYERS = (1, 2)
OVER = "one batch of mixed lengths"


def check(variant: str, layers: int, dtype: str, device: str = "cpu") -> TextResult:
    cfg = base_config(variant, layers, dtype, device)
    data = synthetic_data()
    jax_t, torch_t = trainer("jax", cfg, data), trainer("torch", cfg, data)
    batch = train_batch(data, cfg.seed, 0, cfg.batch_size)
    logits = float(np.abs(jax_t.logits(batch) - torch_t.logits(batch)).max())
    (jax_loss, jax_grads), (torch_loss, torch_grads) = jax_t.gradients(batch), torch_t.gradients(batch)
    padding = max(padding_gap(jax_t, batch), padding_gap(torch_t, batch))
    gap = 0.0
    for step in range(1, cfg.steps + 1):
        batch = train_batch(data, cfg.seed, step, cfg.batch_size)
        jax_t.step(batch)
        torch_t.step(batch)
        gap = max(gap, abs(jax_t.loss() - torch_t.loss()) / abs(torch_t.loss()))
    return TextResult(variant, layers, dtype, logits, abs(jax_loss - torch_loss) / abs(torch_loss),
                      worst(jax_grads, torch_grads), trajectory=gap,
                      params=worst(jax_t.params(), torch_t.params()), steps=cfg.steps, device=device,
                      padding=padding)


def summary(results: list[TextResult]) -> list[dict[str, Any]]:
    """The worst figure of each kind per dtype, and where it was."""
    rows = []
    for dtype in sorted({r.dtype for r in results}):
        of = [r for r in results if r.dtype == dtype]
        row: dict[str, Any] = {"dtype": dtype}
        for what in ("logits", "loss", "grads", "trajectory", "params", "padding"):
            value = lambda r: getattr(r, what)[0] if isinstance(getattr(r, what), tuple) else getattr(r, what)  # noqa: E731
            top = max(of, key=value)
            row[what] = (value(top), f"{top.variant} x{top.layers}")
        rows.append(row)
    return rows


def print_summary(console: Console, results: list[TextResult]) -> None:
    """The worst figures per dtype, and the padding check the adder's table has no column for."""
    table = Table(title="Sentiment: the worst figure of each kind per dtype (where)")
    for column in ("dtype", "logits", "loss", "grads", "run loss", "params", "padding (same backend)"):
        table.add_column(column, no_wrap=True)
    for row in summary(results):
        table.add_row(row["dtype"], *(f"{row[k][0]:.1e} ({row[k][1]})"
                                      for k in ("logits", "loss", "grads", "trajectory", "params", "padding")))
    console.print(table)
    console.print(f"Batches of {base_config('gru', 1, 'float32').batch_size} synthetic texts of 1..{LONGEST} "
                  f"tokens; padding: max |Δ logit| within each backend between a batch, the same texts with "
                  f"{EXTRA_PAD} more pad columns, and each text alone; held to the logits bound.")
