"""common/checkpoint.py alone: the file format, atomic writes, which checkpoint a rerun trusts."""

import json
import os

import numpy as np
import pytest

from common.checkpoint import Checkpointing, Checkpoints, Corrupt, digest
from common.config import Config, ConfigError
from common.files import WriteFailed

CONFIG = Config(digits=4, hidden=16).to_json()


def arrays(step):
    """A trainer state of every dtype a checkpoint meets, depending on `step`."""
    rng = np.random.default_rng(step)
    return {"['params']['w']": rng.standard_normal((3, 4)).astype(np.float32),
            "['opt_state'][0].count": np.array(step, np.int32),
            "opt/state/0/exp_avg": rng.standard_normal(5),  # float64
            "first_bad": np.array(0, np.int64), "flag": np.array(True),
            "odd name/with 'quotes' [and] \u00e9": np.arange(3, dtype=np.uint8)}


def meta(step):
    return {"curve": [{"step": step, "loss": 0.1 + step / 3, "exact_acc": 1 / 3}], "timers": {"compile_s": None}}


def checkpoints(tmp_path, every=10, backend="jax", config=CONFIG):
    return Checkpoints(Checkpointing(every=every, dir=str(tmp_path / "ckpt")), backend, config)


def assert_same(snapshot, step):
    assert snapshot.step == step
    assert snapshot.meta == meta(step)
    want = arrays(step)
    assert snapshot.arrays.keys() == want.keys()
    for name, x in want.items():
        got = snapshot.arrays[name]
        assert got.dtype == x.dtype and got.shape == x.shape and np.array_equal(got, x), name


def test_round_trip_is_exact(tmp_path):
    ckpt = checkpoints(tmp_path)
    assert ckpt.latest() is None  # nothing yet, and no folder
    ckpt.save(10, arrays(10), meta(10))
    assert_same(ckpt.latest(), 10)
    assert json.dumps(ckpt.latest().meta) == json.dumps(meta(10))  # floats bit for bit through JSON


def test_the_latest_two_are_kept(tmp_path):
    ckpt = checkpoints(tmp_path)
    for step in (10, 20, 30):
        ckpt.save(step, arrays(step), meta(step))
    assert sorted(ckpt.files()) == [20, 30]
    assert_same(ckpt.latest(), 30)


def write_then_break(tmp_path, damage):
    """Checkpoints of steps 10 and 20, then `damage` done to step 20's file."""
    ckpt = checkpoints(tmp_path)
    ckpt.save(10, arrays(10), meta(10))
    latest = ckpt.save(20, arrays(20), meta(20))
    damage(latest)
    return ckpt, latest


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path):
    path.write_bytes(os.urandom(path.stat().st_size))


def empty(path):
    path.write_bytes(b"")


