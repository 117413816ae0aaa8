"""The backends by name (common/backends.py), and that each keeps the Trainer contract of common/loop.py."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from common import loop
from common.backends import BACKENDS, module, package
from common.config import Config, ConfigError


def test_naming_the_backends_starts_no_framework():
    code = ("import sys; import common.backends as b; b.package('jax'); "
            "print(sorted(m for m in ('jax', 'torch', 'flax') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_backend_by_name_is_its_package():
    assert BACKENDS == ("jax", "torch")
    assert [package(b) for b in BACKENDS] == ["jax_impl", "torch_impl"]
    assert module("torch", "runtime").__name__ == "torch_impl.runtime"


@pytest.mark.parametrize("name", ["tf", "", "jax_impl", "JAX"])
def test_an_unknown_backend_is_bad_input_naming_it(name):
    with pytest.raises(ConfigError, match=f"backend {name!r}: backends are jax, torch"):
        module(name, "adder")
    assert issubclass(ConfigError, ValueError)


def contract(protocol) -> dict[str, inspect.Signature]:
    """A Trainer protocol's public methods, those it inherits (common.training.Trainer's) included."""
    return {name: inspect.signature(getattr(protocol, name)) for name in dir(protocol)
            if not name.startswith("_") and inspect.isfunction(getattr(protocol, name))}


def _contract() -> dict[str, inspect.Signature]:
    return contract(loop.Trainer)


def test_the_contract_names_what_callers_use():
    assert {"compile", "step", "loss", "loss_mean", "nonfinite_step", "score", "hidden_states", "params",
            "logits", "gradients", "env", "training_state", "restore"} <= set(_contract())


def test_every_backend_keeps_the_trainer_contract(backend):
    """Same methods with the same parameters, and compile_cache from the start."""
    train = module(backend, "adder")
    for name, signature in _contract().items():
        assert list(inspect.signature(getattr(train.Trainer, name)).parameters) == list(signature.parameters), name
    trainer = train.Trainer(Config(digits=3, hidden=4, embed=2, batch_size=4, eval_size=8, device="cpu"))
    assert trainer.compile_cache is None
    assert {"framework", "device", "threads"} <= set(trainer.env())


def test_every_backend_keeps_the_sentiment_trainer_contract(backend):
    import numpy as np

    from common.sentiment import loop as sentiment_loop
    from common.sentiment.config import TextConfig

    methods = contract(sentiment_loop.Trainer)
    assert {"compile", "step", "loss", "loss_mean", "nonfinite_step", "score", "params", "logits", "gradients",
            "env", "training_state", "restore"} <= set(methods)
    sentiment = module(backend, "sentiment")
    for name, signature in methods.items():
        assert list(inspect.signature(getattr(sentiment.Trainer, name)).parameters) == list(signature.parameters), name
    trainer = sentiment.Trainer(TextConfig(hidden=4, device="cpu"), np.zeros((5, 3), np.float32))
    assert trainer.compile_cache is None and {"framework", "device", "threads"} <= set(trainer.env())
    assert trainer.backend == backend


def public(mod) -> set[str]:
    """The functions and classes a module defines itself, its private ones left out."""
    return {name for name, obj in vars(mod).items() if not name.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == mod.__name__}


def test_the_backends_are_mirror_images():
    """The same modules; in each, the trainer core's names and one parameter API; a trainer per
    workload on the core. JAX's alone: the program cache (eager PyTorch compiles nothing), and
    where a neutral name lives in the Flax tree. PyTorch's alone: the whole-step CUDA graph (XLA
    has no such mode: a jitted step is already one program) and what its tests reach of it."""
    root = Path(__file__).resolve().parent.parent
    files = {b: sorted(p.name for p in (root / package(b)).glob("*.py")) for b in BACKENDS}
    assert files["jax"] == files["torch"] and {"core.py", "adder.py", "sentiment.py"} <= set(files["jax"])
    cores = {b: module(b, "core") for b in BACKENDS}
    graphs = {"StepGraph", "graphs_mode", "track_in_place", "rehearsal", "live_tensors", "shapes_of"}
    assert public(cores["jax"]) - {"Programs"} == public(cores["torch"]) - graphs
    methods = {b: {n for n in dir(cores[b].TrainerCore) if not n.startswith("_")} for b in BACKENDS}
    assert methods["jax"] == methods["torch"] - {"GRAPHS_REFUSED"} >= {
        "backend", "loss", "loss_mean", "nonfinite_step", "training_state", "restore", "env"}
    assert public(module("jax", "params")) - {"flax_path"} == public(module("torch", "params")) == {
        "to_native", "to_neutral"}
    for backend in BACKENDS:
        for workload in ("adder", "sentiment"):
            trainers = module(backend, workload)
            assert issubclass(trainers.Trainer, cores[backend].TrainerCore) and "loss_fn" in public(trainers)
