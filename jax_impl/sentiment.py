"""JAX sentiment classifier, parameterised exactly as torch_impl.sentiment: the same embedding,
recurrent layers (jax_impl.model.RecurrentLayer: two biases, PyTorch gate order) and head. Where PyTorch packs
each text to its real length, this scans the padded batch under `jit` with a length mask that
freezes each text's state after its last token, so the final state is the one at its last real
token whatever the padding. One program per batch width (common.sentiment.dataset.padded_width),
compiled ahead of time by `compile`; with cfg.steps_per_call > 1, one program for them all.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from common.params import Params
from common.sentiment.config import TextConfig
from common.sentiment.dataset import TextBatch
from common.sentiment.params import init_params, param_shapes
from jax_impl.core import State, TrainerCore, initial_tracking, make_optimizer, tracking
from jax_impl.model import RecurrentLayer
from jax_impl.params import to_native, to_neutral


def real_tokens(width: int, lengths: jax.Array) -> jax.Array:
    """(time, batch) mask: True where a position holds one of its text's tokens."""
    return jnp.arange(width)[:, None] < lengths[None, :]


class Classifier(nn.Module):
    cfg: TextConfig
    vocab: int
    dim: int

    @nn.compact
    def __call__(self, ids: jax.Array, lengths: jax.Array) -> jax.Array:
        """ids: (batch, width) token ids; lengths: (batch,). Logits (batch,)."""
        cfg, dtype = self.cfg, jnp.dtype(self.cfg.dtype)
        x = nn.Embed(self.vocab, self.dim, dtype=dtype, param_dtype=dtype, name="embedding")(ids.T)
        mask = real_tokens(ids.shape[1], lengths)
        zeros = jnp.zeros((2 if cfg.cell == "lstm" else 1, ids.shape[0], cfg.hidden), dtype)
        for k in range(cfg.layers):
            layer = RecurrentLayer(cfg.cell, cfg.hidden, cfg.activation, dtype, cfg.unroll or True, name=f"layer{k}")
            x, final = layer(x, zeros, mask)
        return nn.Dense(1, dtype=dtype, param_dtype=dtype, name="head")(final[0])[:, 0]


