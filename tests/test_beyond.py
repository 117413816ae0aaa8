"""Length generalisation, the carry probe and hidden states: small and fast."""

import json
import subprocess
import sys

import numpy as np
import pytest

from common.config import Config, ConfigError
from common.data import carries, eval_set, train_batch
from common.loop import fit
from common.probe import carry_out, fit_logistic, local_rule_accuracy, probe_layer
from compare.sweeps import SWEEPS, expand
from tests.conftest import trainer_for


def test_carry_labels():
    a = np.array([[9, 5, 0, 0]])  # lsb first: 59
    b = np.array([[1, 4, 0, 0]])  # 41 -> 100: carries out of positions 0 and 1
    np.testing.assert_array_equal(carries(a, b, 10), [[0, 1, 1, 0]])
    cfg = Config(data="uniform", digits=3, batch_size=1)
    batch = train_batch(cfg, 1)
    lsb = carry_out(batch, 10, "lsb")
    msb_batch = type(batch)(batch.a[:, ::-1], batch.b[:, ::-1], batch.target[:, ::-1], batch.h0)
    np.testing.assert_array_equal(carry_out(msb_batch, 10, "msb"), lsb[:, ::-1])


def test_logistic_probe_separates_what_is_linear_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 12, 8))
    y = (x[..., 3] > 0).astype(float)
    assert probe_layer(x, y)["accuracy"] > 0.97
    noise = (rng.random((400, 12)) > 0.5).astype(float)
    assert probe_layer(x, noise)["accuracy"] < 0.6
    w, _ = fit_logistic(x.reshape(-1, 8), y.ravel())
    assert np.argmax(np.abs(w)) == 3


def test_hidden_states_agree_across_backends():
    cfg = Config(cell="lstm", layers=2, batch_size=6, h0="randn")
    batch = train_batch(cfg, 1)
    jax_states, torch_states = (trainer_for(b, cfg).hidden_states(batch) for b in ("jax", "torch"))
    assert jax_states.shape == torch_states.shape == (2, 6, cfg.positions, cfg.hidden)
    np.testing.assert_allclose(jax_states, torch_states, atol=1e-5)


def test_length_generalisation_is_scored(backend):
    cfg = Config(data="uniform", digits=4, lr=1e-2, steps=150, eval_every=50, test_lengths=(4, 40, 400),
                 test_size=50)
    run = fit(cfg, trainer_for(backend, cfg))
    assert [p["digits"] for p in run["lengths"]] == [4, 40, 400]
    assert all(0 <= p["exact_acc"] <= 1 and 0 <= p["digit_acc"] <= 1 for p in run["lengths"])
    assert run["lengths"][0]["exact_acc"] == pytest.approx(run["curve"][-1]["exact_acc"], abs=0.2)


def test_test_lengths_validated():
    with pytest.raises(ConfigError, match="test_lengths"):
        Config(test_lengths=(0,))
    with pytest.raises(ConfigError, match="test_lengths"):
        Config.from_dict({"test_lengths": 5})


def test_lengthgen_sweep_tests_at_multiples_of_the_training_length():
    runs = expand(SWEEPS["lengthgen"], "quick", ["jax"], 1, {})
    for run in runs:
        n = run.config.digits
        assert {n, 2 * n, 10 * n, 100 * n, 1000} <= set(run.config.test_lengths)


def test_probe_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "compare.probe", "--backend", "torch", "--digits", "5",
                             "--steps", "150", "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert len(probe["layers"]) == 2 and probe["local_rule_accuracy"] > 0.5
    assert all(p["accuracy"] > p["baseline"] for p in probe["layers"])
    assert (tmp_path / "probe_pca.png").read_bytes()[:4] == b"\x89PNG"
    assert "| layer |" in (tmp_path / "probe.md").read_text()


def test_local_rule():
    cfg = Config(data="uniform", digits=6, eval_size=300)
    batch = eval_set(cfg)
    labels = carry_out(batch, 10, "lsb")
    assert 0.85 < local_rule_accuracy(batch, labels, 10) < 1.0


def test_probe_in_the_run_record(backend):
    cfg = Config(data="uniform", digits=5, lr=1e-2, steps=60, eval_every=30, probe=True)
    run = fit(cfg, trainer_for(backend, cfg))
    assert len(run["probe"]["layers"]) == cfg.layers
    assert all(0.5 <= p["accuracy"] <= 1 for p in run["probe"]["layers"])
    none = fit(cfg.replace(cell="none"), trainer_for(backend, cfg.replace(cell="none")))
    assert none["probe"] is None
