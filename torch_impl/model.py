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
            # Time-major, as nn.RNN works inside: batch_first would transpose activations in and out.
            self.rnn = _RNNS[cfg.cell](2 * cfg.embed, cfg.hidden, cfg.layers, **extra)
        self.head = nn.Linear(head_input_size(cfg), cfg.base)

    def forward(self, a: torch.Tensor, b: torch.Tensor,
                h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a, b: (batch, positions) digits; h0: (state_parts, layers, batch, hidden).

        Returns logits (batch, positions, base) and the final state, shaped like h0.
        """
        # Transposing the digits and the logits is cheaper than transposing the activations.
        x = torch.cat([self.embedding(a.T), self.embedding(b.T)], dim=-1)
        if self.cell == "none":
            return self.head(x).transpose(0, 1), h0
        state = (h0[0], h0[1]) if self.cell == "lstm" else h0[0]
        x, final = self.rnn(x, state)
        final = torch.stack(final) if self.cell == "lstm" else final[None]
        return self.head(x).transpose(0, 1), final

    @torch.no_grad()
    def hidden_states(self, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """Every layer's outputs h_t: (layers, batch, positions, hidden). nn.RNN only returns the
        last layer's, so each layer runs alone through a one-layer twin given a copy of its weights.

        A copy, not the model's own tensors (torch.func.functional_call): cuDNN re-flattens the
        weights of the module it runs into one buffer of its own, and would re-point the model's
        parameters into the twin's buffer, leaving every later forward of the model to warn and copy.
        """
        x = torch.cat([self.embedding(a.T), self.embedding(b.T)], dim=-1)
        kind = {"nonlinearity": self.rnn.nonlinearity} if self.cell == "rnn" else {}
        outputs = []
        for k in range(self.rnn.num_layers):
            twin = type(self.rnn)(x.shape[-1], self.rnn.hidden_size, 1, **kind).to(x)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(twin, f"{name}_l0").copy_(getattr(self.rnn, f"{name}_l{k}"))
            state = (h0[0, k:k + 1], h0[1, k:k + 1]) if self.cell == "lstm" else h0[0, k:k + 1]
            x, _ = twin(x, state)
            outputs.append(x.transpose(0, 1))
        return torch.stack(outputs)
