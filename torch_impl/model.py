"""The adder: embed both operands' digits, run a stacked RNN over positions, classify each."""

from __future__ import annotations

import torch
from torch import nn

from common.config import Config
from common.params import head_input_size

_RNNS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Adder(nn.Module):
    """Attribute names are the neutral parameter names (embedding.*, rnn.*, head.*)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cell = cfg.cell
        self.embedding = nn.Embedding(cfg.base, cfg.embed)
        if cfg.cell != "none":
            extra = {"nonlinearity": cfg.activation} if cfg.cell == "rnn" else {}
            self.rnn = _RNNS[cfg.cell](2 * cfg.embed, cfg.hidden, cfg.layers,
                                       batch_first=True, **extra)
        self.head = nn.Linear(head_input_size(cfg), cfg.base)

    def forward(self, a: torch.Tensor, b: torch.Tensor,
                h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a, b: (batch, positions) digits; h0: (state_parts, layers, batch, hidden).

        Returns logits (batch, positions, base) and the final state, shaped like h0.
        """
        x = torch.cat([self.embedding(a), self.embedding(b)], dim=-1)
        if self.cell == "none":
            return self.head(x), h0
        state = (h0[0], h0[1]) if self.cell == "lstm" else h0[0]
        x, final = self.rnn(x, state)
        final = torch.stack(final) if self.cell == "lstm" else final[None]
        return self.head(x), final
