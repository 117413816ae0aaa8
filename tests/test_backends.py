"""The backends by name (common/backends.py), and that each keeps the Trainer contract of common/loop.py."""

import inspect
import subprocess
import sys

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