def flip_a_byte_of_the_arrays(path):
    """A bit flip inside an array's bytes: the zip's CRC or the checksum catches it."""
    data = bytearray(path.read_bytes())
    at = data.index(np.float32(arrays(20)["['params']['w']"][1, 1]).tobytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def swap_in_other_arrays(path):
    """A whole, readable file whose arrays are not the ones its checksum was taken of."""
    with np.load(path) as z:
        payload = {k: z[k] for k in z.files}
    payload["a0"] = payload["a0"] + 1 if payload["a0"].dtype != bool else ~payload["a0"]
    with open(path, "wb") as f:
        np.savez(f, **payload)


@pytest.mark.parametrize("damage", [truncate, garbage, empty, flip_a_byte_of_the_arrays, swap_in_other_arrays])
def test_a_torn_or_corrupt_latest_is_ignored_and_the_previous_used(tmp_path, damage):
    ckpt, latest = write_then_break(tmp_path, damage)
    with pytest.raises(Corrupt):
        ckpt.read(latest)
    assert_same(ckpt.latest(), 10)
    assert [p for p, _ in ckpt.rejected] == [latest]


def test_a_corrupt_only_checkpoint_means_starting_afresh(tmp_path):
    ckpt = checkpoints(tmp_path)
    truncate(ckpt.save(10, arrays(10), meta(10)))
    assert ckpt.latest() is None and len(ckpt.rejected) == 1


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    """The write dies half way (disk full): the target is untouched, no temporary file is left,
    and the error names the file."""
    ckpt = checkpoints(tmp_path)
    ckpt.save(10, arrays(10), meta(10))
    before = {p.name: p.read_bytes() for p in ckpt.dir.iterdir()}

    def savez_then_fail(f, **payload):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(WriteFailed, match="cannot write .*-000000020.ckpt.npz: No space left on device"):
        ckpt.save(20, arrays(20), meta(20))
    assert {p.name: p.read_bytes() for p in ckpt.dir.iterdir()} == before
    with pytest.raises(WriteFailed):  # rewriting the very file that is there
        ckpt.save(10, arrays(10), meta(10))
    assert {p.name: p.read_bytes() for p in ckpt.dir.iterdir()} == before
    monkeypatch.undo()
    assert_same(ckpt.latest(), 10)


def test_a_torn_file_that_was_resumed_past_is_replaced_and_pruned(tmp_path):
    """Resumed from 10 past a torn 20 (and a stray later 30): the next saves never keep them."""
    ckpt, _ = write_then_break(tmp_path, truncate)
    stray = ckpt.path(30)
    stray.write_bytes(b"torn")
    assert_same(ckpt.latest(), 10)
    ckpt.save(20, arrays(20), meta(20))
    assert sorted(ckpt.files()) == [10, 20] and not stray.exists()
    assert_same(ckpt.latest(), 20)


@pytest.mark.parametrize("other", [dict(backend="torch"), dict(config=Config(digits=5, hidden=16).to_json())],
                         ids=["backend", "config"])
def test_a_checkpoint_of_another_run_is_never_loaded(tmp_path, other):
    checkpoints(tmp_path).save(10, arrays(10), meta(10))
    theirs = checkpoints(tmp_path, **other)
    assert theirs.files() == {} and theirs.latest() is None  # another name


@pytest.mark.parametrize("other", [dict(backend="torch"), dict(config=Config(digits=5, hidden=16).to_json())],
                         ids=["backend", "config"])
def test_a_file_whose_name_lies_is_not_trusted(tmp_path, other):
    """Another run's checkpoint renamed to this run's name: its metadata gives it away."""
    mine, theirs = checkpoints(tmp_path), checkpoints(tmp_path, **other)
    theirs.save(20, arrays(20), meta(20))
    mine.save(10, arrays(10), meta(10))
    os.replace(theirs.path(20), mine.path(20))
    assert_same(mine.latest(), 10)
    assert "is 'torch'" in mine.rejected[0][1] or "config is" in mine.rejected[0][1]


def test_a_finished_run_deletes_its_checkpoints_and_leftovers_only(tmp_path):
    ckpt, other = checkpoints(tmp_path), checkpoints(tmp_path, backend="torch")
    for step in (10, 20):
        ckpt.save(step, arrays(step), meta(step))
    other.save(10, arrays(10), meta(10))
    leftover = ckpt.dir / f".{ckpt.path(30).stem}.12345.tmp.npz"  # a writer killed mid-write
    leftover.write_bytes(b"PK")
    unrelated = ckpt.dir / "notes.txt"
    unrelated.write_text("mine")
    ckpt.clear()
    assert sorted(p.name for p in ckpt.dir.iterdir()) == sorted([other.path(10).name, "notes.txt"])
    assert ckpt.latest() is None


def test_the_checksum_covers_names_dtypes_and_values():
    base = arrays(1)
    assert digest(base) == digest(dict(reversed(base.items())))  # not the order given
    renamed = {("x" if k == "flag" else k): v for k, v in base.items()}
    retyped = {**base, "first_bad": base["first_bad"].astype(np.int32)}
    changed = {**base, "['params']['w']": base["['params']['w']"] * 2}
    assert len({digest(base), digest(renamed), digest(retyped), digest(changed)}) == 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(every=-1, dir="d"), "--checkpoint_every=-1: must be >= 0"),
    (dict(every=5), "--checkpoint_every=5: needs --checkpoint_dir"),
    (dict(every=2.5, dir="d"), "--checkpoint_every=2.5: must be a whole number"),
    (dict(every=True, dir="d"), "--checkpoint_every=True"),
])
def test_settings_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Checkpointing(**kwargs)


def test_settings_from_a_serve_request():
    assert Checkpointing.from_dict(None) == Checkpointing() and not Checkpointing().on
    assert Checkpointing.from_dict({"every": 3, "dir": "d"}) == Checkpointing(3, "d")
    with pytest.raises(ConfigError, match="unknown checkpoint field 'evry'"):
        Checkpointing.from_dict({"evry": 3, "dir": "d"})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        Checkpointing.from_dict([3])
    with pytest.raises(ConfigError, match="--checkpoint_every=2 with --vmap_seeds=4"):
        Checkpointing(2, "d").check_group(4)
    Checkpointing().check_group(4)  # off: any group
