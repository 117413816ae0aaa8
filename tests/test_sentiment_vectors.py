"""common/sentiment/vectors.py: GloVe text vectors, plain or zipped, and the embedding matrix."""

import zipfile

import numpy as np
import pytest

from common.sentiment import DataError
from common.sentiment.vectors import Vectors, embedding_matrix, read_vectors, write_vectors
from common.sentiment.vocab import Vocab

GLOVE = "the 0.1 0.2 -0.3\ngood 1.5 -2.0 0.25\n. . . 9 9 9\nbad -1 2e-1 3\ngood 7 7 7\nplot 0 0 1\n"


def test_only_the_kept_words_are_read_in_file_order(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE)
    vectors = read_vectors(path, {"bad", "good", ". . .", "absent"})
    assert vectors.words == ("good", ". . .", "bad")  # a word may hold spaces; the first "good" wins
    assert vectors.matrix.dtype == np.float32 and vectors.dim == 3
    np.testing.assert_array_equal(vectors.matrix, np.float32([[1.5, -2, 0.25], [9, 9, 9], [-1, 0.2, 3]]))
    assert vectors.source == str(path)


def test_a_member_of_a_zip_is_streamed(tmp_path):
    path = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("glove.6B.50d.txt", "good 1 2\n")
        z.writestr("glove.6B.100d.txt", GLOVE)
    vectors = read_vectors(path, {"plot"}, member="glove.6B.100d.txt")
    assert vectors.words == ("plot",) and vectors.source == f"{path}:glove.6B.100d.txt"
    with pytest.raises(DataError, match="name the vectors file, one of: glove.6B.50d.txt, glove.6B.100d.txt"):
        read_vectors(path, {"plot"})
    with pytest.raises(DataError, match="no member 'glove.6B.300d.txt'"):
        read_vectors(path, {"plot"}, member="glove.6B.300d.txt")


@pytest.mark.parametrize("line, why", [
    ("bad 1 2", "line 3: 3 fields, expected a word and 3 numbers"),
    ("bad 1 2 3 4", "line 3: 5 fields, expected a word and 3 numbers"),
    ("good 1 x 3", "line 3: 'x' is not a number"),
    ("good 1 nan 3", "line 3: a vector of 'good' is not finite"),
])
def test_a_bad_line_is_an_error_naming_file_and_line(tmp_path, line, why):
    path = tmp_path / "glove.txt"
    path.write_text(f"the 0 0 0\nplot 1 1 1\n{line}\n")
    with pytest.raises(DataError, match=f"{path}, {why}"):
        read_vectors(path, {"good", "bad"})


def test_numbers_are_checked_on_kept_lines_only(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0 0 0\nskipped 1 x 3\ngood 1 2 3\n")
    assert read_vectors(path, {"good"}).words == ("good",)


def test_missing_and_empty_files_are_errors(tmp_path):
    with pytest.raises(DataError, match="no such vectors file"):
        read_vectors(tmp_path / "none.txt", {"good"})
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty vectors file"):
        read_vectors(tmp_path / "empty.txt", {"good"})


def test_written_vectors_read_back_bit_for_bit(tmp_path):
    matrix = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32) / 7
    path = tmp_path / "out.txt"
    write_vectors(path, ["a", "b'c", "é"], matrix)
    vectors = read_vectors(path, {"a", "b'c", "é"})
    assert vectors.words == ("a", "b'c", "é")
    np.testing.assert_array_equal(vectors.matrix, matrix)
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_word_that_cannot_be_written_leaves_no_file(tmp_path):
    with pytest.raises(DataError, match="'two words' cannot be a word"):
        write_vectors(tmp_path / "out.txt", ["one", "two words"], np.zeros((2, 3)))
    assert list(tmp_path.iterdir()) == []


def _vocab_and_vectors(dim=64):
    vocab = Vocab(("<pad>", "<unk>", "good", "bad", "plot", "unseen"))
    rng = np.random.default_rng(1)
    found = (rng.standard_normal((3, dim)) * 0.5).astype(np.float32)
    return vocab, Vectors(("plot", "good", "elsewhere"), found, "test")


def test_embedding_rows_are_the_vectors_pad_zero_and_random_rows_scaled_alike():
    vocab, vectors = _vocab_and_vectors(dim=2000)
    matrix, missing = embedding_matrix(vocab, vectors, seed=3)
    assert matrix.shape == (6, 2000) and matrix.dtype == np.float32
    assert missing == 2  # bad, unseen (PAD and UNK are not words)
    np.testing.assert_array_equal(matrix[0], 0)
    np.testing.assert_array_equal(matrix[[4, 2]], vectors.matrix[:2])
    found_std = vectors.matrix[:2].std()
    for row in (1, 3, 5):
        assert matrix[row].std() == pytest.approx(found_std, rel=0.1)


def test_random_rows_follow_the_seed():
    vocab, vectors = _vocab_and_vectors()
    a, _ = embedding_matrix(vocab, vectors, seed=0)
    b, _ = embedding_matrix(vocab, vectors, seed=1)
    np.testing.assert_array_equal(a, embedding_matrix(vocab, vectors, seed=0)[0])
    np.testing.assert_array_equal(a[[0, 2, 4]], b[[0, 2, 4]])
    assert not np.isclose(a[[1, 3, 5]], b[[1, 3, 5]]).any()


def test_vectors_that_miss_every_word_are_an_error():
    vocab = Vocab(("<pad>", "<unk>", "good"))
    with pytest.raises(DataError, match="glove.txt: no vocabulary word has a vector"):
        embedding_matrix(vocab, Vectors(("Good",), np.ones((1, 3), np.float32), "glove.txt"), seed=0)
