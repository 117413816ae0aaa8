"""The vocabulary: token <-> id, built from the training split only, so the test split never
chooses which words the model can see."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from common.sentiment import DataError

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1; tokenize() drops tags, so no text can produce them


@dataclasses.dataclass(frozen=True)
class Vocab:
    words: tuple[str, ...]  # id -> word: PAD, UNK, then by training count (desc), ties by word
    index: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)  # word -> id

    def __post_init__(self):
        if self.words[:2] != (PAD, UNK):
            raise DataError(f"a vocabulary starts with {PAD!r}, {UNK!r}, got {self.words[:2]}")
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})
        if len(self.index) != len(self.words):
            raise DataError("a vocabulary lists every word once")

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], max_size: int | None = None,
              min_count: int = 1) -> Vocab:
        """The `max_size` most frequent tokens seen at least `min_count` times (None: no cap).

        Ties are broken by the word itself, so the same texts give the same ids in any order."""
        if min_count < 1:
            raise DataError(f"min_count={min_count}: must be at least 1")
        if max_size is not None and max_size < 1:
            raise DataError(f"max_size={max_size}: must be at least 1 (None: no cap)")
        counts = collections.Counter(t for tokens in token_lists for t in tokens)
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        kept = kept[:max_size]
        if not kept:
            raise DataError(f"the vocabulary is empty: no training token occurs {min_count}+ times")
        return cls((PAD, UNK, *kept))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """(len(tokens),) int32 ids; a token outside the vocabulary is UNK."""
        get = self.index.get
        return np.fromiter((get(t, 1) for t in tokens), dtype=np.int32, count=len(tokens))
