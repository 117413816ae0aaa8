"""common/sentiment/wordllama.py: safetensors read by hand, whole-word rows as GloVe text."""

import importlib.util
import json

import numpy as np
import pytest

from common.sentiment import DataError
from common.sentiment.vectors import read_vectors
from common.sentiment.wordllama import read_safetensors, whole_words, wordllama_vectors


def _safetensors(path, tensors, dtype="F16"):
    """The format by hand: 8-byte little-endian header length, JSON header, raw bytes."""
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, array in tensors.items():
        raw = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


def test_safetensors_tensors_are_read_with_their_shape_and_dtype(tmp_path):
    a = np.arange(12, dtype="<f2").reshape(3, 4) / 8
    b = np.float16([[-1.5, 2.25]])
    _safetensors(tmp_path / "w.safetensors", {"a": a, "b": b})
    tensors = read_safetensors(tmp_path / "w.safetensors")
    assert sorted(tensors) == ["a", "b"]
    np.testing.assert_array_equal(tensors["a"], a)
    np.testing.assert_array_equal(tensors["b"], b)
    assert tensors["a"].dtype == np.float16


def test_broken_safetensors_are_errors_naming_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    _safetensors(path, {"a": np.zeros((4, 4), np.float16)})
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DataError, match="w.safetensors: tensor 'a''s bytes 0..32 do not fit"):
        read_safetensors(path)
    path.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(DataError, match="w.safetensors: not a safetensors file"):
        read_safetensors(path)
    _safetensors(path, {"a": np.zeros(2, np.float16)}, dtype="BF16")
    with pytest.raises(DataError, match="tensor 'a' has dtype 'BF16'"):
        read_safetensors(path)


def test_whole_words_are_word_start_pieces_and_bare_punctuation():
    pieces = {"▁The": 3, "▁the": 9, "▁Good": 7, "▁GOOD": 4, "ing": 5, "▁!": 6, "!": 30,
              "▁don't": 11, "▁a_b": 12, "▁café": 13, "<unk>": 0, "▁": 14}
    assert whole_words(pieces) == {"the": 9, "good": 4, "!": 30, "café": 13}


@pytest.mark.skipif(importlib.util.find_spec("wordllama") is None, reason="needs the text extra")
def test_the_offline_vectors_are_written_once_and_read_as_glove(tmp_path):
    path = wordllama_vectors(tmp_path)
    written = path.stat().st_mtime_ns
    assert wordllama_vectors(tmp_path) == path and path.stat().st_mtime_ns == written
    vectors = read_vectors(path, {"good", "great", "terrible", "the", "!"})
    assert sorted(vectors.words) == ["!", "good", "great", "terrible", "the"] and vectors.dim == 256
    v = dict(zip(vectors.words, vectors.matrix / np.linalg.norm(vectors.matrix, axis=1, keepdims=True)))
    assert v["good"] @ v["great"] > v["good"] @ v["terrible"] + 0.1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
