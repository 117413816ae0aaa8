"""Do the two backends compute the same adder? Same weights and batches in, compare what comes out.

For each cell variant x layers x dtype, both backends start from the same shared weights and see
the same batches; we compare forward logits and the loss and every parameter gradient (for every
h0 mode), then the loss trajectory and final parameters over training runs of Adam: a constant
learning rate from zero h0 (the handout), and a multi-step schedule with the carried-state mode
from random h0 (`full`: every h0 mode x carry x schedule). The bounds are compare.equivalence.core's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import backends
from common.config import H0_MODES, Config
from common.data import train_batch
from compare.equivalence.core import CONTROLS, RELU_FLOAT32_STEPS, STEPS, VARIANTS, Result, worst


def base_config(variant: str, layers: int, dtype: str, device: str = "cpu") -> Config:
    return Config(layers=layers, dtype=dtype, device=device, batch_size=64, eval_size=64,
                  **VARIANTS[variant])


def training_runs(cfg: Config, full: bool) -> list[Config]:
    """The training configurations checked for one variant (see module docstring)."""
    steps = RELU_FLOAT32_STEPS if cfg.activation == "relu" and cfg.dtype == "float32" else STEPS
    scheduled = dict(schedule="multistep", milestones=(steps // 3, 2 * steps // 3), decay=0.3)
    if not full:
        return [cfg.replace(steps=steps, h0="zeros"),
                cfg.replace(steps=steps, h0="randn", carry_state=True, **scheduled)]
    return [cfg.replace(steps=steps, h0=h0, carry_state=carry, **(scheduled if sched else {}))
            for h0 in H0_MODES for carry in (False, True) for sched in (False, True)]


def trainer(backend: str, cfg: Config):
    return backends.module(backend, "adder").Trainer(cfg)


def trainers(cfg: Config) -> tuple[Any, Any]:
    """(JAX trainer, PyTorch trainer), both from the config's shared init."""
    return trainer("jax", cfg), trainer("torch", cfg)


def compare_step(cfg: Config) -> dict[str, Any]:
    """Forward logits, loss and gradients on one batch for every h0 mode; the worst of each."""
    jax_t, torch_t = trainers(cfg)
    out = {"logits": 0.0, "loss": 0.0, "grads": (0.0, "")}
    for h0 in H0_MODES:
        batch = train_batch(cfg.replace(h0=h0), 1)
        out["logits"] = max(out["logits"], float(np.abs(jax_t.logits(batch) - torch_t.logits(batch)).max()))
        (jax_loss, jax_grads), (torch_loss, torch_grads) = jax_t.gradients(batch), torch_t.gradients(batch)
        out["loss"] = max(out["loss"], abs(jax_loss - torch_loss) / abs(torch_loss))
        out["grads"] = max(out["grads"], worst(jax_grads, torch_grads))
    return out


def train_pair(cfg: Config, first, second) -> dict[str, Any]:
    """Train two trainers for cfg.steps steps, each on the batches of its own config (a reorder
    control's are permuted): their worst relative loss gap over the steps and the worst relative
    gap of their final parameters (second is the reference)."""
    gap = 0.0
    for step in range(1, cfg.steps + 1):
        first.step(train_batch(first.cfg, step))
        second.step(train_batch(second.cfg, step))
        a, b = first.loss(), second.loss()
        gap = max(gap, abs(a - b) / abs(b))
    return {"trajectory": gap, "params": worst(first.params(), second.params())}


def compare_training(cfg: Config) -> dict[str, Any]:
    """Loss trajectories and final parameters after cfg.steps identical Adam steps."""
    return train_pair(cfg, *trainers(cfg))


def within_framework(cfg: Config, backend: str) -> dict[str, dict[str, Any]]:
    """The noise floor inside one backend, in the units of compare_training: the same run again
    (`repeat`: 0 where the device computes deterministically) and each rounding-noise control of
    common/controls.py (`ulp`: initial weights nudged by one ulp; `reorder`: every batch's rows
    in another order), each against the plain run."""
    return {kind: train_pair(cfg, trainer(backend, cfg.replace(control="none" if kind == "repeat" else kind)),
                             trainer(backend, cfg))
            for kind in CONTROLS}


# What `python -m compare.equivalence --task adder` reads of this module: the flags its checks take
# beyond variant, layers, dtype and device; the layer counts it checks unless --layers says; what
# each result's rows range over.
OPTIONS = ("full", "noise")
LAYERS = (1, 2, 3)
OVER = "h0 modes"


def check(variant: str, layers: int, dtype: str, device: str = "cpu", full: bool = False,
          noise: bool = False) -> Result:
    """Every comparison for one variant; with `noise` (float32 only: float64 runs agree to
    ~1e-13 and their rounding is not in question), each backend's own noise floor over the same
    training runs."""
    cfg = base_config(variant, layers, dtype, device)
    step = compare_step(cfg)
    configs = training_runs(cfg, full)
    runs = [compare_training(run) for run in configs]
    floors = None
    if noise and dtype == "float32":
        floors = {}
        for backend in backends.BACKENDS:
            per_run = [within_framework(run, backend) for run in configs]
            floors[backend] = {kind: {what: max(r[kind][what] for r in per_run)
                                      for what in ("trajectory", "params")}
                               for kind in CONTROLS}
    return Result(variant, layers, dtype, step["logits"], step["loss"], step["grads"],
                  trajectory=max(r["trajectory"] for r in runs),
                  params=max(r["params"] for r in runs),
                  steps=configs[0].steps, device=device, noise=floors)
