"""The sentiment workload's data, framework-free: text to padded token ids and pretrained vectors.

tokenize -> Vocab -> vectors (GloVe text format) -> corpora (IMDB, CSV, the offline default) ->
dataset (cached arrays and batches). Bad input of any kind is a `DataError` whose message is one
line naming the file, line and value, which the command lines print as `error: …` (exit 2).
"""

from __future__ import annotations

import os
from pathlib import Path


class DataError(ValueError):
    """A data file or a data parameter is unusable; the message names the file, line and value."""


def default_cache_dir() -> Path:
    """Where downloads, converted vectors and prepared arrays live unless told otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnn-adder-study" / "sentiment"
