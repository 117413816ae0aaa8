"""compare.bench.core: efficiency against the right peak, and timed arms that take turns."""

from compare.bench.core import add_efficiency, time_arms


def test_efficiency_uses_the_peak_of_the_device_each_backend_ran_on():
    row = lambda device, peak, gflops: {"device": device, "peak_gflops": peak, "gflops": gflops}  # noqa: E731
    same = {"jax": row("cpu", 100.0, 30.0), "torch": row("cpu", 80.0, 20.0)}
    add_efficiency(same)  # one device: the better framework's peak is the yardstick for both
    assert same["jax"]["efficiency"] == 0.3 and same["torch"]["efficiency"] == 0.2
    mixed = {"jax": row("cpu", 100.0, 30.0), "torch": row("gpu", 50000.0, 500.0)}
    add_efficiency(mixed)  # never a CPU run against a GPU's peak
    assert mixed["jax"]["efficiency"] == 0.3 and mixed["torch"]["efficiency"] == 0.01
    failed = {"jax": {"error": "boom"}, "torch": row("cpu", 80.0, 20.0)}
    add_efficiency(failed)
    assert failed["torch"]["efficiency"] == 0.25 and "efficiency" not in failed["jax"]


def test_timed_arms_take_turns_block_by_block():
    calls = []
    arm = lambda name: (lambda i: calls.append((name, i)), lambda: calls.append((name, "sync")))  # noqa: E731
    times = time_arms({"a": arm("a"), "b": arm("b")}, blocks=2, block_steps=2)
    assert [len(t) for t in times.values()] == [2, 2]
    assert calls == [("a", 0), ("a", 1), ("a", "sync"), ("b", 0), ("b", 1), ("b", "sync")] * 2
