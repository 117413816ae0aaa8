"""One sentiment run, frozen and validated like the adder's `common.config.Config`: an error
names the field and the value. Fields common to both workloads (cell, layers, lr, seed, dtype,
device, ...) mean the same in both."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

from common.config import (ACTIVATIONS, CONTROLS, DEVICES, DTYPES, INITS, MAX_LAYERS, SCHEDULES, ConfigError,
                           check_bool, check_choice, check_int, check_positive_float, reject)

CELLS = ("rnn", "lstm", "gru")
CORPORA = ("default", "imdb", "csv")
CHOICES = {"corpus": CORPORA, "cell": CELLS, "activation": ACTIVATIONS, "init": INITS,
           "schedule": SCHEDULES, "dtype": DTYPES, "device": DEVICES, "control": CONTROLS}


@dataclasses.dataclass(frozen=True)
class TextConfig:
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
    # Model
    cell: str = "rnn"
    layers: int = 1
    hidden: int = 256
    activation: str = "tanh"
    train_embedding: bool = False  # False: the pretrained vectors stay as they are
    # PyTorch: pack each batch (the lab's code; cuDNN's varlen path on a GPU), or run the padded
    # batch and read each text's last real output (faster on a CPU for long texts: README). JAX
    # always scans the padded batch under a length mask.
    pack: bool = False
    init: str = "shared"
    # Optimisation
    lr: float = 1e-3
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    decay: float = 0.1
    batch_size: int = 64
    steps: int = 600
    # Evaluation: the whole test split every eval_every steps, eval_batch texts at a time
    eval_every: int = 100
    eval_batch: int = 256
    # A rounding-noise control of this run (common/controls.py): none, ulp or reorder.
    control: str = "none"
    # Run
    seed: int = 0
    dtype: str = "float32"
    threads: int = 0
    device: str = "auto"
    tf32: bool = False

    SEED_GROUPS: ClassVar[tuple[str, ...]] = ()  # Config.SEED_GROUPS: no backend groups text runs yet

    def __post_init__(self):
        if not isinstance(self.milestones, (list, tuple)):
            reject("milestones", self.milestones, "must be a list of whole numbers")
        object.__setattr__(self, "milestones", tuple(self.milestones))
        _validate(self)

    @property
    def task(self) -> str:
        return "sentiment"

    @property
    def state_parts(self) -> int:
        """Arrays in the recurrent state: (h, c) for an LSTM, h otherwise."""
        return 2 if self.cell == "lstm" else 1

    def replace(self, **changes: Any) -> TextConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "milestones": list(self.milestones)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _validate(cfg: TextConfig) -> None:
    check_int(cfg, "layers", 1, MAX_LAYERS)
    for name in ("max_len", "max_size", "min_count", "hidden", "batch_size", "steps", "eval_every",
                 "eval_batch"):
        check_int(cfg, name, 1)
    check_int(cfg, "threads", 0)
    check_int(cfg, "filler", 0)
    check_int(cfg, "seed", 0, 2**32 - 1)
    for name, choices in CHOICES.items():
        check_choice(cfg, name, choices)
    for name in ("train_embedding", "tf32", "pack"):
        check_bool(cfg, name)
    check_positive_float(cfg, "lr")
    check_positive_float(cfg, "decay")
    for name in ("corpus_path", "vectors", "vectors_member", "csv_text", "csv_label", "csv_positive",
                 "csv_negative"):
        if not isinstance(getattr(cfg, name), str):
            reject(name, getattr(cfg, name), "must be a string")
    if cfg.activation != "tanh" and cfg.cell != "rnn":
        reject("activation", cfg.activation, f"only the rnn cell takes an activation, not {cfg.cell}")
    if cfg.corpus != "default" and not cfg.corpus_path:
        reject("corpus_path", cfg.corpus_path, f"corpus={cfg.corpus} needs the path of its files")
    if cfg.corpus == "default" and cfg.corpus_path:
        reject("corpus_path", cfg.corpus_path, "the default corpus is installed (pip install -e '.[text]'); "
                                              "set corpus=imdb or corpus=csv to read files")
    if cfg.filler and cfg.corpus != "default":
        reject("filler", cfg.filler, "pads the default corpus's tweets with its neutral ones; use corpus=default")
    if cfg.vectors_member and not cfg.vectors.endswith(".zip"):
        reject("vectors_member", cfg.vectors_member, "names a file inside a .zip given as vectors")
    if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in cfg.milestones):
        reject("milestones", list(cfg.milestones), "must be positive step numbers")
    if list(cfg.milestones) != sorted(set(cfg.milestones)):
        reject("milestones", list(cfg.milestones), "must be strictly increasing")
    if cfg.control == "ulp" and cfg.init != "shared":
        reject("control", cfg.control, "nudges the shared initial weights; needs init=shared")
    if cfg.schedule == "multistep" and not cfg.milestones:
        reject("milestones", [], "schedule=multistep needs at least one milestone")
