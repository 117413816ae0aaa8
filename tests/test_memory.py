"""common/memory.py: the impossible is refused before anything starts; the study's runs are not."""

import pytest

from common import memory
from common.config import Config, ConfigError
from compare.sweeps import PRESETS, SWEEPS, expand


def test_every_run_of_the_study_fits_in_a_laptop():
    """The estimate must never refuse what the study runs: every config of every sweep, in both
    presets, fits in 6 GB (the largest, paper's 5000 digits, is about 4.5 GB by this estimate)."""
    largest = max(memory.estimate(r.config).total()
                  for s in SWEEPS.values() if s.task == "adder" for preset in PRESETS
                  for r in expand(s, preset, ["jax"], 1, {}))
    assert 1 * 2**30 < largest < 6 * 2**30


@pytest.mark.parametrize("change", [dict(hidden=100_000), dict(embed=10**7), dict(batch_size=10**8),
                                    dict(digits=10**7), dict(eval_size=10**9), dict(test_lengths=(10**8,))])
def test_runaway_sizes_need_more_than_any_machine(change):
    assert memory.estimate(Config(**change)).total() > 200 * 2**30


def test_each_size_costs_memory():
    base = memory.estimate(Config()).total()
    for change in (dict(hidden=128), dict(layers=4), dict(batch_size=400), dict(digits=18),
                   dict(eval_size=4000), dict(dtype="float64"), dict(test_lengths=(90,)), dict(probe=True)):
        assert memory.estimate(Config(**change)).total() > base, change
    assert memory.estimate(Config(), seeds=4).total() == pytest.approx(4 * base, rel=0.01)


def test_refusal_names_the_estimate_and_the_limit(monkeypatch):
    monkeypatch.setattr(memory, "available_host_bytes", lambda: 8 * 2**30)
    with pytest.raises(ConfigError, match=r"hidden=100000.* needs about \d+\.\d GB of memory, "
                                          r"this machine has 8\.0 GB available"):
        memory.check(Config(hidden=100_000))
    memory.check(Config())  # the handout config fits
    need = memory.estimate(Config(digits=2000)).total() + memory.FRAMEWORK_BYTES
    monkeypatch.setattr(memory, "available_host_bytes", lambda: int(1.5 * need))
    memory.check(Config(digits=2000))
    with pytest.raises(ConfigError, match=r"1/2 of it per parallel job"):
        memory.check(Config(digits=2000), jobs=2)


def test_a_gpu_run_checks_the_gpu_for_the_model_and_the_host_for_the_data(monkeypatch):
    monkeypatch.setattr(memory, "available_host_bytes", lambda: 64 * 2**30)
    big = Config(digits=5000)
    need = memory.estimate(big)
    memory.check(big, device_free=need.device + 1)
    with pytest.raises(ConfigError, match="of GPU memory, the GPU has"):
        memory.check(big, device_free=need.device - 1)


def test_the_machine_reports_some_memory():
    assert memory.available_host_bytes() > 2**28
