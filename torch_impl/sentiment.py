"""PyTorch sentiment classifier: the lab's model. nn.Embedding over pretrained vectors, a stacked
nn.RNN/LSTM/GRU over each text's real tokens (a PackedSequence: cuDNN's variable-length path on
a GPU), the last layer's state at each text's last token, Linear(hidden, 1); binary
cross-entropy on the logit; Adam (optionally MultiStepLR), as the adder.

No CUDA graphs (cfg.graphs runs the eager step, and env()["execution"] says why): a packed batch's
lengths steer pack_padded_sequence from the host, and the padded path's bucketed widths change the
shapes from batch to batch; one graph per width was not built."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from common.params import Params
from common.sentiment.config import TextConfig
from common.sentiment.dataset import TextBatch
from common.sentiment.params import init_params, param_shapes
from torch_impl.core import TrainerCore
from torch_impl.params import to_native, to_neutral

_RNNS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Classifier(nn.Module):
    """Attribute names are the neutral parameter names (embedding.*, rnn.*, head.*)."""

    def __init__(self, cfg: TextConfig, vocab: int, dim: int):
        super().__init__()
        self.cell, self.pack = cfg.cell, cfg.pack
        self.embedding = nn.Embedding(vocab, dim)
        self.embedding.weight.requires_grad_(cfg.train_embedding)
        extra = {"nonlinearity": cfg.activation} if cfg.cell == "rnn" else {}
        self.rnn = _RNNS[cfg.cell](dim, cfg.hidden, cfg.layers, **extra)
        self.head = nn.Linear(cfg.hidden, 1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids: (batch, width) token ids; lengths: (batch,) int64 on the CPU. Logits (batch,)."""
        if not self.pack:  # the padded batch, time-major; the last layer's output at each text's end
            out, _ = self.rnn(self.embedding(ids.T))  # causal: pads after a text never reach its end
            last = out[(lengths - 1).to(out.device), torch.arange(ids.shape[0], device=out.device)]
            return self.head(last).squeeze(-1)
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        _, final = self.rnn(packed)  # the state after each text's last real token
        h = final[0] if self.cell == "lstm" else final  # (layers, batch, hidden)
        return self.head(h[-1]).squeeze(-1)


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, labels)


class Trainer(TrainerCore):
    """The sentiment workload's trainer; the same methods as jax_impl.sentiment.Trainer."""

    GRAPHS_REFUSED = "variable-length text (sentiment)"

    def __init__(self, cfg: TextConfig, embedding: np.ndarray):
        super().__init__(cfg)
        torch.manual_seed(cfg.seed)  # native init draws from torch's own generator
        model = Classifier(cfg, *embedding.shape).to(device=self.device, dtype=getattr(torch, cfg.dtype))
        self._names = list(param_shapes(cfg, *embedding.shape))
        if cfg.init == "shared":
            model.load_state_dict(to_native(init_params(cfg, embedding)), strict=True)
        else:
            with torch.no_grad():
                model.embedding.weight.copy_(torch.from_numpy(embedding))
        self._train(model)  # the embedding is frozen unless cfg.train_embedding

    def _on_device(self, batch: TextBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = torch.from_numpy(batch.ids).to(self.device, non_blocking=True)
        labels = torch.from_numpy(batch.labels).to(self.device, non_blocking=True).to(getattr(torch, self.cfg.dtype))
        return ids, torch.from_numpy(batch.lengths).long(), labels  # pack_padded_sequence wants lengths on the CPU

    def compile(self, train_widths: list[int], eval_widths: list[int]) -> float | None:
        return None  # eager: nothing to compile

    def step(self, batch: TextBatch) -> None:
        ids, lengths, labels = self._on_device(batch)
        self.model.train()
        self._update(loss_fn(self.model(ids, lengths), labels))

    @torch.no_grad()
    def score(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per text: whether the prediction is right, and its loss."""
        ids, lengths, labels = self._on_device(batch)
        self.model.eval()
        logits = self.model(ids, lengths)
        right = (logits > 0) == (labels > 0.5)
        losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        return right.cpu().numpy(), losses.cpu().numpy()

    def params(self) -> Params:
        return to_neutral(self.model.state_dict(), self._names)

    @torch.no_grad()
    def logits(self, batch: TextBatch) -> np.ndarray:
        ids, lengths, _ = self._on_device(batch)
        return self.model(ids, lengths).cpu().numpy()

    def gradients(self, batch: TextBatch) -> tuple[float, Params]:
        """Loss and the trained parameters' gradients (neutral names), updating nothing."""
        ids, lengths, labels = self._on_device(batch)
        self.model.zero_grad(set_to_none=True)
        loss = loss_fn(self.model(ids, lengths), labels)
        loss.backward()
        grads = to_neutral({name: p.grad for name, p in self.model.named_parameters()},
                           [name for name in self._names if name not in self.frozen])
        self.model.zero_grad(set_to_none=True)
        return float(loss.detach()), grads
