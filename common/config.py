"""The one config both backends read: every knob the study varies, validated on construction.

A `Config` is immutable and always valid: bad values raise `ConfigError` naming the field and
the value, so the command line, JSON files and the sweep harness all share one set of rules.
Defaults reproduce the course handout (see README).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar, TypeVar

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
# The choices of the fields every workload has (RunConfig), and the adder's (Config) with them.
SHARED_CHOICES = {"activation": ACTIVATIONS, "init": INITS, "schedule": SCHEDULES, "dtype": DTYPES,
                  "device": DEVICES, "control": CONTROLS}
CHOICES = {"order": ORDERS, "data": DATASETS, "cell": CELLS, "h0": H0_MODES, **SHARED_CHOICES}

# Caps on what has no sane use and only burns time or memory: 3x the study's deepest stack (10
# layers; JAX unrolls the layers, so its compile time grows with them), and seeds trained together
# in one vmapped program (the GPU speed-up had flattened by 32: x12.2, README 'Speed').
MAX_LAYERS = 32
MAX_SEEDS_PER_PROGRAM = 64
# Training steps one compiled JAX call may take: a call holds its K batches on the device.
MAX_STEPS_PER_CALL = 1000

# The handout's fixed integer ranges: train on [0, 555555555), test on [555555555, 999999999).
HANDOUT_DIGITS = 9
HANDOUT_BASE = 10


class ConfigError(ValueError):
    """A config value is out of range; the message names the field and the value."""


C = TypeVar("C", bound="RunConfig")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What every workload's config shares: the recurrent model, the optimiser, the run, their
    rules, and the frozen, validated, JSON-round-tripping machinery. A workload's config (the
    adder's `Config`, common.sentiment's `TextConfig`) adds its own fields, may give a shared field
    another default (redeclared, it keeps its meaning), and adds its own rules in `validate`."""

    # Model
    cell: str = "rnn"
    layers: int = 1
    hidden: int = 64
    activation: str = "tanh"
    init: str = "shared"
    # Optimisation
    lr: float = 1e-3
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    decay: float = 0.1
    batch_size: int = 64
    steps: int = 600
    eval_every: int = 100
    # A rounding-noise control of this run (common/controls.py): none, ulp or reorder.
    control: str = "none"
    # Run
    seed: int = 0
    dtype: str = "float32"
    threads: int = 0  # host cores; 0: the policy in common/threads.py
    device: str = "auto"
    tf32: bool = False
    # Execution modes (README "Each framework at its best"): how a backend runs the same math.
    # Each is the backend's to honour; one that cannot (the other framework's, or a GPU mode on a
    # CPU) runs the default path and the record's env says so. At their defaults they are left
    # out of to_dict, so run keys and records from before they existed stay as they were.
    unroll: int = 1          # JAX: positions per lax.scan iteration; 0: every position (full unroll)
    steps_per_call: int = 1  # JAX: training steps per compiled call (a scan over K host-made batches)
    graphs: bool = False     # PyTorch on a GPU: the whole training step replayed as one CUDA graph

    MODES: ClassVar[tuple[str, ...]] = ("unroll", "steps_per_call", "graphs")
    TASK: ClassVar[str] = ""  # the workload's name (common/records.py)
    CELLS: ClassVar[tuple[str, ...]] = ("rnn", "lstm", "gru")
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"cell": CELLS, **SHARED_CHOICES}  # flags' enums
    TUPLES: ClassVar[tuple[str, ...]] = ("milestones",)  # list-valued fields, kept as tuples
    # The backends that train several seeds of this workload in one program (a `SeedGroup` in
    # their train module): compare.run --vmap_seeds groups only these backends' runs.
    SEED_GROUPS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        for name in self.TUPLES:
            if not isinstance(getattr(self, name), (list, tuple)):
                reject(name, getattr(self, name), "must be a list of whole numbers")
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    def packages(self) -> dict[str, str]:
        """The installed packages this run's data come from, each with how to install it (none:
        the adder makes its data; the sentiment task's offline default reads them from packages)."""
        return {}

    def validate(self) -> None:
        """The shared rules; a workload's config extends this with its own (super().validate())."""
        check_int(self, "layers", 1, MAX_LAYERS)
        for name in ("hidden", "batch_size", "steps", "eval_every"):
            check_int(self, name, 1)
        check_int(self, "threads", 0)
        check_int(self, "seed", 0, 2**32 - 1)
        for name, choices in {"cell": self.CELLS, **SHARED_CHOICES}.items():
            check_choice(self, name, choices)
        check_bool(self, "tf32")
        check_int(self, "unroll", 0)
        check_int(self, "steps_per_call", 1, MAX_STEPS_PER_CALL)
        check_bool(self, "graphs")
        for name in ("eval_every", "steps"):  # evals and the last step fall between calls
            if getattr(self, name) % self.steps_per_call:
                reject(name, getattr(self, name), f"must be a multiple of steps_per_call={self.steps_per_call}")
        check_positive_float(self, "lr")
        check_positive_float(self, "decay")
        if self.activation != "tanh" and self.cell != "rnn":
            reject("activation", self.activation, f"only the rnn cell takes an activation, not {self.cell}")
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones):
            reject("milestones", list(self.milestones), "must be positive step numbers")
        if list(self.milestones) != sorted(set(self.milestones)):
            reject("milestones", list(self.milestones), "must be strictly increasing")
        if self.control == "ulp" and self.init != "shared":
            reject("control", self.control, "nudges the shared initial weights; needs init=shared")
        if self.schedule == "multistep" and not self.milestones:
            reject("milestones", [], "schedule=multistep needs at least one milestone")

    @property
    def task(self) -> str:
        """The workload this config is for (common/records.py)."""
        return self.TASK

    @property
    def state_parts(self) -> int:
        """Arrays in the recurrent state: (h, c) for an LSTM, h otherwise."""
        return 2 if self.cell == "lstm" else 1

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON values; execution modes at their defaults left out (see MODES)."""
        d = {**dataclasses.asdict(self), **{name: list(getattr(self, name)) for name in self.TUPLES}}
        fields = self.__dataclass_fields__
        return {k: v for k, v in d.items() if k not in self.MODES or v != fields[k].default}

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)  # sorted: run keys hash this text

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        return cls.from_dict(d)


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    """The adder's run (the RNN adder of the course handout)."""

    # Task
    digits: int = HANDOUT_DIGITS
    base: int = HANDOUT_BASE
    order: str = "lsb"
    data: str = "handout"
    # Model (shared fields redeclared: the handout's defaults)
    layers: int = 2
    embed: int = 32
    h0: str = "zeros"
    carry_state: bool = False
    # Optimisation
    milestones: tuple[int, ...] = (1000, 2000)
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

    TASK: ClassVar[str] = "adder"
    CELLS: ClassVar[tuple[str, ...]] = CELLS  # "none": embedding and output layer only (the ablation)
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = CHOICES
    TUPLES: ClassVar[tuple[str, ...]] = ("milestones", "test_lengths")
    SEED_GROUPS: ClassVar[tuple[str, ...]] = ("jax",)

    @property
    def positions(self) -> int:
        """Digits per sequence: the operand digits plus one for the final carry."""
        return self.digits + 1

    def validate(self) -> None:
        super().validate()
        for name in ("digits", "embed", "eval_size", "test_size"):
            check_int(self, name, 1)
        check_int(self, "base", 2, 36)
        for name, choices in CHOICES.items():
            check_choice(self, name, choices)
        for name in ("carry_state", "stop_when_solved", "probe"):
            check_bool(self, name)
        if self.data == "handout" and self.base != HANDOUT_BASE:
            reject("base", self.base, "handout data is decimal; use data=uniform for other bases")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.test_lengths):
            reject("test_lengths", list(self.test_lengths), "must be positive digit counts")


def reject(name: str, value: Any, why: str) -> None:
    """ConfigError naming the field and its value (both configs' validation raises through here)."""
    raise ConfigError(f"{name}={value!r}: {why}")


def check_int(cfg: RunConfig, name: str, lo: int, hi: int | None = None) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int):
        reject(name, v, "must be an integer")
    if v < lo or (hi is not None and v > hi):
        reject(name, v, f"must be in [{lo}, {hi}]" if hi is not None else f"must be >= {lo}")


def check_choice(cfg: RunConfig, name: str, choices: tuple[str, ...]) -> None:
    v = getattr(cfg, name)
    if v not in choices:
        reject(name, v, f"must be one of {', '.join(choices)}")


def check_bool(cfg: RunConfig, name: str) -> None:
    v = getattr(cfg, name)
    if not isinstance(v, bool):
        reject(name, v, "must be true or false")


def check_positive_float(cfg: RunConfig, name: str) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        reject(name, v, "must be a number")
    if not (math.isfinite(v) and v > 0):
        reject(name, v, "must be a finite number > 0")