def loss_fn(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.sigmoid_binary_cross_entropy(logits, labels).mean()


def _split(cfg: TextConfig, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trained, frozen): the embedding is frozen unless cfg.train_embedding."""
    frozen = {} if cfg.train_embedding else {"embedding": params["embedding"]}
    return {k: v for k, v in params.items() if k not in frozen}, frozen


class Trainer(TrainerCore):
    """The sentiment workload's trainer; the same methods as torch_impl.sentiment.Trainer."""

    def __init__(self, cfg: TextConfig, embedding: np.ndarray):
        super().__init__(cfg)
        self.model = Classifier(cfg, *embedding.shape)
        self._names = list(param_shapes(cfg, *embedding.shape))
        if cfg.init == "shared":
            tree = to_native(init_params(cfg, embedding))
        else:
            ids = jnp.zeros((1, 1), jnp.int32)
            tree = jax.device_get(self.model.init(jax.random.PRNGKey(cfg.seed), ids, jnp.ones(1, jnp.int32))["params"])
            tree["embedding"] = {"embedding": np.asarray(embedding, cfg.dtype)}
        trained, frozen = _split(cfg, jax.device_put(tree, self.device))
        optimizer = make_optimizer(cfg)
        self.state: State = {"params": trained, "frozen": frozen, "opt_state": optimizer.init(trained),
                             **initial_tracking(cfg.dtype)}
        self.state = jax.device_put(self.state, self.device)

        def loss_of(trained, frozen, ids, lengths, labels):
            logits = self.model.apply({"params": {**trained, **frozen}}, ids, lengths)
            return loss_fn(logits, labels.astype(logits.dtype))

        def train_step(state: State, ids, lengths, labels) -> State:
            loss, grads = jax.value_and_grad(loss_of)(state["params"], state["frozen"], ids, lengths, labels)
            updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
            return {"params": optax.apply_updates(state["params"], updates), "frozen": state["frozen"],
                    "opt_state": opt_state, **tracking(state, loss)}

        def score(trained, frozen, ids, lengths, labels):
            logits = self.model.apply({"params": {**trained, **frozen}}, ids, lengths)
            labels = labels.astype(logits.dtype)
            return (logits > 0) == (labels > 0.5), optax.sigmoid_binary_cross_entropy(logits, labels)

        self._train_jit = jax.jit(train_step, donate_argnums=0)
        self._train_step = train_step
        self._many: tuple | None = None  # the key of the K-step program, set by compile
        self._score_jit = jax.jit(score)
        self._loss_and_grads = jax.jit(jax.value_and_grad(loss_of))
        self._logits = jax.jit(lambda trained, frozen, ids, lengths: self.model.apply(
            {"params": {**trained, **frozen}}, ids, lengths))

    def _compiled(self, kind: str, rows: int, width: int):
        """The compiled train step or scorer for batches of (rows, width), compiled once."""
        return self._program((kind, rows, width), lambda: self._lower(kind, rows, width))

    def _lower(self, kind: str, rows: int, width: int):
        ids = jax.ShapeDtypeStruct((rows, width), jnp.int32)
        vector = jax.ShapeDtypeStruct((rows,), jnp.int32)
        if kind == "train":
            return self._train_jit.lower(self.state, ids, vector, vector)
        return self._score_jit.lower(self.state["params"], self.state["frozen"], ids, vector, vector)

    def _lower_many(self, rows: int, widths: tuple[int, ...]):
        """cfg.steps_per_call steps in one program: a scan over batches padded to the widest of
        `widths`, each step running the single step at its own width (a `lax.switch` on its
        index in `widths`, slicing the padding off), so each step is the single step bit for bit.
        Padding the call's batches to its widest instead changed bits (measured: ~1e-7 relative
        in the loss within 20 steps, rnn, lstm and gru; masked, but not free of rounding)."""
        steps = self.cfg.steps_per_call
        branches = [lambda state, ids, lengths, labels, w=w: self._train_step(state, ids[:, :w], lengths, labels)
                    for w in widths]

        def train_many(state: State, ids, lengths, labels, which) -> State:
            def body(state, batch):
                return jax.lax.switch(batch[-1], branches, state, *batch[:-1]), None
            return jax.lax.scan(body, state, (ids, lengths, labels, which))[0]

        ids = jax.ShapeDtypeStruct((steps, rows, widths[-1]), jnp.int32)
        vector = jax.ShapeDtypeStruct((steps, rows), jnp.int32)
        which = jax.ShapeDtypeStruct((steps,), jnp.int32)
        return jax.jit(train_many, donate_argnums=0).lower(self.state, ids, vector, vector, which)

    def compile(self, train_widths: list[int], eval_widths: list[int]) -> float:
        """Compile the training program (a step per width, or one cfg.steps_per_call-step program
        for them all) and the scorer for every batch width the run will meet (core)."""
        rows = self.cfg.batch_size
        if self.cfg.steps_per_call == 1:
            needed = {("train", rows, w): (lambda w=w: self._lower("train", rows, w)) for w in train_widths}
        else:
            self._many = ("train_many", rows, tuple(train_widths))
            needed = {self._many: lambda: self._lower_many(rows, tuple(train_widths))}
        needed.update({("score", self.cfg.eval_batch, w): (lambda w=w: self._lower("score", self.cfg.eval_batch, w))
                       for w in eval_widths})
        return self._compile((self.cfg.replace(seed=0), self.device, self.model.vocab, self.model.dim), needed)

    def step(self, batch: TextBatch) -> None:
        program = self._compiled("train", *batch.ids.shape)
        self.state = program(self.state, batch.ids, batch.lengths, batch.labels)

    def step_many(self, batches: list[TextBatch]) -> None:
        """cfg.steps_per_call steps in one call, as many `step`s bit for bit (after compile)."""
        _, rows, widths = self._many
        ids = np.zeros((len(batches), rows, widths[-1]), np.int32)
        for k, batch in enumerate(batches):
            ids[k, :, :batch.ids.shape[1]] = batch.ids
        which = np.array([widths.index(batch.ids.shape[1]) for batch in batches], np.int32)
        self.state = self._programs[self._many](self.state, ids, np.stack([b.lengths for b in batches]),
                                                np.stack([b.labels for b in batches]), which)

    def score(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per text: whether the prediction is right, and its loss."""
        program = self._compiled("score", *batch.ids.shape)
        right, losses = program(self.state["params"], self.state["frozen"], batch.ids, batch.lengths, batch.labels)
        return np.asarray(right), np.asarray(losses)

    def params(self) -> Params:
        return to_neutral({**self.state["params"], **self.state["frozen"]}, self._names)

    def logits(self, batch: TextBatch) -> np.ndarray:
        return np.asarray(self._logits(self.state["params"], self.state["frozen"], batch.ids, batch.lengths))

    def gradients(self, batch: TextBatch) -> tuple[float, Params]:
        """Loss and the trained parameters' gradients (neutral names), updating nothing."""
        loss, grads = self._loss_and_grads(self.state["params"], self.state["frozen"], batch.ids,
                                           batch.lengths, batch.labels)
        names = [n for n in self._names if self.cfg.train_embedding or n != "embedding.weight"]
        return float(loss), to_neutral(grads, names)
