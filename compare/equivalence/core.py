"""What the equivalence checks of every workload share: the bounds (and the measurements behind
them), the relative gap of two tensors, the result of one variant and its table.

Each workload's module (adder.py, sentiment.py) runs both backends from the same shared weights
on the same batches and fills a Result; `python -m compare.equivalence` (__main__.py) runs them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

VARIANTS = {
    "rnn-tanh": {"cell": "rnn", "activation": "tanh"},
    "rnn-relu": {"cell": "rnn", "activation": "relu"},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
}


@dataclasses.dataclass(frozen=True)
class Bounds:
    logits: float      # max |Δ logits|
    grads: float       # max |Δ| / max |reference| per gradient tensor, and for the loss
    trajectory: float  # max over steps of |Δ loss| / loss
    params: float      # max |Δ| / max |reference| per parameter tensor after training


BOUNDS = {
    "float32": Bounds(logits=1e-5, grads=1e-5, trajectory=1e-4, params=1e-3),
    "float64": Bounds(logits=1e-10, grads=1e-10, trajectory=1e-10, params=1e-10),
}
STEPS = 100
# rnn-relu in float32 is held to the same bounds on logits, loss and gradients, but two are
# relaxed, for reasons measured at lr 1e-3, batch 64 (the function itself matches: in float64
# every relu figure agrees to ~1e-14 over all 100 steps):
# - Horizon. The relu RNN's training dynamics amplify rounding: inside PyTorch alone, nudging
#   every weight by one ulp after each step moves the loss by 4.3e-4 (2 layers) and 5.1e-4
#   (3 layers) relative within 100 steps, the same order as the cross-framework gap (3.8e-4,
#   2.1e-3). Over the first 30 steps both stay near 1e-4: across every h0/carry/schedule mode
#   of the full check (3 layers), the one-ulp nudge inside PyTorch reaches 1.0e-4 (h0 zeros) and
#   the cross-framework gap 1.3e-4 (h0 xavier/he, where the nudge gives 5.4e-5), so the run-loss
#   bound is 5e-4; the other modes stay below 1e-6 across frameworks.
# - Final parameters. A relu unit on the edge of dying gets a gradient of ~1e-6 in one
#   framework and exactly 0 (or the opposite sign) in the other; Adam normalises it into a
#   full +-lr step. Seen: one weight of a 3-layer model with gradients (0, -1.1e-6, -6.1e-6,
#   3.7e-6, -2.9e-5) in PyTorch vs (0, 1.1e-6, 0, 3.2e-6, 0) in JAX ends 9e-3 apart, 6e-2 of
#   the tensor's largest weight.
RELU_FLOAT32_STEPS = 30
RELU_FLOAT32_BOUNDS = dataclasses.replace(BOUNDS["float32"], trajectory=5e-4, params=1e-1)


# On a GPU, float32 gradients and final parameters get wider bounds; measured on an NVIDIA H200
# (torch 2.11.0+cu130 with cuDNN 9.19, jax 0.11.2, TF32 off on both sides), 2 layers, every cell,
# the figures of `python -m compare.equivalence --device gpu --layers 2 --noise` (compare.gpu_check):
# - The function is the same: float64 logits, gradients and 100-step losses agree to <= 6e-15,
#   final parameters to <= 1.9e-13; float32 losses agree at every step to <= 2.3e-7, which is
#   JAX's own run-to-run spread there (XLA:GPU is not bitwise repeatable: the same run twice
#   differs by 2.2-2.4e-7 in loss and 3e-7 in final parameters; cuDNN's runs are identical).
# - Gradients: cuDNN sums the weight gradients over positions and batch in another order than
#   XLA's scan backward. The gap reaches 9.7e-6 (rnn-tanh weight_hh_l1) and 9.8e-6 (lstm),
#   the same figures in two sessions, against 1.2e-6 on CPU: a 1e-5 bound held with 2 % to
#   spare. Bound 3e-5.
# - Final parameters: those gradient gaps are ~80 float32 ulps, far more than a one-ulp nudge
#   of the weights, and Adam turns a difference in a near-zero gradient into a full +-lr step.
#   Cross-framework gaps: gru 1.36e-3 (weight_ih_l1; 1.36e-3 in an earlier session too), lstm
#   1.4e-4, rnn-tanh 1.1e-4, rnn-relu 9.5e-6; the one-ulp nudge inside one framework alone:
#   gru 1.9e-4 (JAX) and 2.2e-4 (PyTorch) on that same tensor, lstm 2.0e-5, rnn-tanh 7.1e-6,
#   rnn-relu 3.2e-5. Bound 5e-3, 3.7x the largest gap; a real difference (a swapped gate, a
#   dropped bias) breaks the logits and gradient bounds by orders of magnitude first.
# What would change it: a within-framework floor from a perturbation of the size kernels make,
# not yet measured on a GPU: the `reorder` control (added after that run; on CPU its per-step
# gap matches the cross-framework one, the one-ulp nudge's is a few times smaller), or PyTorch
# with and without cuDNN. If it reaches ~1e-3 for gru, this is confirmed as rounding; if it
# stays near the one-ulp figure, the 1.4e-3 needs explaining.
GPU_FLOAT32_GRADS = 3e-5
GPU_FLOAT32_PARAMS = 5e-3


def bounds_for(variant: str, dtype: str, device: str = "cpu") -> Bounds:
    bounds = RELU_FLOAT32_BOUNDS if (variant, dtype) == ("rnn-relu", "float32") else BOUNDS[dtype]
    if (device, dtype) == ("gpu", "float32"):
        bounds = dataclasses.replace(bounds, grads=max(bounds.grads, GPU_FLOAT32_GRADS),
                                     params=max(bounds.params, GPU_FLOAT32_PARAMS))
    return bounds


def relative(x: np.ndarray, reference: np.ndarray) -> float:
    """max |x - reference| scaled by the reference tensor's largest magnitude."""
    scale = float(np.abs(reference).max())
    return float(np.abs(x - reference).max()) / (scale if scale > 0 else 1.0)


