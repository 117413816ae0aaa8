"""Look inside the carry: does a trained model's hidden state encode the carry bit?

    python -m compare.probe --backend jax --cell rnn
    python -m compare.probe --backend torch --cell gru --layers 3 --order msb --out results/probe-gru

Trains one model (uniform random digits), collects every layer's hidden state after each
position of a held-out batch, and fits a linear probe per layer (logistic regression, numpy)
predicting the carry out of that position — what the network must remember for the next digit.
Probes train on half the sequences and are scored on the other half, against the majority class
and against reading the carry off the current digits alone (common/probe.py). Writes probe.json,
probe.md and probe_pca.png (first two principal components of each layer's states, coloured by
carry). Inside sweeps the same probe runs with `probe=True` (`--sweep probe`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from absl import flags
from rich.console import Console

from common import backends, memory
from common.app import check_out_dir, fail, run_app
from common.backends import BACKENDS
from common.files import write_atomic, writing
from common.config import CELLS, ORDERS, Config, ConfigError
from common.data import eval_set
from common.loop import fit
from common.probe import carry_out, probe_states
from common.tasks import ADDER


def pca_plot(states: np.ndarray, labels: np.ndarray, title: str, path: Path, points: int = 4000) -> None:
    """First two principal components of each layer's states, coloured by the carry out."""
    from compare.plots import plt, save  # matplotlib loads only to plot

    fig, axes = plt.subplots(1, len(states), figsize=(4.4 * len(states), 4), squeeze=False)
    pick = np.random.default_rng(0).permutation(labels.size)[:points]
    y = labels.ravel()[pick]
    for k, ax in enumerate(axes[0]):
        x = states[k].reshape(-1, states.shape[-1])[pick]
        x = x - x.mean(0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        pcs = x @ vt[:2].T
        for value, colour in ((0, "tab:blue"), (1, "tab:red")):
            ax.scatter(*pcs[y == value].T, s=4, alpha=0.5, color=colour, label=f"carry {value}")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_title(f"layer {k}", fontsize=9)
    axes[0, 0].legend(markerscale=3, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)


def run_probe(backend: str, cfg: Config, out_dir: Path, console: Console) -> dict[str, Any]:
    runtime, _ = backends.start(backend, cfg)
    memory.check(cfg, device_free=runtime.free_device_memory(cfg))
    trainer = backends.module(backend, ADDER.trainer_module).Trainer(cfg)
    record = fit(cfg, trainer)
    batch = eval_set(cfg)
    states = trainer.hidden_states(batch)
    labels = carry_out(batch, cfg.base, cfg.order)
    probe = probe_states(batch, states, cfg.base, cfg.order)
    layers, local = probe["layers"], probe["local_rule_accuracy"]
    result = {"backend": backend, "config": cfg.to_dict(), "final_exact_acc": record["curve"][-1]["exact_acc"],
              "status": record["status"], "layers": layers, "local_rule_accuracy": local}
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    pca_plot(states, labels, f"{backend} {cfg.cell} x{cfg.layers}, {cfg.order} first: hidden states by carry out",
             out_dir / "probe_pca.png")
    lines = [f"# Carry probe: {backend}, {cfg.cell}, {cfg.layers} layers, {cfg.digits} digits, {cfg.order} first",
             "", f"Model after {cfg.steps} steps: exact match {result['final_exact_acc']:.3f} on "
             f"{cfg.eval_size} held-out sums.", "",
             f"Reading the carry off the current digits alone (a_i + b_i >= base) is right {local:.4f} of "
             f"the time; a probe beyond that shows the state holds the incoming carry.", "",
             "| layer | probe accuracy (held-out sequences) | majority baseline |", "|---|---|---|"]
    lines += [f"| {k} | {p['accuracy']:.4f} | {p['baseline']:.4f} |" for k, p in enumerate(layers)]
    lines += ["", "![pca](probe_pca.png)", ""]
    write_atomic(out_dir / "probe.md", "\n".join(lines))
    write_atomic(out_dir / "probe.json", json.dumps(result, indent=1) + "\n")
    for k, p in enumerate(layers):
        console.print(f"layer {k}: carry probe accuracy {p['accuracy']:.4f} (majority baseline "
                      f"{p['baseline']:.4f}, current digits alone {local:.4f})")
    return result


def define_flags() -> None:
    flags.DEFINE_enum("backend", "jax", list(BACKENDS), "framework")
    flags.DEFINE_enum("cell", "rnn", [c for c in CELLS if c != "none"], "recurrent cell")
    flags.DEFINE_integer("layers", 2, "recurrent layers")
    flags.DEFINE_integer("digits", 10, "operand digits (uniform random digits)")
    flags.DEFINE_enum("order", "lsb", ORDERS, "digit order")
    flags.DEFINE_integer("steps", 300, "training steps")
    flags.DEFINE_float("lr", 1e-2, "Adam learning rate")
    flags.DEFINE_integer("seed", 0, "seed")
    flags.DEFINE_string("out", None, "output directory (default results/probe-BACKEND-CELL-ORDER)")


def main(argv: list[str]) -> None:
    F = flags.FLAGS
    out_dir = Path(F.out or f"results/probe-{F.backend}-{F.cell}-{F.order}")
    try:
        cfg = Config(data="uniform", cell=F.cell, layers=F.layers, digits=F.digits, order=F.order,
                     steps=F.steps, lr=F.lr, seed=F.seed, eval_every=max(1, F.steps // 5),
                     eval_size=1000)
        check_out_dir(out_dir)  # before training, not after
        memory.check(cfg)
        console = Console(highlight=False)
        run_probe(F.backend, cfg, out_dir, console)
    except ConfigError as e:
        fail(str(e))
    console.print(f"written: {out_dir / 'probe.md'}, {out_dir / 'probe_pca.png'}, {out_dir / 'probe.json'}")
    sys.exit(0)


if __name__ == "__main__":
    run_app(main, define_flags)
