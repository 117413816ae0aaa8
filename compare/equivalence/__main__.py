"""Do the two backends compute the same thing? Same weights and batches in, compare what comes out.

    python -m compare.equivalence                       # every variant, both dtypes
    python -m compare.equivalence --cell gru --layers 2 --dtype float32 --full
    python -m compare.equivalence --task sentiment          # the text classifier (sentiment.py)

For each cell variant x layers x dtype, both backends start from the same shared weights and see
the same batches; we compare forward logits and the loss and every parameter gradient (for every
h0 mode), then the loss trajectory and final parameters over training runs of Adam: a constant
learning rate from zero h0 (the handout), and a multi-step schedule with the carried-state mode
from random h0 (`--full`: every h0 mode x carry x schedule). `--task sentiment` checks the text
classifier on texts of mixed lengths, with padding invariance. Prints a table; exits 1 if a
bound is broken, 2 on bad flags.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from absl import flags
from rich.console import Console
from rich.progress import Progress

from common import tasks
from common.app import check_writable, fail, run_app
from common.config import MAX_LAYERS, ConfigError
from common.files import write_atomic
from compare.equivalence import CHECKS
from compare.equivalence.core import BOUNDS, VARIANTS, print_results


def define_flags() -> None:
    flags.DEFINE_list("cell", list(VARIANTS), f"variants to check: {', '.join(VARIANTS)}")
    flags.DEFINE_list("layers", ["1", "2", "3"], "layer counts to check (default: the task's, at most these)")
    flags.DEFINE_list("dtype", list(BOUNDS), "dtypes to check")
    flags.DEFINE_enum("device", "cpu", ["cpu", "gpu"], "run both backends here (gpu: TF32 off)")
    flags.DEFINE_bool("full", False, "train every h0 mode x carried state x schedule")
    flags.DEFINE_bool("noise", False, "also measure each framework against itself in float32: the "
                      "same run repeated, and its rounding-noise controls (ulp, reorder)")
    flags.DEFINE_string("json", None, "also write the figures to this JSON file")
    flags.DEFINE_enum("task", tasks.DEFAULT, list(tasks.TASKS), "sentiment: the text classifier on texts of "
                      "mixed lengths (compare/equivalence/sentiment.py), with padding invariance; --full and "
                      "--noise are the adder's")
    flags.register_validator("cell", lambda v: set(v) <= set(VARIANTS),
                             f"must be among {', '.join(VARIANTS)}")
    flags.register_validator("layers", lambda v: all(x.isdigit() and 1 <= int(x) <= MAX_LAYERS for x in v),
                             f"must be whole numbers in [1, {MAX_LAYERS}]")
    flags.register_validator("dtype", lambda v: set(v) <= set(BOUNDS),
                             f"must be among {', '.join(BOUNDS)}")


def main(argv: list[str]) -> None:
    FLAGS = flags.FLAGS
    combos = [(v, int(n), d) for d in FLAGS.dtype for v in FLAGS.cell for n in FLAGS.layers]
    if FLAGS.json:
        try:
            check_writable(FLAGS.json, flag="--json")
        except ConfigError as e:
            fail(str(e))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 170)
    results = []

    def save() -> None:  # after every variant, so a stopped check keeps what it measured
        if FLAGS.json:
            rows = [{**dataclasses.asdict(r), "violations": r.violations()} for r in results]
            write_atomic(Path(FLAGS.json), json.dumps(rows, indent=1) + "\n")

    checks = CHECKS[FLAGS.task]
    for option in ("full", "noise"):
        if FLAGS[option].value and option not in checks.OPTIONS:
            owners = [task for task, c in CHECKS.items() if option in c.OPTIONS]
            fail(f"--{option}: a check of --task {', '.join(owners)}, not of --task {FLAGS.task}")
    if not FLAGS["layers"].present:
        combos = [c for c in combos if c[1] in checks.LAYERS]

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("checking", total=len(combos))
        for variant, layers, dtype in combos:
            progress.update(task, description=f"{variant} x{layers} {dtype}")
            try:
                results.append(checks.check(variant, layers, dtype, FLAGS.device,
                                            **{option: FLAGS[option].value for option in checks.OPTIONS}))
            except ConfigError as e:  # e.g. --device gpu without a GPU
                fail(str(e))
            save()
            progress.advance(task)
    print_results(console, results, FLAGS.device, over=checks.OVER)
    if hasattr(checks, "print_summary"):
        checks.print_summary(console, results)
    broken = [v for r in results for v in r.violations()]
    for line in broken:
        console.print(f"BROKEN: {line}")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    run_app(main, define_flags)
