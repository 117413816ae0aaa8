"""compare.run --engine ray (compare/ray_engine.py): the same records as the local engine, a node
that dies mid-sweep, bad input. Ray is the cluster extra: without it these are skipped."""

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tests.test_harness import TINY, harness, records


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(parent, []).append(int(pid))
    return tree


def _descendants(root: int) -> set[int]:
    tree, found, todo = _children(), set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += tree.get(pid, [])
    return found


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that a process of `pids` listens on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc/net/tcp* holds the address as 32-bit words in host (little-endian) order
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
            ip = ipaddress.ip_address(packed)
            if ip.version == 6 and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            found.add((str(ip), int(hex_port, 16)))
    return found


def test_a_local_ray_instance_gives_the_local_engines_records_and_listens_on_loopback_only(tmp_path):
    args = ["--sweep", "ablation", *TINY]
    local = harness(*args, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    driver = subprocess.Popen([sys.executable, "-m", "compare.run", *args, "--engine", "ray",
                               "--out", str(tmp_path / "ray")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    sockets = set()
    while driver.poll() is None:  # what Ray's processes (the driver's descendants) listen on
        sockets |= _listening(_descendants(driver.pid))
        time.sleep(0.5)
    out, err = driver.communicate()
    assert driver.returncode == 0, err
    assert "local Ray instance: 1 node(s)" in out
    assert len(sockets) >= 3, sockets  # the GCS, the raylet, the workers
    assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in sockets), sockets

    def runs(name):
        return {r["key"]: r for r in records(tmp_path / name)}

    def curve(record):  # what was learnt, not how long it took
        return [(p["step"], p["loss"], p["exact_acc"], p["digit_acc"]) for p in record["curve"]]

    mine, theirs = runs("ray"), runs("local")
    assert sorted(mine) == sorted(theirs) and len(mine) == 4
    for key, record in mine.items():
        assert record["status"] == "ok" and record["jobs"] == theirs[key]["jobs"] == 2
        assert curve(record) == curve(theirs[key])  # deterministic: the same run, bit for bit
        assert record["final"] == theirs[key]["final"]
        assert record["config"] == theirs[key]["config"] and record["label"] == theirs[key]["label"]
        assert set(record) == set(theirs[key])
    assert (tmp_path / "ray" / "report.md").exists() and not (tmp_path / "ray" / "scratch").exists()
    logs = sorted(p.name for p in (tmp_path / "ray" / "logs").iterdir())
    assert [f"{k}.log" for k in sorted(mine)] == [n for n in logs if not n.startswith("worker-")]
    assert all((tmp_path / "ray" / "logs" / f"{k}.log").read_text().strip() for k in mine)


@pytest.fixture
def cluster():
    """A head and two worker nodes of 1 CPU each, on this machine, on loopback; nodes found
    dead within about a second."""
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as env:
        for name, value in [("RAY_USAGE_STATS_ENABLED", "0"), ("RAY_AUTH_MODE", "disabled"),
                            ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")]:
            env.setenv(name, value)
        env.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # read when ray was imported
        fast = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                "health_check_timeout_ms": 500, "health_check_failure_threshold": 2}
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                                "_system_config": fast})
        try:
            workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
            cluster.wait_for_nodes()
            yield cluster, workers
        finally:
            cluster.shutdown()


def _cpu_ticks(pid: int) -> int:
    """User and system CPU time the process has used, in clock ticks."""
    return sum(map(int, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]))


def _busy_worker_on(nodes, driver: subprocess.Popen, timeout: float = 120):
    """A node of `nodes` whose slot's worker is training now: a `--serve` process under the
    node's raylet that is using CPU."""
    raylets = {node.all_processes["raylet"][0].process.pid: node for node in nodes}
    deadline = time.time() + timeout
    while time.time() < deadline and driver.poll() is None:
        for raylet, node in raylets.items():
            for pid in _descendants(raylet):
                try:
                    if "--serve" not in Path(f"/proc/{pid}/cmdline").read_text():
                        continue
                    before = _cpu_ticks(pid)
                    time.sleep(0.3)
                    if _cpu_ticks(pid) > before:
                        return node
                except OSError:
                    continue
        time.sleep(0.1)
    raise AssertionError("no worker node ran a unit")


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray starts its nodes' processes
def test_a_node_that_dies_mid_sweep_loses_and_duplicates_nothing(tmp_path, cluster):
    head, workers = cluster
    out = tmp_path / "h0"
    driver = subprocess.Popen(
        [sys.executable, "-m", "compare.run", "--sweep", "h0", "--backends", "torch", "--seeds", "1",
         "--set", "steps=300", "--set", "eval_every=50", "--set", "device=cpu", "--controls", "none",
         "--engine", "ray", "--address", head.address, "--jobs", "2", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = _busy_worker_on(workers, driver)
        head.remove_node(victim, allow_graceful=False)
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.send_signal(signal.SIGINT)
            driver.communicate(timeout=60)
    assert driver.returncode == 0, stderr
    recs = records(out)
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)) == 5  # every run once, none lost, none twice
    assert all(r["status"] == "ok" for r in recs)
    said = " ".join(stdout.split())  # as printed, less the terminal's line wrapping
    lost = said.count("running it again on another slot")
    print(f"{lost} unit(s) retried after their node was killed")
    assert lost == 1 and "lost torch h0=" in said and "(1 of 2)" in said
    assert "ran 1 run(s) again whose Ray node or worker was lost under them" in said
    assert "1 run(s) lost with their Ray node or worker were run again" in (out / "report.md").read_text()


def test_without_ray_installed_the_ray_engine_is_one_line_naming_the_extra(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")  # as if not installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    result = harness("--sweep", "layers", "--engine", "ray", "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --engine ray needs Ray, which comes with the cluster extra: pip install -e '.[cluster]'"]
    local = harness("--sweep", "layers", "--set", "device=cpu", "--dry_run", "--out", str(tmp_path / "out"), env=env)
    assert local.returncode == 0, local.stderr  # the local engine never needs it


@pytest.mark.parametrize("args, message", [
    (["--engine", "spark"], "--engine=spark"),
    (["--engine", "ray", "--address", "127.0.0.1:1"], "--address=127.0.0.1:1: no Ray cluster answers there"),
    (["--engine", "ray", "--address", "head"], "--address=head: expected HOST:PORT"),
    (["--address", "127.0.0.1:6379"], "--address=127.0.0.1:6379: only with --engine ray"),
])
def test_bad_engine_input_is_one_line_exit_2_within_seconds(tmp_path, args, message):
    start = time.perf_counter()
    result = harness("--sweep", "layers", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert time.perf_counter() - start < 15
    assert list(tmp_path.iterdir()) == []
