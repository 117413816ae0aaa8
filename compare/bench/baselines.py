"""Plain hand-written training loops of the handout's model: the yardstick the bench holds our
backends against (issue: "≥ 1.25× a plain loop of the same model, timed the same way").

Each is what a careful student writes without this project: the reports' PyTorch loop
(`nn.Embedding` + `nn.RNN` + `nn.Linear`, default `torch.optim.Adam`, `zero_grad`, cross-entropy
over every position) and its JAX twin (a parameter dict, one `jax.jit` step with `lax.scan`
over positions, `optax.adam`). Both make a fresh batch every step as the handout does, with
numpy int64 operands in [0, 555555555) and a vectorised digit loop (already the fast way to
write it: 0.08 ms a batch here), so their step time includes the data, as our runs' does.

Only the canonical config (the handout: rnn, tanh, 2 x 64, 9 digits, batch 200) has a baseline.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from common.config import Config

HANDOUT_HIGH = 555555555  # training operands are uniform in [0, 555555555)


def handout_batch(rng: np.random.Generator, batch: int, positions: int) -> tuple[np.ndarray, ...]:
    """(a, b, a + b) as (batch, positions) int64 digits, least-significant first."""
    a = rng.integers(0, HANDOUT_HIGH, batch)
    b = rng.integers(0, HANDOUT_HIGH, batch)
    place = 10 ** np.arange(positions)
    digits = lambda x: x[:, None] // place % 10  # noqa: E731
    return digits(a), digits(b), digits(a + b)


def supports(cfg: Config) -> bool:
    """Whether the plain loops implement this config (the handout's model and data)."""
    return (cfg.cell, cfg.activation, cfg.data, cfg.base, cfg.order, cfg.h0, cfg.carry_state,
            cfg.schedule, cfg.dtype) == ("rnn", "tanh", "handout", 10, "lsb", "zeros", False,
                                         "constant", "float32")


def plain_loop(backend: str, cfg: Config, device: str = "cpu") -> tuple[Callable[[], None], Callable[[], float]]:
    """(step, loss): `step()` makes a batch and trains on it; `loss()` waits for the device and
    returns the latest loss."""
    if not supports(cfg):
        raise ValueError(f"no plain baseline loop for this config (only the handout's model): {cfg}")
    return {"jax": _plain_jax, "torch": _plain_torch}[backend](cfg, device)


def _plain_torch(cfg: Config, device: str):
    import torch
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, cfg.embed)
            self.rnn = nn.RNN(2 * cfg.embed, cfg.hidden, cfg.layers, batch_first=True)
            self.dense = nn.Linear(cfg.hidden, 10)

        def forward(self, a, b):
            x = torch.cat([self.embed(a), self.embed(b)], dim=-1)
            y, _ = self.rnn(x)
            return self.dense(y)

    torch.manual_seed(cfg.seed)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    model = Model().to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(cfg.seed)
    last = [torch.zeros(())]

    def step() -> None:
        a, b, target = (torch.from_numpy(x).to(dev) for x in handout_batch(rng, cfg.batch_size, cfg.positions))
        logits = model(a, b)
        loss = criterion(logits.reshape(-1, 10), target.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        last[0] = loss.detach()

    return step, lambda: float(last[0])


def _plain_jax(cfg: Config, device: str):
    import jax
    import jax.numpy as jnp
    import optax

    keys = iter(jax.random.split(jax.random.PRNGKey(cfg.seed), 3 * cfg.layers + 2))
    normal = lambda shape, scale: scale * jax.random.normal(next(keys), shape)  # noqa: E731
    params = {"embed": normal((10, cfg.embed), 1.0),
              "layers": [{"w_ih": normal((2 * cfg.embed if k == 0 else cfg.hidden, cfg.hidden), 0.1),
                          "w_hh": normal((cfg.hidden, cfg.hidden), 0.1),
                          "b": jnp.zeros(cfg.hidden)} for k in range(cfg.layers)],
              "dense": {"w": normal((cfg.hidden, 10), 0.1), "b": jnp.zeros(10)}}
    dev = jax.devices("cpu" if device == "cpu" else None)[0]
    optimizer = optax.adam(cfg.lr)
    state = jax.device_put({"params": params, "opt": optimizer.init(params), "loss": jnp.zeros(())}, dev)

    def loss_fn(params, a, b, target):
        x = jnp.concatenate([params["embed"][a], params["embed"][b]], -1).swapaxes(0, 1)  # time-major
        for layer in params["layers"]:
            def cell(h, x_t, layer=layer):
                h = jnp.tanh(x_t @ layer["w_ih"] + h @ layer["w_hh"] + layer["b"])
                return h, h
            _, x = jax.lax.scan(cell, jnp.zeros((a.shape[0], cfg.hidden)), x)
        logits = x @ params["dense"]["w"] + params["dense"]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, target.T).mean()

    @jax.jit
    def train_step(state, a, b, target):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], a, b, target)
        updates, opt = optimizer.update(grads, state["opt"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt, "loss": loss}

    rng = np.random.default_rng(cfg.seed)

    def step() -> None:
        batch = handout_batch(rng, cfg.batch_size, cfg.positions)
        a, b, target = jax.device_put(tuple(x.astype(np.int32) for x in batch), dev)
        state.update(train_step(state, a, b, target))

    return step, lambda: float(jax.block_until_ready(state["loss"]))