def worst(x: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> tuple[float, str]:
    assert x.keys() == reference.keys(), (sorted(x), sorted(reference))
    return max((relative(x[k], reference[k]), k) for k in reference)


# The noise floor inside one backend (compare.equivalence.adder.within_framework): the same run
# again, and each rounding-noise control of common/controls.py.
CONTROLS = ("repeat", "ulp", "reorder")


@dataclasses.dataclass
class Result:
    variant: str
    layers: int
    dtype: str
    logits: float
    loss: float
    grads: tuple[float, str]
    trajectory: float
    params: tuple[float, str]
    steps: int
    device: str = "cpu"
    # Within one backend (adder.within_framework), worst over the training runs: backend -> kind
    # (CONTROLS) -> {"trajectory", "params"}; None unless asked for.
    noise: dict[str, dict[str, dict[str, Any]]] | None = None

    def noise_figure(self, kind: str, what: str) -> float | None:
        """The larger of the two backends' within-framework gaps of this kind."""
        if not self.noise:
            return None
        values = [n[kind][what] for n in self.noise.values()]
        return max(v[0] if isinstance(v, tuple) else v for v in values)

    def violations(self) -> list[str]:
        b = bounds_for(self.variant, self.dtype, self.device)
        checks = [("logits", self.logits, b.logits), ("loss", self.loss, b.grads),
                  (f"grad {self.grads[1]}", self.grads[0], b.grads),
                  ("loss trajectory", self.trajectory, b.trajectory),
                  (f"params {self.params[1]}", self.params[0], b.params)]
        return [f"{self.variant} x{self.layers} {self.dtype}: {what} {value:.2e} > {bound:.0e}"
                for what, value, bound in checks if not value <= bound]


def print_results(console: Console, results: list[Result], device: str, over: str = "h0 modes") -> None:
    noise = any(r.noise for r in results)
    table = Table(title=f"JAX vs PyTorch, same weights and batches (device {device})")
    columns = ["variant", "layers", "dtype", "logits", "loss", "grad", "worst grad", "steps",
               "run loss", "params", "worst param"]
    if noise:
        columns += [f"{kind} run loss/params" for kind in CONTROLS]
    for column in [*columns, "ok"]:
        table.add_column(column, no_wrap=True)
    for r in results:
        row = [r.variant, str(r.layers), r.dtype, f"{r.logits:.1e}", f"{r.loss:.1e}", f"{r.grads[0]:.1e}",
               r.grads[1], str(r.steps), f"{r.trajectory:.1e}", f"{r.params[0]:.1e}", r.params[1]]
        if noise:
            row += [f"{r.noise_figure(kind, 'trajectory'):.1e} / {r.noise_figure(kind, 'params'):.1e}"
                    if r.noise else "–" for kind in CONTROLS]
        table.add_row(*row, "yes" if not r.violations() else "NO")
    console.print(table)
    console.print("logits: max |Δ|; loss, grad: |Δ| / max |PyTorch value| per tensor (worst "
                  f"over {over}); run loss: worst relative loss gap over the training runs; "
                  "params: relative gap of the final parameters.")
    if noise:
        console.print("Within one framework (the larger of the two frameworks' figures): repeat, the "
                      "same run twice (0: deterministic); ulp, every initial weight nudged by one ulp; "
                      "reorder, every batch's rows in another order (common/controls.py).")
    named = [*BOUNDS.items(), ("rnn-relu float32", RELU_FLOAT32_BOUNDS)]
    if device == "gpu":
        named += [("float32 on a GPU", bounds_for("gru", "float32", "gpu")),
                  ("rnn-relu float32 on a GPU", bounds_for("rnn-relu", "float32", "gpu"))]
    for name, b in named:
        console.print(f"bounds {name}: logits {b.logits:.0e}, loss and grads {b.grads:.0e} "
                      f"(relative), run loss {b.trajectory:.0e}, params {b.params:.0e}")
