"""The host-core policy: the same cores for both frameworks, 1 on a CPU, up to 8 on a GPU."""

import pytest

from common import threads
from common.config import Config, ConfigError


@pytest.fixture
def cores(monkeypatch):
    def set_cores(n, gpu):
        monkeypatch.setattr(threads, "available_cores", lambda: list(range(n)))
        monkeypatch.setattr(threads, "gpu_present", lambda: gpu)
    return set_cores


@pytest.mark.parametrize("device, gpu, n, expected", [
    ("auto", False, 16, 1),   # CPU run: one core, as every CPU timing in the study
    ("cpu", True, 16, 1),     # asked for the CPU on a GPU box
    ("auto", True, 16, 8),    # GPU run: the host compiles and launches; capped at 8
    ("gpu", False, 16, 8),    # explicit GPU (the framework will say if it has none)
    ("gpu", True, 4, 4),      # never more cores than the process has
])
def test_auto_threads(cores, device, gpu, n, expected):
    cores(n, gpu)
    cfg = Config(device=device)
    assert threads.host_threads(cfg) == expected
    assert ("GPU run" in threads.thread_policy(cfg)) == (expected > 1)


def test_explicit_threads_win(cores):
    cores(16, True)
    cfg = Config(threads=3)
    assert threads.host_threads(cfg) == 3 and threads.thread_policy(cfg) == "set: 3"


def test_negative_threads_are_refused():
    with pytest.raises(ConfigError, match="threads=-1"):
        Config(threads=-1)
