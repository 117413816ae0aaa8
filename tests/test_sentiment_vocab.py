"""common/sentiment/vocab.py: a deterministic vocabulary from the training tokens."""

import numpy as np
import pytest

from common.sentiment import DataError
from common.sentiment.vocab import PAD, UNK, Vocab

TEXTS = [["good", "film", "good"], ["bad", "film"], ["good", "bad", "plot"]]


def test_ids_go_by_count_then_word_after_pad_and_unk():
    vocab = Vocab.build(TEXTS)
    assert vocab.words == (PAD, UNK, "good", "bad", "film", "plot")
    assert len(vocab) == 6
    assert Vocab.build(list(reversed(TEXTS))) == vocab  # text order changes nothing


def test_max_size_and_min_count_leave_out_rare_words():
    assert Vocab.build(TEXTS, max_size=2).words == (PAD, UNK, "good", "bad")
    assert Vocab.build(TEXTS, min_count=2).words == (PAD, UNK, "good", "bad", "film")


def test_encode_maps_unknown_tokens_to_unk():
    ids = Vocab.build(TEXTS).encode(["good", "unseen", "plot"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, 1, 5]
    assert Vocab.build(TEXTS).encode([]).shape == (0,)


def test_an_empty_vocabulary_is_an_error():
    with pytest.raises(DataError, match="the vocabulary is empty: no training token occurs 4\\+ times"):
        Vocab.build(TEXTS, min_count=4)
    with pytest.raises(DataError, match="max_size=0: must be at least 1"):
        Vocab.build(TEXTS, max_size=0)
    with pytest.raises(DataError, match="min_count=0"):
        Vocab.build(TEXTS, min_count=0)


def test_a_vocabulary_must_start_with_the_specials_and_not_repeat():
    with pytest.raises(DataError, match="starts with '<pad>', '<unk>'"):
        Vocab(("good", PAD, UNK))
    with pytest.raises(DataError, match="every word once"):
        Vocab((PAD, UNK, "good", "good"))
