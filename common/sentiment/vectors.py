"""Pretrained word vectors in GloVe's text format (`word v1 … vD` per line), plain or zipped.

Files are streamed line by line and only the vocabulary's words are kept: glove.840B.300d is
5.6 GB of text, of which a 25k-word vocabulary needs 30 MB. Numbers are parsed (and checked)
only on kept lines, for the same reason; every line's width is checked. Words are matched
exactly (GloVe 6B is lowercase; 840B is cased, so only its lowercase entries match our tokens).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import zipfile
from collections.abc import Container, Iterator, Sequence
from pathlib import Path

import numpy as np

from common.files import replacing
from common.sentiment import DataError
from common.sentiment.vocab import Vocab

_EMBED_STREAM = 1  # random rows' stream, apart from dataset.py's batches (0) and corpora's split (2)


@dataclasses.dataclass(frozen=True)
class Vectors:
    words: tuple[str, ...]  # the kept words, in file order
    matrix: np.ndarray      # (len(words), dim) float32; row i is words[i]'s vector
    source: str             # the file (and zip member) they came from, for messages

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]


@contextlib.contextmanager
def _lines(path: Path, member: str | None) -> Iterator[tuple[str, io.TextIOBase]]:
    """(source name, text stream) of a .txt file or of one member of a .zip."""
    if path.suffix != ".zip":
        with open(path, encoding="utf-8", errors="replace") as f:
            yield str(path), f
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not a readable zip archive ({e})") from None
    with archive:
        texts = [n for n in archive.namelist() if n.endswith(".txt")]
        if member is None:
            if len(texts) != 1:
                raise DataError(f"{path}: name the vectors file, one of: {', '.join(texts) or 'none'}")
            member = texts[0]
        elif member not in archive.namelist():
            raise DataError(f"{path}: no member {member!r}; vector files in it: {', '.join(texts) or 'none'}")
        with archive.open(member) as raw:
            yield f"{path}:{member}", io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_vectors(path: Path, keep: Container[str], member: str | None = None) -> Vectors:
    """The vectors of the words in `keep`; the width D comes from the first line.

    A word may contain spaces (glove.840B has a few, like ". . ."), so a line is split as its
    last D fields and the word before them; a line whose "word" ends in a number has more than
    D numbers and is an error, as is one with fewer, a non-number or a non-finite value."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such vectors file")
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    dim = None
    with _lines(path, member) as (source, lines):
        for number, line in enumerate(lines, 1):
            line = line.rstrip()
            if dim is None:
                dim = line.count(" ")
                if dim < 1:
                    raise DataError(f"{source}, line 1: not a vector line: {line[:60]!r}")
            spaces = line.count(" ")
            if spaces == dim:
                word = line[:line.index(" ")]
            else:
                parts = line.rsplit(" ", dim)
                if spaces < dim or _is_number(parts[0].rpartition(" ")[2]):
                    raise DataError(f"{source}, line {number}: {spaces + 1} fields, expected a word "
                                    f"and {dim} numbers (as line 1)")
                word = parts[0]
            if word not in keep or word in seen:
                continue
            fields = line.rsplit(" ", dim)[1:]
            try:
                row = np.array(fields, dtype=np.float32)
            except ValueError:
                bad = next(f for f in fields if not _is_number(f))
                raise DataError(f"{source}, line {number}: {bad!r} is not a number") from None
            if not np.isfinite(row).all():
                raise DataError(f"{source}, line {number}: a vector of {word!r} is not finite")
            seen.add(word)
            words.append(word)
            rows.append(row)
    if dim is None:
        raise DataError(f"{source}: empty vectors file")
    matrix = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    return Vectors(tuple(words), matrix, source)


def write_vectors(path: Path, words: Sequence[str], matrix: np.ndarray) -> None:
    """Write GloVe text format atomically, each value as %.9g: read back, it is the same float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or len(words) != len(matrix):
        raise DataError(f"{path}: {len(words)} words for a matrix of shape {matrix.shape}")
    bad = next((w for w in words if not w or w != "".join(w.split())), None)
    if bad is not None:
        raise DataError(f"{path}: {bad!r} cannot be a word of a vectors file (empty or has spaces)")
    row_format = " ".join(["%.9g"] * matrix.shape[1])
    with replacing(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for word, row in zip(words, matrix.tolist()):
            f.write(f"{word} {row_format % tuple(row)}\n")


def embedding_matrix(vocab: Vocab, vectors: Vectors, seed: int) -> tuple[np.ndarray, int]:
    """((len(vocab), D) float32 embedding, how many vocabulary words had no vector).

    A word without a vector gets a normal draw scaled to the found vectors' std (seeded, so a
    run is reproducible; a random row of the wrong scale would stand out to the model); PAD's
    row is zeros, UNK's a random row unless the file has one. The count leaves PAD and UNK out."""
    found = [(vocab.index[w], i) for i, w in enumerate(vectors.words) if w in vocab.index]
    if not found:
        raise DataError(f"{vectors.source}: no vocabulary word has a vector (wrong file or casing?)")
    rows, picks = (np.array(x) for x in zip(*found))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_EMBED_STREAM,)))
    matrix = (rng.standard_normal((len(vocab), vectors.dim)) * vectors.matrix[picks].std()).astype(np.float32)
    matrix[rows] = vectors.matrix[picks]
    matrix[0] = 0.0
    missing = len(vocab) - 2 - int((rows >= 2).sum())
    return matrix, missing
