"""The adder in Flax linen, parameterised exactly as PyTorch's so the same weights give the same
function and gradients: two biases per cell, gates in PyTorch order (LSTM i,f,g,o; GRU r,z,n),
GRU's b_hn inside r * (W_hn h + b_hn). Kernels use Flax's (in, out) layout.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from common.config import Config
from common.params import GATES


def _stacked_orthogonal(gates: int):
    """Flax's native recurrent init: one orthogonal (hidden x hidden) block per gate."""
    def init(key, shape, dtype=jnp.float32):
        keys = jax.random.split(key, gates)
        block = (shape[0], shape[1] // gates)
        return jnp.concatenate([nn.initializers.orthogonal()(k, block, dtype) for k in keys], 1)
    return init


def cell_update(cell: str, activation: str, state: tuple[jax.Array, ...], x_proj: jax.Array,
                h_proj: jax.Array) -> tuple[jax.Array, ...]:
    """One time step. state: (h,) or, for an LSTM, (h, c), each (batch, hidden); x_proj/h_proj:
    input/recurrent projections with their biases, (batch, gates * hidden). Returns the new state.

    The state is a tuple, not one stacked (parts, batch, hidden) array: stacking h and c made
    XLA:CPU fuse the LSTM's gate arithmetic into the concatenate, computing c once for each half:
    the sentiment LSTM-256's forward over the 4,628 test tweets took 2.74 s of CPU, 1.35 s with
    the tuple (one core; training steps, adder and sentiment, unchanged)."""
    h = state[0]
    if cell == "rnn":
        act = jnp.tanh if activation == "tanh" else jax.nn.relu
        return (act(x_proj + h_proj),)
    if cell == "lstm":
        i, f, g, o = jnp.split(x_proj + h_proj, 4, axis=-1)
        c = jax.nn.sigmoid(f) * state[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c
    xr, xz, xn = jnp.split(x_proj, 3, axis=-1)
    hr, hz, hn = jnp.split(h_proj, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


class RecurrentLayer(nn.Module):
    cell: str
    hidden: int
    activation: str
    dtype: Any
    # Positions per scan iteration (lax.scan's unroll; True: all of them). The same math, but XLA
    # fuses an unrolled body differently: training drifts at rounding level (tests/test_jax_modes.py).
    unroll: int | bool = 1

    @nn.compact
    def __call__(self, xs: jax.Array, state: jax.Array,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """xs: (time, batch, in); state: (parts, batch, hidden) -> outputs, final state. With
        `mask` ((time, batch), True on real positions: texts of several lengths) a row's state
        stops moving after its last real position, so the final state is the one there."""
        rows = GATES[self.cell] * self.hidden
        p = lambda name, init, shape: self.param(name, init, shape, self.dtype)  # noqa: E731
        ih_kernel = p("ih_kernel", nn.initializers.lecun_normal(), (xs.shape[-1], rows))
        hh_kernel = p("hh_kernel", _stacked_orthogonal(GATES[self.cell]), (self.hidden, rows))
        ih_bias = p("ih_bias", nn.initializers.zeros, (rows,))
        hh_bias = p("hh_bias", nn.initializers.zeros, (rows,))

        # The input projection does not depend on the state: one big matmul over all positions.
        # Its bias is added inside the step, where it fuses with the cell's elementwise work
        # instead of costing a pass of its own over (time, batch, gates * hidden).
        x_proj = xs @ ih_kernel

        def step(carry, inputs):
            x_proj_t, real = inputs
            new = cell_update(self.cell, self.activation, carry, x_proj_t + ih_bias, carry[0] @ hh_kernel + hh_bias)
            if real is not None:
                new = tuple(jnp.where(real[:, None], part, old) for part, old in zip(new, carry))
            return new, new[0]

        final, ys = jax.lax.scan(step, tuple(state), (x_proj, mask), unroll=self.unroll)
        return ys, jnp.stack(final)


class Adder(nn.Module):
    cfg: Config

    @nn.compact
    def __call__(self, a: jax.Array, b: jax.Array, h0: jax.Array) -> tuple[jax.Array, jax.Array]:
        """a, b: (batch, positions) digits; h0: (parts, layers, batch, hidden).

        Returns logits (batch, positions, base) and the final state, shaped like h0.
        """
        cfg, dtype = self.cfg, jnp.dtype(self.cfg.dtype)
        embed = nn.Embed(cfg.base, cfg.embed, dtype=dtype, param_dtype=dtype, name="embedding")
        # Time-major inside (scan runs over the leading axis): transposing the digits and the
        # logits is far cheaper than transposing embeddings and hidden states.
        x = jnp.concatenate([embed(a.T), embed(b.T)], axis=-1)
        final = h0
        if cfg.cell != "none":
            finals = []
            for k in range(cfg.layers):
                layer = RecurrentLayer(cfg.cell, cfg.hidden, cfg.activation, dtype, cfg.unroll or True,
                                       name=f"layer{k}")
                x, state = layer(x, h0[:, k])
                finals.append(state)
            final = jnp.stack(finals, axis=1)
        logits = nn.Dense(cfg.base, dtype=dtype, param_dtype=dtype, name="head")(x)
        return jnp.swapaxes(logits, 0, 1), final
