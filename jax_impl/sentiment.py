"""JAX sentiment classifier, parameterised exactly as torch_impl.sentiment: the same embedding,
recurrent layers (jax_impl.model.RecurrentLayer: two biases, PyTorch gate order) and head. Where PyTorch packs
each text to its real length, this scans the padded batch under `jit` with a length mask that
freezes each text's state after its last token, so the final state is the one at its last real
token whatever the padding. One program per batch width (common.sentiment.dataset.padded_width),
compiled ahead of time by `compile`.
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
            x, final = RecurrentLayer(cfg.cell, cfg.hidden, cfg.activation, dtype, name=f"layer{k}")(x, zeros, mask)
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

    def compile(self, train_widths: list[int], eval_widths: list[int]) -> float:
        """Compile the train step and the scorer for every batch width the run will meet (core)."""
        needed = ([("train", self.cfg.batch_size, w) for w in train_widths]
                  + [("score", self.cfg.eval_batch, w) for w in eval_widths])
        return self._compile((self.cfg.replace(seed=0), self.device, self.model.vocab, self.model.dim),
                             {key: (lambda key=key: self._lower(*key)) for key in needed})

    def step(self, batch: TextBatch) -> None:
        program = self._compiled("train", *batch.ids.shape)
        self.state = program(self.state, batch.ids, batch.lengths, batch.labels)

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
