import numpy as np
import pytest

from common.config import Config
from common.data import add_digits, eval_chunks, eval_set, to_int, train_batch


@pytest.mark.parametrize("trial", range(40))
def test_digits_decode_to_the_exact_sum(trial):
    rng = np.random.default_rng(trial)
    cfg = Config(data="uniform", digits=int(rng.integers(1, 60)), base=int(rng.integers(2, 37)),
                 order=str(rng.choice(["lsb", "msb"])), batch_size=int(rng.integers(1, 40)),
                 seed=trial)
    batch = train_batch(cfg, step=int(rng.integers(1, 10**6)))
    assert batch.a.shape == batch.b.shape == batch.target.shape == (cfg.batch_size, cfg.positions)
    a, b, s = (to_int(x, cfg.base, cfg.order) for x in (batch.a, batch.b, batch.target))
    assert all(x + y == z for x, y, z in zip(a, b, s))
    assert all(x < cfg.base**cfg.digits for x in a + b)  # the top position is room for the carry


def test_long_carry_chains_are_exact():
    # 99…9 + 1 carries through every position; base 2 and 36 as well.
    for base in (2, 10, 36):
        n = 2000
        a = np.full((1, n + 1), base - 1, np.int32)
        a[0, -1] = 0
        b = np.zeros_like(a)
        b[0, 0] = 1
        s = add_digits(a, b, base)
        assert s[0, -1] == 1 and not s[0, :-1].any()


def test_handout_ranges():
    cfg = Config(batch_size=500, eval_size=500)
    train = to_int(train_batch(cfg, 1).a, 10) + to_int(train_batch(cfg, 1).b, 10)
    test = to_int(eval_set(cfg).a, 10) + to_int(eval_set(cfg).b, 10)
    assert all(0 <= x < 555555555 for x in train)
    assert all(555555555 <= x < 999999999 for x in test)
    assert min(train) < 10**8 and max(test) > 9 * 10**8  # the ranges are actually covered


def test_batches_are_pure_functions_of_seed_and_step():
    cfg = Config(data="uniform", digits=20, h0="randn")
    one, again, other = train_batch(cfg, 5), train_batch(cfg, 5), train_batch(cfg, 6)
    for field in ("a", "b", "target", "h0"):
        np.testing.assert_array_equal(getattr(one, field), getattr(again, field))
    assert not np.array_equal(one.a, other.a)
    assert not np.array_equal(one.a, train_batch(cfg.replace(seed=1), 5).a)
    np.testing.assert_array_equal(eval_set(cfg).a, eval_set(cfg).a)
    # The h0 mode has its own random stream: it never changes the operands.
    np.testing.assert_array_equal(one.a, train_batch(cfg.replace(h0="xavier"), 5).a)


@pytest.mark.parametrize("mode, std", [("zeros", 0.0), ("randn", 1.0), ("randn10", 10.0),
                                       ("xavier", 5 / 3 / 8), ("he", np.sqrt(2 / 64))])
def test_h0_modes(mode, std):
    cfg = Config(h0=mode, cell="lstm", hidden=64, batch_size=500)
    h0 = train_batch(cfg, 1).h0
    assert h0.shape == (2, cfg.layers, 500, 64) and h0.dtype == np.float32
    assert h0.std() == pytest.approx(std, rel=0.02, abs=1e-12)


def test_eval_chunks_cover_every_row_once():
    cfg = Config(eval_size=7)
    batch = eval_set(cfg)
    rows = [chunk.a[:valid] for chunk, valid in eval_chunks(batch, 3)]
    assert [len(r) for r in rows] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(rows), batch.a)


def test_long_batches():
    cfg = Config(data="uniform", digits=5000, batch_size=200)
    batch = train_batch(cfg, 1)
    assert batch.target.shape == (200, 5001)
    a, b, s = (to_int(x[:3], 10) for x in (batch.a, batch.b, batch.target))
    assert all(x + y == z for x, y, z in zip(a, b, s))


def test_every_batch_is_c_contiguous():
    # Frameworks keep numpy's strides, and cuDNN refuses a strided RNN state; views of any kind
    # (msb reversal, eval-chunk fancy indexing, a probe's slice) must arrive as plain arrays.
    cfg = Config(cell="lstm", layers=3, h0="randn", order="msb", data="uniform", eval_size=7)
    held_out = eval_set(cfg)
    sliced = type(held_out)(held_out.a[:3], held_out.b[:3], held_out.target[:3], held_out.h0[:, :, :3])
    chunks = [chunk for chunk, _ in eval_chunks(held_out, 3)]
    for batch in [train_batch(cfg, 1), held_out, sliced, *chunks]:
        for name in ("a", "b", "target", "h0"):
            assert getattr(batch, name).flags.c_contiguous, name


def _general_path(monkeypatch):
    """Turn off the int64 shortcut: every number then goes through the digit-array arithmetic."""
    from common import data
    monkeypatch.setattr(data, "_weights", lambda digits, base: None)


@pytest.mark.parametrize("cfg", [Config(), Config(digits=18), Config(digits=19), Config(order="msb", digits=17),
                                 Config(data="uniform", base=2, digits=61), Config(data="uniform", base=36, digits=12),
                                 Config(data="uniform", digits=30), Config(control="reorder", h0="randn")])
def test_the_int64_shortcut_makes_the_same_batches_bit_for_bit(cfg, monkeypatch):
    fast = [train_batch(cfg, k) for k in (1, 2, 777)] + [eval_set(cfg.replace(eval_size=300))]
    _general_path(monkeypatch)
    slow = [train_batch(cfg, k) for k in (1, 2, 777)] + [eval_set(cfg.replace(eval_size=300))]
    for f, s in zip(fast, slow):
        for field in ("a", "b", "target", "h0"):
            x, y = getattr(f, field), getattr(s, field)
            assert x.dtype == y.dtype and np.array_equal(x, y), field


def test_the_shortcut_stops_where_int64_does():
    from common.data import _weights
    assert _weights(18, 10) is not None and _weights(19, 10) is None  # 10**19 > 2**63 - 1
    assert _weights(62, 2) is not None and _weights(63, 2) is None
    # Sums at the edge of the shortcut are exact: 18 nines plus 18 nines (with room for the carry:
    # 19 positions, past the shortcut) and, in the shortcut, every one of 18 positions a nine.
    for width in (18, 19):
        nines = np.full((1, width), 9, np.int32)
        nines[0, -1] = 0 if width == 19 else 9
        expected = (2 * (10**width - 1)) % 10**width if width == 18 else 2 * (10**18 - 1)
        assert to_int(add_digits(nines, nines, 10), 10) == [expected]
