"""Plain hand-written training loops of the handout's model: the yardstick the bench holds our
backends against (issue: "≥ 1.25× a plain loop of the same model, timed the same way").

Each is what a careful student writes without this project: the reports' PyTorch loop
(`nn.Embedding` + `nn.RNN` + `nn.Linear`, default `torch.optim.Adam`, `zero_grad`, cross-entropy
over every position) and its JAX twin (a parameter dict, one `jax.jit` step with `lax.scan`
over positions, `optax.adam`). Both make a fresh batch every step as the handout does, with
numpy int64 operands in [0, 555555555) and a vectorised digit loop (already the fast way to
write it: 0.08 ms a batch here), so their step time includes the data, as our runs' does.

The handout's model, and the same with an LSTM cell or uniform random operands of any length
(the bench's sequence-length scaling), have a baseline. Each loop also has the variants an
expert would reach for: JAX's scan `unroll`; PyTorch's whole-step CUDA graph (`graphs`, GPU
only) and `torch.compile` of the model (`compile`; `allow_rnn` lets Dynamo trace `nn.RNN`,
which it otherwise refuses: `dynamo_summary` says what it did). The defaults are the yardstick.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from common.config import Config

HANDOUT_HIGH = 555555555  # training operands are uniform in [0, 555555555)
CELLS = {"rnn": 1, "lstm": 4}  # the cells with a plain loop, and their gates


def handout_batch(rng: np.random.Generator, batch: int, positions: int) -> tuple[np.ndarray, ...]:
    """(a, b, a + b) as (batch, positions) int64 digits, least-significant first."""
    a = rng.integers(0, HANDOUT_HIGH, batch)
    b = rng.integers(0, HANDOUT_HIGH, batch)
    place = 10 ** np.arange(positions)
    digits = lambda x: x[:, None] // place % 10  # noqa: E731
    return digits(a), digits(b), digits(a + b)


def uniform_batch(rng: np.random.Generator, batch: int, positions: int) -> tuple[np.ndarray, ...]:
    """(a, b, a + b) as (batch, positions) int64 digits, least-significant first, the operands'
    `positions - 1` digits uniform (the top position holds the carry); any length, so the sum
    is carried digit by digit rather than through int64."""
    a, b = (np.pad(rng.integers(0, 10, (batch, positions - 1)), ((0, 0), (0, 1))) for _ in range(2))
    total, carry = np.empty_like(a), np.zeros(batch, np.int64)
    for p in range(positions):
        s = a[:, p] + b[:, p] + carry
        total[:, p], carry = s % 10, s // 10
    return a, b, total


def supports(cfg: Config) -> bool:
    """Whether the plain loops implement this config (the handout's model, or its LSTM, on the
    handout's or uniform operands)."""
    return cfg.cell in CELLS and cfg.data in ("handout", "uniform") and (
        cfg.activation, cfg.base, cfg.order, cfg.h0, cfg.carry_state, cfg.schedule, cfg.dtype) == (
        "tanh", 10, "lsb", "zeros", False, "constant", "float32")


def plain_loop(backend: str, cfg: Config, device: str = "cpu", *, unroll: int = 1, graphs: bool = False,
               compile: bool = False, allow_rnn: bool = False) -> tuple[Callable[[], None], Callable[[], float]]:
    """(step, loss): `step()` makes a batch and trains on it; `loss()` waits for the device and
    returns the latest loss. JAX takes `unroll` (lax.scan's, 1 to cfg.positions = full); PyTorch
    `graphs` (capture the whole step in a CUDA graph on its first call) or `compile`
    (torch.compile the model; `allow_rnn`: let Dynamo trace nn.RNN/LSTM)."""
    if not supports(cfg):
        raise ValueError(f"no plain baseline loop for this config (the handout's model or its LSTM): {cfg}")
    if backend == "jax":
        if graphs or compile:
            raise ValueError("graphs and compile are the PyTorch loop's variants; JAX's is unroll")
        if not 1 <= unroll <= cfg.positions:
            raise ValueError(f"unroll={unroll}: must be in [1, {cfg.positions}] (the positions: full)")
        return _plain_jax(cfg, device, unroll)
    if unroll != 1:
        raise ValueError("unroll is the JAX loop's variant; PyTorch's are graphs and compile")
    if graphs and device != "gpu":
        raise ValueError(f"graphs=True: CUDA graphs need a GPU, and this loop runs on the {device}")
    if graphs and compile:
        raise ValueError("graphs and compile: one variant at a time")
    return _plain_torch(cfg, device, graphs, compile, allow_rnn)


def _batches(cfg: Config) -> Callable[[], tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(cfg.seed)
    make = handout_batch if cfg.data == "handout" else uniform_batch
    return lambda: make(rng, cfg.batch_size, cfg.positions)


def dynamo_summary() -> str:
    """What Dynamo did since the last call (it clears Dynamo's counters): graphs compiled, and
    why it left code eager."""
    from torch._dynamo.utils import counters

    refused = [reason.splitlines()[0] for reason in [*counters["unimplemented"], *counters["graph_break"]]]
    summary = f"Dynamo compiled {counters['stats']['unique_graphs']} graph(s)" + (
        f"; left eager: {'; '.join(refused)}" if refused else "")
    counters.clear()
    return summary


def _plain_torch(cfg: Config, device: str, graphs: bool, compile: bool, allow_rnn: bool):
    import torch
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, cfg.embed)
            self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM}[cfg.cell](2 * cfg.embed, cfg.hidden, cfg.layers,
                                                                  batch_first=True)
            self.dense = nn.Linear(cfg.hidden, 10)

        def forward(self, a, b):
            x = torch.cat([self.embed(a), self.embed(b)], dim=-1)
            y, _ = self.rnn(x)
            return self.dense(y)

    torch.manual_seed(cfg.seed)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    model = Model().to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, capturable=graphs)
    criterion = nn.CrossEntropyLoss()
    if compile:
        torch._dynamo.config.allow_rnn = allow_rnn
        model = torch.compile(model)
    batch = _batches(cfg)
    last = [torch.zeros(())]

    def train(a, b, target):
        logits = model(a, b)
        loss = criterion(logits.reshape(-1, 10), target.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    def step() -> None:
        last[0] = train(*(torch.from_numpy(x).to(dev) for x in batch()))

    if not graphs:
        return step, lambda: float(last[0])
    static = [torch.from_numpy(x).to(dev) for x in batch()]  # the graph reads its batch from here
    graph = torch.cuda.CUDAGraph()

    def capture() -> None:
        # Warm up on a side stream first (cuDNN and Adam allocate their workspaces and state),
        # as torch.cuda.graph's docs require; the warm-up trains on the first batch.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                train(*static)
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            last[0] = train(*static)

    def graphed_step() -> None:
        if not last[0].is_cuda:  # the first call captures
            capture()
        for buffer, x in zip(static, batch()):
            buffer.copy_(torch.from_numpy(x))
        graph.replay()

    return graphed_step, lambda: float(last[0])


def _plain_jax(cfg: Config, device: str, unroll: int):
    import jax
    import jax.numpy as jnp
    import optax

    gates = CELLS[cfg.cell]
    keys = iter(jax.random.split(jax.random.PRNGKey(cfg.seed), 3 * cfg.layers + 2))
    normal = lambda shape, scale: scale * jax.random.normal(next(keys), shape)  # noqa: E731
    params = {"embed": normal((10, cfg.embed), 1.0),
              "layers": [{"w_ih": normal((2 * cfg.embed if k == 0 else cfg.hidden, gates * cfg.hidden), 0.1),
                          "w_hh": normal((cfg.hidden, gates * cfg.hidden), 0.1),
                          "b": jnp.zeros(gates * cfg.hidden)} for k in range(cfg.layers)],
              "dense": {"w": normal((cfg.hidden, 10), 0.1), "b": jnp.zeros(10)}}
    dev = jax.devices("cpu" if device == "cpu" else None)[0]
    optimizer = optax.adam(cfg.lr)
    state = jax.device_put({"params": params, "opt": optimizer.init(params), "loss": jnp.zeros(())}, dev)

    def rnn(layer, carry, x_t):
        h = jnp.tanh(x_t @ layer["w_ih"] + carry @ layer["w_hh"] + layer["b"])
        return h, h

    def lstm(layer, carry, x_t):
        h, c = carry
        i, f, g, o = jnp.split(x_t @ layer["w_ih"] + h @ layer["w_hh"] + layer["b"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    def loss_fn(params, a, b, target):
        x = jnp.concatenate([params["embed"][a], params["embed"][b]], -1).swapaxes(0, 1)  # time-major
        zeros = jnp.zeros((a.shape[0], cfg.hidden))
        for layer in params["layers"]:
            cell, carry = (rnn, zeros) if cfg.cell == "rnn" else (lstm, (zeros, zeros))
            _, x = jax.lax.scan(lambda h, x_t, layer=layer, cell=cell: cell(layer, h, x_t), carry, x,
                                unroll=unroll)
        logits = x @ params["dense"]["w"] + params["dense"]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, target.T).mean()

    @jax.jit
    def train_step(state, a, b, target):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], a, b, target)
        updates, opt = optimizer.update(grads, state["opt"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt, "loss": loss}

    batch = _batches(cfg)

    def step() -> None:
        a, b, target = jax.device_put(tuple(x.astype(np.int32) for x in batch()), dev)
        state.update(train_step(state, a, b, target))

    return step, lambda: float(jax.block_until_ready(state["loss"]))
