"""Every experiment of the study as a named sweep: what it varies and its two presets.

`quick` finishes in minutes on a 2-core CPU (fewer steps, shorter numbers, a higher lr);
`paper` uses the reports' settings (handout model, lr 1e-3, 3000 steps: meant for a GPU box).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable
from typing import Any

from common.config import H0_MODES, ConfigError
from common.tasks import TASKS
from compare.findings import CHECKS
from compare.stats import CURVE_TOLERANCE, NOISE, agreements


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    about: str
    # Swept field -> values, per preset. Two fields make a heatmap (cartesian product).
    quick_axes: dict[str, tuple]
    paper_axes: dict[str, tuple]
    # Fixed overrides on top of the defaults, per preset.
    quick: dict[str, Any] = dataclasses.field(default_factory=dict)
    paper: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Fields that depend on the swept values: (point, preset) -> overrides.
    derive: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    task: str = "adder"  # a name in common.tasks.TASKS ("sentiment": the second lab)

    def axes(self, preset: str) -> dict[str, tuple]:
        return self.quick_axes if preset == "quick" else self.paper_axes

    def base(self, preset: str) -> dict[str, Any]:
        """The task's preset (common.tasks) with this sweep's own fixed fields on top."""
        task = TASKS[self.task]
        return {**task.quick, **self.quick} if preset == "quick" else {**task.paper, **self.paper}

    @property
    def fields(self) -> set[str]:
        """The config fields its runs have (what --set may change)."""
        return {f.name for f in dataclasses.fields(TASKS[self.task].config)}

    @property
    def is_heatmap(self) -> bool:
        return len(self.quick_axes) == 2 and self.name.startswith("heatmap")


_DIGITS = (5, 10, 20, 25, 50, 70, 100, 300, 500, 1000, 5000)
_LRS = (1e-5, 1e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5)
_CAP = {"stop_when_solved": True}  # heatmaps record steps-to-100 %, capped at `steps`


def _test_lengths(point: dict[str, Any], preset: str) -> dict[str, Any]:
    """Score a model trained on N digits at N, 2N, 10N, 100N (1000N) and at fixed lengths."""
    n = point["digits"]
    factors, fixed = ((1, 2, 10, 100), (10, 100, 1000)) if preset == "quick" else \
        ((1, 2, 10, 100, 1000), (10, 100, 1000, 10000))
    return {"test_lengths": tuple(sorted({n * f for f in factors} | set(fixed)))}


def table(sweeps: list[Sweep]) -> dict[str, Sweep]:
    """The sweeps by name. A name taken twice, or a sweep its workload has no findings entry for
    (compare.findings CHECKS: the report judges every sweep; an empty list of claims is an entry),
    is refused here, when the table is built, not by the report after the sweep's runs."""
    by_name: dict[str, Sweep] = {}
    for sweep in sweeps:
        if sweep.name in by_name:
            raise ValueError(f"sweep {sweep.name!r}: a second sweep of that name")
        if sweep.name not in CHECKS.get(sweep.task, {}):
            raise ValueError(f"sweep {sweep.name!r}: compare/findings/{sweep.task}.py has no CHECKS entry for it")
        by_name[sweep.name] = sweep
    return by_name


