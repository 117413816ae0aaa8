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


def _spin(seconds):
    import time
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_core_watch_sees_another_process_on_our_core():
    """A busy process pinned to our one core takes about half of it while we spin too."""
    import os
    import subprocess
    import sys

    import time

    before = os.sched_getaffinity(0)
    idle = {}
    for core in before:  # the quietest core: the "alone" half needs one nobody else is using
        start = threads._busy_seconds({core})
        time.sleep(0.5)
        idle[core] = threads._busy_seconds({core}) - start
    core = min(idle, key=idle.get)
    if idle[core] > 0.5 * threads.CONTENDED:
        pytest.skip(f"every core of this machine is busy with other work ({idle[core] / 0.5:.0%} of the quietest)")
    os.sched_setaffinity(0, {core})
    try:
        alone = threads.CoreWatch()
        _spin(1.0)
        alone_share = alone.others_share()
        rival = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\n"
                                  "while True: pass"])
        try:
            shared = threads.CoreWatch()
            _spin(1.5)
            shared_share = shared.others_share()
        finally:
            rival.kill()
            rival.wait()
    finally:
        os.sched_setaffinity(0, before)
    assert alone_share < threads.CONTENDED
    assert 0.3 < shared_share <= 0.7
