"""The offline default's word vectors: wordllama's l2_supercat_256 token embedding (MIT; 32000
Llama-2 tokenizer pieces x 256, float16), its whole-word rows converted once into GloVe text
format in the cache folder, so that they load through the same code as GloVe (vectors.py).

The safetensors file is read by hand (an 8-byte little-endian header length, a JSON header of
dtype/shape/data_offsets, then the raw bytes) rather than through the safetensors package.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np

from common.sentiment import DataError
from common.sentiment.packages import package_file
from common.sentiment.tokens import tokenize
from common.sentiment.vectors import write_vectors

_WEIGHTS = "weights/l2_supercat_256.safetensors"
_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
_TENSOR = "embedding.weight"
_WORD_START = "\u2581"  # "▁": the piece starts a word
_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, by name."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(length)) if 8 + length <= size else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            header = None
    if not isinstance(header, dict):
        raise DataError(f"{path}: not a safetensors file (no JSON header)")
    header.pop("__metadata__", None)
    tensors = {}
    for name, entry in header.items():
        dtype = _DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise DataError(f"{path}: tensor {name!r} has dtype {entry.get('dtype')!r}, not one of {list(_DTYPES)}")
        shape, (start, end) = entry["shape"], entry["data_offsets"]
        count = int(np.prod(shape))
        if end - start != count * np.dtype(dtype).itemsize or 8 + length + end > size:
            raise DataError(f"{path}: tensor {name!r}'s bytes {start}..{end} do not fit its shape {shape} or the file")
        tensors[name] = np.fromfile(path, dtype=dtype, count=count, offset=8 + length + start).reshape(shape)
    return tensors


def whole_words(pieces: dict[str, int]) -> dict[str, int]:
    """word -> row, for the pieces that are one of our tokens: word-start pieces ("▁good") and
    single punctuation characters (bare: punctuation follows a word, so "," is its usual piece).

    Pieces are cased and our tokens are not: the lowercase piece wins ("▁the" over "▁The"),
    else the lowest row (the tokenizer's more frequent merges come first)."""
    candidates = []
    for piece, row in pieces.items():
        bare = not piece.startswith(_WORD_START)
        word = piece if bare else piece[1:]
        if bare and (len(word) != 1 or word.isalnum()):
            continue  # a piece inside a word ("ing"), not a word
        token = word.lower()
        if tokenize(word) == [token]:
            candidates.append((word != token, not bare, row, token))
    words: dict[str, int] = {}
    for *_, row, token in sorted(candidates):
        words.setdefault(token, row)
    return words


def wordllama_vectors(cache_dir: Path) -> Path:
    """The GloVe-format file of wordllama's whole-word vectors, written into `cache_dir` once."""
    weights_path, config = package_file("wordllama", _WEIGHTS), package_file("wordllama", _TOKENIZER)
    target = Path(cache_dir) / f"wordllama-{importlib.metadata.version('wordllama')}-l2_supercat_256.txt"
    if target.is_file():
        return target
    weights = read_safetensors(weights_path)
    if _TENSOR not in weights:
        raise DataError(f"{weights_path}: no tensor {_TENSOR!r}")
    words = whole_words(json.loads(config.read_text(encoding="utf-8"))["model"]["vocab"])
    target.parent.mkdir(parents=True, exist_ok=True)
    write_vectors(target, list(words), weights[_TENSOR][list(words.values())].astype(np.float32))
    return target