SWEEPS = table([
    Sweep("layers", "recurrent layers (handout model otherwise)",
          {"layers": (1, 2, 3, 4, 10)}, {"layers": (1, 2, 3, 4, 10)}),
    Sweep("cells", "rnn vs lstm vs gru, 3 layers",
          {"cell": ("rnn", "lstm", "gru")}, {"cell": ("rnn", "lstm", "gru")},
          quick={"layers": 3, "data": "uniform", "digits": 20},
          paper={"layers": 3, "data": "uniform", "digits": 100}),
    Sweep("lr", "Adam learning rate",
          {"lr": _LRS}, {"lr": _LRS}),
    Sweep("schedule", "constant lr vs multi-step decay",
          {"schedule": ("constant", "multistep")}, {"schedule": ("constant", "multistep")},
          quick={"lr": 2e-2, "milestones": (60, 120), "decay": 0.3},
          paper={"lr": 1e-2, "milestones": (300, 600), "decay": 0.1}),
    Sweep("digits", "operand length (uniform random digits)",
          {"digits": (5, 10, 20, 50, 100)}, {"digits": _DIGITS},
          quick={"data": "uniform"}, paper={"data": "uniform"}),
    Sweep("activation", "rnn nonlinearity",
          {"activation": ("tanh", "relu")}, {"activation": ("tanh", "relu")}),
    Sweep("h0", "initial hidden state",
          {"h0": H0_MODES}, {"h0": H0_MODES}),
    Sweep("carry", "previous batch's final state as h0, or not",
          {"carry_state": (False, True)}, {"carry_state": (False, True)}),
    Sweep("ablation", "embedding + linear with and without the recurrent layers",
          {"cell": ("rnn", "none")}, {"cell": ("rnn", "none")}),
    Sweep("init", "identical shared weights vs each framework's own initialisers",
          {"init": ("shared", "native")}, {"init": ("shared", "native")}),
    Sweep("lengthgen", "train on N digits, test on longer numbers (cell x training length)",
          {"cell": ("rnn", "lstm", "gru"), "digits": (2, 3, 4, 6, 10, 20)},
          {"cell": ("rnn", "lstm", "gru"), "digits": (2, 3, 4, 6, 10, 20)},
          quick={"data": "uniform", "test_size": 100}, paper={"data": "uniform", "test_size": 1000},
          derive=_test_lengths),
    Sweep("order", "least- vs most-significant digit first (a forward RNN cannot see a carry coming)",
          {"order": ("lsb", "msb")}, {"order": ("lsb", "msb")},
          quick={"data": "uniform", "digits": 10}, paper={"data": "uniform", "digits": 20}),
    Sweep("base", "number base",
          {"base": (2, 10, 16)}, {"base": (2, 10, 16)},
          quick={"data": "uniform", "digits": 10}, paper={"data": "uniform", "digits": 20}),
    Sweep("probe", "does a linear probe read the carry off each layer's hidden state?",
          {"cell": ("rnn", "lstm", "gru"), "order": ("lsb", "msb")},
          {"cell": ("rnn", "lstm", "gru"), "order": ("lsb", "msb")},
          quick={"data": "uniform", "digits": 10, "probe": True},
          paper={"data": "uniform", "digits": 20, "probe": True}),
    Sweep("heatmap-lr-digits", "steps to 100 % over lr x operand length (capped)",
          {"lr": (1e-3, 3e-3, 1e-2, 3e-2), "digits": (10, 20, 50)},
          {"lr": (1e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2), "digits": (10, 20, 50, 70, 100, 300)},
          quick={"data": "uniform", "steps": 400, **_CAP},
          paper={"data": "uniform", "steps": 3000, **_CAP}),
    Sweep("heatmap-layers-carry", "steps to 100 % over layers x carried state (capped)",
          {"layers": (1, 2, 3, 4), "carry_state": (False, True)},
          {"layers": (1, 2, 3, 4, 10), "carry_state": (False, True)},
          quick={"steps": 400, **_CAP}, paper={"steps": 500, "lr": 1e-2, **_CAP}),
    Sweep("text-cells", "sentiment: rnn vs lstm vs gru, hidden 256, 1 layer",
          {"cell": ("rnn", "lstm", "gru")}, {"cell": ("rnn", "lstm", "gru")}, task="sentiment"),
    Sweep("text-layers", "sentiment: rnn with 1 or 2 layers, hidden 256",
          {"layers": (1, 2)}, {"layers": (1, 2)}, task="sentiment"),
    Sweep("text-hidden", "sentiment: rnn with hidden 256, 512, 1024",
          {"hidden": (256, 512, 1024)}, {"hidden": (256, 512, 1024)}, task="sentiment",
          quick={"steps": 200, "eval_every": 100}),  # 1024 is 16x the work of 256 on a CPU
    Sweep("text-length", "sentiment: accuracy by text length per cell; quick also moves the label's words "
          "10 tokens from the end (neutral filler after each tweet)",
          {"cell": ("rnn", "lstm", "gru"), "filler": (0, 10)}, {"cell": ("rnn", "lstm", "gru")},
          task="sentiment", quick={"hidden": 128, "steps": 600, "eval_every": 150}),
    # Filler 10 is where the cells part at this budget (hidden 128, 600 steps, JAX, seed 0, best
    # test accuracy): rnn 0.69 (the majority class is 0.70), lstm 0.85, gru 0.86; without filler
    # all three reach 0.83-0.86. At 25 tokens or more every cell stays at the majority class
    # (and did at 50 and 150 with hidden 64): the budget, not the cell, is then what fails.
])
ALL = "all"
PRESETS = ("quick", "paper")


