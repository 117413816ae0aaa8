"""Everything the study needs to know from a GPU, in one command for a few borrowed minutes.

    python -m compare.gpu_check --out gpu-check

In order, each part in processes of its own, with its figures saved as soon as it ends:
1. train: both backends train the canonical config on the GPU to 100 % (lr 1e-2), from an
   empty JAX compilation cache (the cold compile a new user meets);
2. equivalence: same weights and batches on both backends (compare.equivalence, 2 layers, every
   cell, float32 and float64), with each framework's own noise floor in float32 (the same run
   repeated; the rounding-noise controls of common/controls.py);
3. modes: the execution modes through each command line (steps/s, compile, the losses at every
   eval against the default mode's): PyTorch's whole-step CUDA graph against its eager step
   (canonical config); JAX's scan unroll at 10 positions (1 against full) and at 1001 positions
   (1, 8, 32); JAX's steps per call (1, 10, 50);
4. bench: canonical, lstm, gru and 1000-digit cases, cold and warm compile, and K = 8 and 32
   seeds in one vmapped JAX program (compare.bench);
5. text equivalence: the sentiment task's (compare.equivalence --task sentiment);
6. text bench: the sentiment model's speed, PyTorch's padded batch against the packed sequence
   on cuDNN (compare.bench's text cases);
7. tests: the tests whose code paths change on a GPU (the GPU equivalence test is part 2's check
   with the same bounds, and is not run twice; tests/test_torch_modes.py's GPU tests are here);
8. threads: the host-core policy's effect: the canonical case on 1 host core and on the policy's
   cores, interleaved (compare.bench: compile cold and warm, steps/s, time to solve).
Parts that would not fit in --budget_s are skipped and say so, the later parts first: the order is
the order of worth. Writes DIR/gpu_check.json (every
figure), DIR/gpu_check.md (the summary) and a log per part. Exit 1 if a part failed, 2 on bad
input or without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from absl import flags
from rich.console import Console

from common.app import fail, run_app
from common.backends import BACKENDS, package
from common.files import write_atomic
from common.config import Config, ConfigError
from common.threads import available_cores, host_threads
from compare import devices
from compare.equivalence.core import BOUNDS, CONTROLS

# What runs differently on a GPU: model and runtime paths, a command-line run's record, the probe's
# hidden states. (The GPU equivalence test is part 2; the bad-input tests never reach a device.)
# By absolute path: the check may run from any folder (the fuzz test runs it from an empty one).
_REPO = Path(__file__).resolve().parents[1]
TESTS = tuple(str(_REPO / t) for t in (
    "tests/test_models.py", "tests/test_runtime.py", "tests/test_devices.py", "tests/test_torch_modes.py",
    "tests/test_cli.py::test_a_run_writes_its_record",
    "tests/test_beyond.py::test_hidden_states_agree_across_backends"))


class Check:
    """Runs the parts in order within a time budget, saving the figures after each."""

    def __init__(self, out: Path, device: str, budget_s: float, small: bool, console: Console):
        self.out, self.device, self.small, self.console = out, device, small, console
        self.deadline = time.monotonic() + budget_s
        self.results: dict[str, Any] = {"device": device, "parts": {}}
        self.cap_s = budget_s
        # One fresh JAX compilation cache for the whole check: part 1 compiles cold, later parts
        # reuse its programs. The bench times cold and warm with caches of its own.
        self.cache = Path(tempfile.mkdtemp(prefix="gpu-check-jax-cache-"))
        self.env = {**os.environ, "ADDER_JAX_CACHE": str(self.cache), "PYTHONUNBUFFERED": "1"}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, part, needs_s: float, cap_s: float) -> None:
        """Run a part if `needs_s` of the budget is left; its commands stop after `cap_s`."""
        self.cap_s = cap_s
        if self.left() < needs_s:
            self.results["parts"][name] = {"status": "skipped", "why": f"needs ~{needs_s:.0f} s, "
                                           f"{max(self.left(), 0):.0f} s of the budget left"}
            self.console.print(f"[yellow]{name}: skipped[/] (out of time)")
        else:
            self.console.print(f"[bold]{name}[/] ({self.left():.0f} s of the budget left)")
            start = time.monotonic()
            try:
                figures = part()
                status = "failed" if figures.pop("failed", False) else "ok"
            except Exception as e:  # a broken part must not cost the others their figures
                figures, status = {"error": f"{type(e).__name__}: {e}"}, "failed"
            self.results["parts"][name] = {"status": status, "seconds": round(time.monotonic() - start, 1),
                                           **figures}
            self.console.print(f"{name}: {status} in {time.monotonic() - start:.0f} s")
        write_atomic(self.out / "gpu_check.json", json.dumps(self.results, indent=1) + "\n")
        write_atomic(self.out / "gpu_check.md", summary(self.results))

    def command(self, name: str, args: list[str]) -> subprocess.CompletedProcess:
        """Run a command of this project into DIR/NAME.log, stopped at the part's cap or the
        budget's end, whichever comes first."""
        timeout = max(1.0, min(self.cap_s, self.left()))
        with open(self.out / f"{name}.log", "a") as log:
            log.write(f"$ {' '.join(args)}\n")
            log.flush()
            try:
                return subprocess.run([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                      env=self.env, timeout=timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                log.write(f"\nstopped: out of the check's time budget after {timeout:.0f} s\n")
                return subprocess.CompletedProcess(args, returncode=124)

    def table(self, name: str, args: list[str]) -> dict[str, Any]:
        """A command that writes its rows to --json (as it goes): the rows it got to."""
        path = self.out / f"{name}.json"
        proc = self.command(name, [*args, f"--json={path}"])
        rows = json.loads(path.read_text()) if path.exists() else []
        path.unlink(missing_ok=True)  # the rows go into gpu_check.json
        return {"rows": rows, "exit": proc.returncode, "failed": proc.returncode != 0}

    # ------------------------------------------------------------------------------------ parts

    def train(self) -> dict[str, Any]:
        """Each backend's own command line: canonical config, lr 1e-2, until 100 %, on the host
        cores the policy gives a GPU run."""
        name = "train"
        figures: dict[str, Any] = {}
        for backend in BACKENDS:
            record_path = self.out / f"{name}-{backend}.json"
            steps = "100" if self.small else "400"
            proc = self.command(name, ["-m", package(backend), f"--device={self.device}", "--lr=1e-2",
                                       f"--steps={steps}", "--eval_every=10", "--stop_when_solved",
                                       f"--out={record_path}"])
            if proc.returncode != 0 or not record_path.exists():
                figures[backend] = {"error": f"exit {proc.returncode}: see {name}.log"}
                figures["failed"] = True
                continue
            record = json.loads(record_path.read_text())
            t = record["timing"]
            figures[backend] = {k: t[k] for k in ("compile_s", "first_step_s", "steps_per_s", "solve_step",
                                                  "solve_s", "solve_train_s")}
            figures[backend].update(status=record["status"], final_exact=record["final"]["exact_acc"],
                                    device=record["env"]["device"], device_name=record["env"]["device_name"],
                                    framework=record["env"]["framework"], threads=record["env"]["threads"],
                                    thread_policy=record["env"]["thread_policy"])
            record_path.unlink()  # its figures are in gpu_check.json
            if record["status"] != "ok" or record["env"]["device"] != self.device:
                figures["failed"] = True
        return figures

    def equivalence(self) -> dict[str, Any]:
        scope = ["--cell=rnn-tanh,gru", "--layers=1"] if self.small else ["--layers=2"]
        return self.table("equivalence", ["-m", "compare.equivalence", f"--device={self.device}", "--noise",
                                          *scope])

    def bench(self) -> dict[str, Any]:
        scope = ["--cases=canonical", "--vmap_seeds=2", "--quick"] if self.small else \
            ["--cases=canonical,gru,lstm,digits1000", "--vmap_seeds=8,32"]
        return self.table("bench", ["-m", "compare.bench", f"--device={self.device}", "--repeats=2", *scope])

    def record(self, name: str, backend: str, args: list[str]) -> dict[str, Any]:
        """One command-line run of `backend` with `args`: its figures, or why there are none."""
        path = self.out / f"{name}-record.json"
        proc = self.command(name, ["-m", package(backend), f"--device={self.device}", *args, f"--out={path}"])
        if proc.returncode != 0 or not path.exists():
            return {"error": f"exit {proc.returncode}: see {name}.log"}
        record = json.loads(path.read_text())
        path.unlink()  # its figures go into gpu_check.json
        t = record["timing"]
        return {"status": record["status"], **{k: t[k] for k in ("compile_s", "first_step_s", "steps_per_s")},
                "execution": record["env"].get("execution"), "device": record["env"]["device"],
                "losses": [point["loss"] for point in record["curve"]]}

    def modes(self) -> dict[str, Any]:
        """Each mode of MODES by the command line; against its group's first run: steps/s ratio
        and the largest loss gap over the eval points (PyTorch's graphs are held to the float32
        run-loss bound; JAX's modes are reported, their bounds are its engineer's)."""
        end = time.monotonic() + self.cap_s  # the cap is the part's, not each run's
        # Multiples of 50 steps: steps and evals fall between calls of 50 steps.
        steps = ["--steps=100" if self.small else "--steps=500", "--eval_every=50"]
        long = ["--digits=30" if self.small else "--digits=1000", "--steps=100", "--eval_every=50"]
        runs: list[dict[str, Any]] = []
        failed = False
        for group, label, backend, args in MODES:
            row = {"group": group, "mode": label, "backend": backend, "flags": args}
            if end - time.monotonic() < 5:
                runs.append({**row, "skipped": "out of the part's time"})
                continue
            self.cap_s = end - time.monotonic()
            flags = [a for a in args if a != "long"] + (long if "long" in args else steps)
            figures = self.record("modes", backend, flags)
            failed |= "error" in figures or figures.get("status") != "ok"
            base = next((r for r in runs if r["group"] == group and "steps_per_s" in r), None)
            if base is not None and "steps_per_s" in figures:
                figures["speedup"] = figures["steps_per_s"] / base["steps_per_s"] if base["steps_per_s"] else None
                figures["loss_gap"] = loss_gap(figures["losses"], base["losses"])
            if label == "torch graphs" and "loss_gap" in figures:
                figures["within_bound"] = figures["loss_gap"] is not None and \
                    figures["loss_gap"] <= BOUNDS["float32"].trajectory
                failed |= not figures["within_bound"]
            runs.append({**row, **figures})
        return {"rows": runs, "failed": failed}

    def text_equivalence(self) -> dict[str, Any]:
        scope = ["--cell=rnn-tanh", "--dtype=float32"] if self.small else []
        return self.table("text_equivalence", ["-m", "compare.equivalence", "--task=sentiment",
                                               f"--device={self.device}", *scope])

    def text_bench(self) -> dict[str, Any]:
        scope = ["--cases=text-rnn-256", "--quick", "--thread_counts=1"] if self.small else \
            [f"--cases={TEXT_CASES}", "--repeats=1"]
        return self.table("text_bench", ["-m", "compare.bench", f"--device={self.device}", "--vmap_seeds=0",
                                         *scope])

    def tests(self) -> dict[str, Any]:
        args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
        if self.small:
            args += ["-k", "contract or both_backends_name or a_run_writes_its_record or graphs_on_a_cpu"]
        proc = self.command("tests", args)
        lines = (self.out / "tests.log").read_text().strip().splitlines()
        return {"summary": lines[-1] if lines else "no output", "exit": proc.returncode,
                "failed": proc.returncode != 0}

    def threads(self) -> dict[str, Any]:
        """The canonical case on 1 host core and on the policy's cores, interleaved A B A B by
        the bench, each from an empty compilation cache on its first repeat."""
        policy = host_threads(Config(device=self.device))
        return self.table("threads", ["-m", "compare.bench", f"--device={self.device}", "--cases=canonical",
                                      f"--thread_counts=1,{policy}", "--repeats=2", "--vmap_seeds=0"]
                          + (["--quick"] if self.small else []))


# The execution modes part: (group, label, backend, flags); a group's first run is its baseline
# (the default mode), the others are timed and compared against it. The config is the canonical
# one (lr 1e-3: no run stops early); "long" runs have 1001 positions, fewer steps (48 ms a JAX
# step there, README "On a GPU").
MODES = (
    ("torch graphs", "torch eager", "torch", []),
    ("torch graphs", "torch graphs", "torch", ["--graphs"]),
    ("jax unroll, 10 positions", "unroll 1", "jax", ["--unroll=1"]),
    ("jax unroll, 10 positions", "unroll full", "jax", ["--unroll=0"]),
    ("jax steps per call", "1 step a call", "jax", []),
    ("jax steps per call", "10 steps a call", "jax", ["--steps_per_call=10"]),
    ("jax steps per call", "50 steps a call", "jax", ["--steps_per_call=50"]),
    ("jax unroll, 1001 positions", "unroll 1", "jax", ["--unroll=1", "long"]),
    ("jax unroll, 1001 positions", "unroll 8", "jax", ["--unroll=8", "long"]),
    ("jax unroll, 1001 positions", "unroll 32", "jax", ["--unroll=32", "long"]),
)
TEXT_CASES = "text-rnn-256,text-lstm-1024"  # compare/bench/sentiment.py: a small and a large model


def loss_gap(losses: list[float], reference: list[float]) -> float | None:
    """Max over eval points of |Δ loss| / loss (the equivalence checks' run-loss figure)."""
    if not losses or len(losses) != len(reference):
        return None
    return max(abs(a - b) / abs(b) if b else abs(a - b) for a, b in zip(losses, reference))


# ---------------------------------------------------------------------------------- summary

def _f(x, spec: str = ".2f") -> str:
    return "–" if x is None else f"{x:{spec}}"


def _speed(rows: list[dict[str, Any]], title: str) -> list[str]:
    lines = []
    speed = [r for r in rows if r["backend"] in BACKENDS and "error" not in r]
    if speed:
        lines += [f"## {title}", "", "| case | backend | device | threads | steps/s | GFLOP/s | eff. | "
                  "compile s cold/warm | solve s cold/warm |", "|---|---|---|---|---|---|---|---|---|"]
        for r in speed:
            lines.append(f"| {r['case']} | {r['backend']} | {r['device']} | {r['threads']} | {r['steps_per_s']:.0f} | "
                         f"{r['gflops']:.1f} | {100 * r['efficiency']:.1f} % | {_f(r['compile_cold_s'])} / "
                         f"{_f(r['compile_warm_s'])} | {_f(r.get('solve_cold_s'))} / {_f(r.get('solve_s'))} |")
        lines.append("")
    vmap = [r for r in rows if r["backend"] == "jax-vmap" and "error" not in r]
    if vmap:
        lines += ["| K seeds in one vmapped JAX program | group step ms | per seed ms | single run ms | speed-up |",
                  "|---|---|---|---|---|"]
        for r in vmap:
            lines.append(f"| {r['seeds']} | {1e3 * r['group_step_s']:.2f} | {1e3 * r['group_step_s'] / r['seeds']:.3f} | "
                         f"{1e3 * r['single_step_s']:.2f} | x{r['speedup']:.1f} |")
        lines.append("")
    return lines


def summary(results: dict[str, Any]) -> str:
    """gpu_check.md: the figures a reader wants, from gpu_check.json."""
    parts = results["parts"]
    lines = [f"# GPU check (device {results['device']})", ""]
    for name, part in parts.items():
        extra = f" — {part['why']}" if part["status"] == "skipped" else \
            f" in {part['seconds']} s" + (f": {part['error']}" if "error" in part else "")
        lines.append(f"- {name}: **{part['status']}**{extra}")
    lines.append("")
    train = parts.get("train", {})
    runs = {b: train[b] for b in BACKENDS if isinstance(train.get(b), dict) and "error" not in train[b]}
    if runs:
        lines += ["## Canonical run to 100 % (lr 1e-2, the command line, cold compile)", "",
                  "| backend | framework | device | threads | compile s | steps/s | solved at step | solve s |",
                  "|---|---|---|---|---|---|---|---|"]
        for b, r in runs.items():
            lines.append(f"| {b} | {r['framework']} | {r['device_name']} | {r['threads']} | "
                         f"{_f(r['compile_s'])} | {_f(r['steps_per_s'], '.0f')} | {r['solve_step'] or 'never'} | "
                         f"{_f(r['solve_s'])} |")
        lines.append("")
    rows = parts.get("equivalence", {}).get("rows", [])
    if rows:
        lines += ["## Equivalence (same weights and batches)", "",
                  "| variant | layers | dtype | logits | grads | run loss | params | "
                  + " | ".join(f"{k} run loss/params (jax; torch)" for k in CONTROLS) + " | ok |",
                  "|---|---|---|---|---|---|---|---|" + "---|" * len(CONTROLS)]
        for r in rows:
            noise = {kind: "; ".join(f"{n[kind]['trajectory']:.1e}/{n[kind]['params'][0]:.1e}"
                                     for n in r["noise"].values() if kind in n) if r.get("noise") else "–"
                     for kind in CONTROLS}
            lines.append(f"| {r['variant']} | {r['layers']} | {r['dtype']} | {r['logits']:.1e} | "
                         f"{r['grads'][0]:.1e} | {r['trajectory']:.1e} | {r['params'][0]:.1e} ({r['params'][1]}) | "
                         + "".join(f"{noise[k]} | " for k in CONTROLS) + f"{'yes' if not r['violations'] else 'NO'} |")
        lines.append("")
    modes = [r for r in parts.get("modes", {}).get("rows", [])]
    if modes:
        lines += ["## Execution modes (canonical config; the command line)", "",
                  "| group | mode | execution (env) | steps/s | x first of group | compile s | loss gap vs first |",
                  "|---|---|---|---|---|---|---|"]
        for r in modes:
            if "steps_per_s" not in r:
                lines.append(f"| {r['group']} | {r['mode']} | {r.get('skipped') or r.get('error') or r.get('status')} "
                             "| – | – | – | – |")
                continue
            execution = "; ".join(f"{k} {v}" for k, v in (r.get("execution") or {}).items())
            lines.append(f"| {r['group']} | {r['mode']} | {execution} | {_f(r['steps_per_s'], '.1f')} | "
                         f"{_f(r.get('speedup'))} | {_f(r['compile_s'])} | {_f(r.get('loss_gap'), '.1e')} |")
        lines.append("")
    rows = parts.get("text_equivalence", {}).get("rows", [])
    if rows:
        lines += ["## Sentiment equivalence (same weights and batches)", "",
                  "| variant | layers | dtype | logits | grads | run loss | params | ok |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['variant']} | {r['layers']} | {r['dtype']} | {r['logits']:.1e} | {r['grads'][0]:.1e} | "
                         f"{r['trajectory']:.1e} | {r['params'][0]:.1e} | {'yes' if not r['violations'] else 'NO'} |")
        lines.append("")
    rows = [r for r in parts.get("text_bench", {}).get("rows", []) if "error" not in r]
    if rows:
        lines += ["## Sentiment speed (64 texts of 50..400 tokens; step s)", "",
                  "| case | backend | padded random | padded bucketed | packed random | packed bucketed |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['case']} | {r['backend']} | {_f(r.get('step_s'), '.4f')} | "
                         f"{_f(r.get('bucketed_step_s'), '.4f')} | {_f(r.get('packed_random_step_s'), '.4f')} | "
                         f"{_f(r.get('packed_bucketed_step_s'), '.4f')} |")
        lines.append("")
    for name, title in (("bench", "Speed"), ("threads", "Host cores: 1 against the policy's")):
        lines += _speed(parts.get(name, {}).get("rows", []), title)
    rows = [r for name in ("bench", "text_bench", "threads") for r in parts.get(name, {}).get("rows", [])]
    errors = [r for r in rows if "error" in r]
    for r in errors:
        lines.append(f"- bench {r['case']} {r['backend']}: error: {r['error']}")
    if "tests" in parts and "summary" in parts["tests"]:
        lines += ["## Tests", "", f"`{parts['tests']['summary']}`", ""]
    return "\n".join(lines) + "\n"


def define_flags() -> None:
    flags.DEFINE_string("out", None, "folder for the figures and logs (created; must be empty if it exists)")
    flags.DEFINE_float("budget_s", 540, "stop starting parts after this many seconds")
    flags.DEFINE_enum("device", "gpu", ["gpu", "cpu"], "gpu; cpu only to test this command itself")
    flags.DEFINE_bool("small", False, "tiny versions of every part (to test this command itself)")


def main(argv: list[str]) -> None:
    F = flags.FLAGS
    if not F.out:
        fail("--out is required: the folder for the figures")
    if F.budget_s <= 0:
        fail(f"--budget_s={F.budget_s}: must be > 0")
    out = Path(F.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"--out={out}: exists and is not an empty folder")
    try:
        _, note = devices.resolve(F.device, BACKENDS)
    except ConfigError as e:
        fail(f"no GPU to check: {e}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--out={out}: cannot create it ({e.strerror})")
    console = Console(highlight=False)
    console.print(f"{note}; host cores: {len(available_cores())}, a run gets "
                  f"{host_threads(Config(device=F.device))} by the host-core policy")
    check = Check(out, F.device, F.budget_s, F.small, console)
    try:
        # The seconds each part needs and may take on an H200 box, so that a part that cannot
        # finish is skipped rather than cut off, and no part starves the ones after it. The caps
        # add up to more than the budget: parts mostly end well before theirs, and what is left
        # over goes to the later ones. (The modes and text parts' figures are estimates from the
        # step times above and README's compile times, not yet measured on a GPU.)
        check.run("train", check.train, needs_s=20, cap_s=75)
        check.run("equivalence", check.equivalence, needs_s=60, cap_s=130)
        check.run("modes", check.modes, needs_s=60, cap_s=150)
        check.run("bench", check.bench, needs_s=90, cap_s=160)
        check.run("text_equivalence", check.text_equivalence, needs_s=20, cap_s=50)
        check.run("text_bench", check.text_bench, needs_s=30, cap_s=60)
        check.run("tests", check.tests, needs_s=30, cap_s=60)
        check.run("threads", check.threads, needs_s=60, cap_s=80)
    finally:
        shutil.rmtree(check.cache, ignore_errors=True)
    print((out / "gpu_check.md").read_text())
    sys.exit(1 if any(p["status"] == "failed" for p in check.results["parts"].values()) else 0)


if __name__ == "__main__":
    run_app(main, define_flags)
