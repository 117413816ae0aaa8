"""The one config both backends read: every knob the study varies, validated on construction.

A `Config` is immutable and always valid: bad values raise `ConfigError` naming the field and
the value, so the command line, JSON files and the sweep harness all share one set of rules.
Defaults reproduce the course handout (see README).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar

CELLS = ("rnn", "lstm", "gru", "none")
ACTIVATIONS = ("tanh", "relu")
ORDERS = ("lsb", "msb")
DATASETS = ("handout", "uniform")
H0_MODES = ("zeros", "randn", "randn10", "xavier", "he")
INITS = ("shared", "native")
SCHEDULES = ("constant", "multistep")
DTYPES = ("float32", "float64")
DEVICES = ("auto", "cpu", "gpu")
# Rounding-noise controls (common/controls.py): the same run, perturbed only at rounding level.
CONTROLS = ("none", "ulp", "reorder")
CHOICES = {"order": ORDERS, "data": DATASETS, "cell": CELLS, "activation": ACTIVATIONS,
           "h0": H0_MODES, "init": INITS, "schedule": SCHEDULES, "dtype": DTYPES,
           "device": DEVICES, "control": CONTROLS}

# Caps on what has no sane use and only burns time or memory: 3x the study's deepest stack (10
# layers; JAX unrolls the layers, so its compile time grows with them), and seeds trained together
# in one vmapped program (the GPU speed-up had flattened by 32: x12.2, README 'Speed').
MAX_LAYERS = 32
MAX_SEEDS_PER_PROGRAM = 64

# The handout's fixed integer ranges: train on [0, 555555555), test on [555555555, 999999999).
HANDOUT_DIGITS = 9
HANDOUT_BASE = 10


class ConfigError(ValueError):
    """A config value is out of range; the message names the field and the value."""


@dataclasses.dataclass(frozen=True)
class Config:
    # Task
    digits: int = HANDOUT_DIGITS
    base: int = HANDOUT_BASE
    order: str = "lsb"
    data: str = "handout"
    # Model
    cell: str = "rnn"
    layers: int = 2
    hidden: int = 64
    embed: int = 32
    activation: str = "tanh"
    h0: str = "zeros"
    carry_state: bool = False
    init: str = "shared"
    # Optimisation
    lr: float = 1e-3
    schedule: str = "constant"
    milestones: tuple[int, ...] = (1000, 2000)
    decay: float = 0.1
    batch_size: int = 200
    steps: int = 3000
    # Evaluation
    eval_every: int = 50
    eval_size: int = 2000
    stop_when_solved: bool = False
    # Length generalisation: after training, score fresh sums of these operand lengths.
    test_lengths: tuple[int, ...] = ()
    test_size: int = 500
    # After training, fit a linear carry probe to every layer's hidden states (common/probe.py).
    probe: bool = False
    # A rounding-noise control of this run (common/controls.py): none, ulp or reorder.
    control: str = "none"
    # Run
    seed: int = 0
    dtype: str = "float32"
    threads: int = 0  # host cores; 0: the policy in common/threads.py
    device: str = "auto"
    tf32: bool = False

    # The backends that train several seeds of this workload in one program (a `SeedGroup` in
    # their train module): compare.run --vmap_seeds groups only these backends' runs.
    SEED_GROUPS: ClassVar[tuple[str, ...]] = ("jax",)

    def __post_init__(self):
        for name in ("milestones", "test_lengths"):
            if not isinstance(getattr(self, name), (list, tuple)):
                reject(name, getattr(self, name), "must be a list of whole numbers")
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _validate(self)

    @property
    def task(self) -> str:
        """The workload (common/records.py): this config is the adder's; common.sentiment has its own."""
        return "adder"

    @property
    def positions(self) -> int:
        """Digits per sequence: the operand digits plus one for the final carry."""
        return self.digits + 1

    @property
    def state_parts(self) -> int:
        """Arrays in the recurrent state: (h, c) for an LSTM, h otherwise."""
        return 2 if self.cell == "lstm" else 1

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["test_lengths"] = list(self.test_lengths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        return cls.from_dict(d)


def reject(name: str, value: Any, why: str) -> None:
    """ConfigError naming the field and its value (both configs' validation raises through here)."""
    raise ConfigError(f"{name}={value!r}: {why}")


def check_int(cfg: Config, name: str, lo: int, hi: int | None = None) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int):
        reject(name, v, "must be an integer")
    if v < lo or (hi is not None and v > hi):
        reject(name, v, f"must be in [{lo}, {hi}]" if hi is not None else f"must be >= {lo}")


def check_choice(cfg: Config, name: str, choices: tuple[str, ...]) -> None:
    v = getattr(cfg, name)
    if v not in choices:
        reject(name, v, f"must be one of {', '.join(choices)}")


def check_bool(cfg: Config, name: str) -> None:
    v = getattr(cfg, name)
    if not isinstance(v, bool):
        reject(name, v, "must be true or false")


def check_positive_float(cfg: Config, name: str) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        reject(name, v, "must be a number")
    if not (math.isfinite(v) and v > 0):
        reject(name, v, "must be a finite number > 0")


def _validate(cfg: Config) -> None:
    check_int(cfg, "layers", 1, MAX_LAYERS)
    for name in ("digits", "hidden", "embed", "batch_size", "steps",
                 "eval_every", "eval_size", "test_size"):
        check_int(cfg, name, 1)
    check_int(cfg, "threads", 0)
    check_int(cfg, "base", 2, 36)
    check_int(cfg, "seed", 0, 2**32 - 1)
    for name, choices in CHOICES.items():
        check_choice(cfg, name, choices)
    for name in ("carry_state", "tf32", "stop_when_solved", "probe"):
        check_bool(cfg, name)
    check_positive_float(cfg, "lr")
    check_positive_float(cfg, "decay")

    if cfg.activation != "tanh" and cfg.cell != "rnn":
        reject("activation", cfg.activation, f"only the rnn cell takes an activation, not {cfg.cell}")
    if cfg.data == "handout" and cfg.base != HANDOUT_BASE:
        reject("base", cfg.base, "handout data is decimal; use data=uniform for other bases")
    if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in cfg.milestones):
        reject("milestones", list(cfg.milestones), "must be positive step numbers")
    if list(cfg.milestones) != sorted(set(cfg.milestones)):
        reject("milestones", list(cfg.milestones), "must be strictly increasing")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in cfg.test_lengths):
        reject("test_lengths", list(cfg.test_lengths), "must be positive digit counts")
    if cfg.control == "ulp" and cfg.init != "shared":
        reject("control", cfg.control, "nudges the shared initial weights; needs init=shared")
    if cfg.schedule == "multistep" and not cfg.milestones:
        reject("milestones", [], "schedule=multistep needs at least one milestone")