@dataclasses.dataclass(frozen=True)
class Run:
    """One config x backend x seed: the unit the harness executes, resumes and reports."""
    sweep: str
    backend: str
    config: Config | TextConfig
    point: tuple[tuple[str, Any], ...]  # the swept values, e.g. (("layers", 3),)
    role: str = "main"  # or a follow-up of a parted config: "control", "confirm64", "control64" (compare.stats)

    @property
    def key(self) -> str:
        digest = hashlib.sha1(self.config.to_json().encode()).hexdigest()[:16]
        return f"{self.sweep}-{self.backend}-{digest}"

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.point)


def expand(sweep: Sweep, preset: str, backends: list[str], seeds: int,
           overrides: dict[str, Any]) -> list[Run]:
    """Every run of the sweep; raises ConfigError (naming the value) if any config is invalid."""
    axes = sweep.axes(preset)
    alien = sorted(set(overrides) - sweep.fields)
    if alien:
        raise ConfigError(f"--set {alien[0]}=…: not a field of sweep {sweep.name}'s {sweep.task} runs")
    base = {**sweep.base(preset), **overrides}
    runs = []
    for values in itertools.product(*axes.values()):
        point = tuple(zip(axes, values))
        derived = sweep.derive(dict(point), preset) if sweep.derive else {}
        for seed in range(seeds):
            cfg = TASKS[sweep.task].config(**{**base, **derived, **dict(point), "seed": seed})
            runs.extend(Run(sweep.name, b, cfg, point) for b in backends)
    return runs


def _control(run: Run, control: str) -> Run:
    return dataclasses.replace(run, config=run.config.replace(control=control), role="control")


def _float64(run: Run) -> Run:
    return dataclasses.replace(run, config=run.config.replace(dtype="float64"), role="confirm64")


def _control64(run: Run, control: str) -> Run:
    """The float64 run's own rounding-noise control: the same control kind, in float64."""
    return dataclasses.replace(run, config=run.config.replace(control=control, dtype="float64"), role="control64")


def related_keys(runs: list[Run], control: str) -> set[str]:
    """The keys of the runs and of every follow-up that can be made of them: what a verdict on
    them reads (whichever invocation of the sweep ran them)."""
    return {k for r in runs for k in (r.key, _control(r, control).key, _float64(r).key,
                                      _control64(r, control).key)}


def follow_ups(runs: list[Run], records: dict[str, dict[str, Any]], control: str,
               confirm64: str) -> list[Run]:
    """Runs that say why a config's same-seed curves parted (compare.stats), for the seed that
    parted most: each backend's rounding-noise control (`control`: ulp or reorder, see
    common/controls.py; none), then both backends in float64 where the control does not explain
    the parting (`confirm64` auto), for every parted config (all) or never (none), then, where
    the float64 curves part too and nothing explains it yet, each backend's control in float64
    (unless `control` or `confirm64` is none). Call again after running them: float64 runs follow
    their controls, float64 controls their float64 runs."""
    related = related_keys(runs, control)
    done = [rec for key, rec in records.items() if key in related]
    by_label: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by_label.setdefault((r.sweep, r.label), []).append(r)
    extra = []
    for sweep in dict.fromkeys(r.sweep for r in runs):
        for verdict in agreements([rec for rec in done if rec["sweep"] == sweep]):
            if not (verdict.worst and verdict.worst.parted):
                continue
            for run in by_label[(sweep, verdict.label)]:
                if run.config.seed != verdict.worst.seed:
                    continue
                controlled = _control(run, control)
                if control != "none":
                    extra.append(controlled)
                awaiting_control = control != "none" and controlled.key not in records
                wanted64 = confirm64 == "all" or (confirm64 == "auto" and not awaiting_control
                                                  and verdict.verdict != NOISE)
                if wanted64 and run.config.dtype != "float64":
                    extra.append(_float64(run))
                parted64 = verdict.float64_gap is not None and verdict.float64_gap > CURVE_TOLERANCE
                if (parted64 and control != "none" and confirm64 != "none" and verdict.verdict != NOISE
                        and run.config.dtype != "float64"):
                    extra.append(_control64(run, control))
    return extra
