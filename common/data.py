"""The addition data both backends consume: exact for any length and base, vectorised in numpy.

Numbers are digit arrays, never Python or int64 integers, so 25 000-digit sums are as exact as
9-digit ones. Each sequence has `cfg.positions` = digits + 1 places (the last holds the final
carry); position 0 is the least-significant digit for order=lsb and the most-significant for
order=msb.

While the numbers fit in int64 (18 decimal digits), comparisons and sums take an exact shortcut
through their integer values: the same digits, bit for bit, in a fraction of the time (a step of
the canonical run waits for its batch).

Randomness is split into independent streams keyed by (seed, stream, step), so training batch k
is a pure function of (seed, k), the eval set is fixed per seed, and changing the h0 mode never
changes the operands.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import numpy as np

from common.config import Config
from common.controls import reorder_rows

_TRAIN, _EVAL, _TRAIN_H0, _EVAL_H0 = range(4)
# Per-step cap on elements (sequences x positions x hidden) one eval chunk may hold.
_EVAL_CHUNK_BUDGET = 2**24


@dataclasses.dataclass(frozen=True)
class Batch:
    """What a backend receives; every field is C-contiguous, whatever view it was built from.

    Frameworks keep numpy's strides: `torch.from_numpy(x).to("cuda")` of a strided view is a
    strided tensor, which cuDNN refuses as an RNN state ("hx is not contiguous") where the CPU
    kernels accept it. Making the arrays contiguous here is the one place that covers every path
    (training, eval chunks, probes, equivalence); it copies only arrays that are not already.
    """

    a: np.ndarray       # (batch, positions) int32 digits of the first operand
    b: np.ndarray       # (batch, positions) int32 digits of the second operand
    target: np.ndarray  # (batch, positions) int32 digits of a + b
    h0: np.ndarray      # (state_parts, layers, batch, hidden) initial recurrent state

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, np.ascontiguousarray(getattr(self, field.name)))

    def __len__(self) -> int:
        return self.a.shape[0]


def _rng(cfg: Config, stream: int, step: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(stream, step)))


def random_digits(rng: np.random.Generator, n: int, digits: int, base: int) -> np.ndarray:
    """(n, digits) uniform random digits, least-significant first."""
    return rng.integers(0, base, size=(n, digits), dtype=np.int32)


def _below(x: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Row-wise x < bound for lsb-first digit arrays (lexicographic from the top digit)."""
    diff = x != bound
    top = x.shape[1] - 1 - np.argmax(diff[:, ::-1], axis=1)  # highest differing position
    rows = np.arange(x.shape[0])
    return diff.any(axis=1) & (x[rows, top] < bound[top])


def _weights(digits: int, base: int) -> np.ndarray | None:
    """base**i for the lsb-first positions, if every number of `digits` digits fits in int64."""
    if base ** digits > np.iinfo(np.int64).max:
        return None
    return base ** np.arange(digits, dtype=np.int64)


def digits_in_range(rng: np.random.Generator, n: int, digits: int, base: int,
                    lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(n, digits) digit arrays of integers uniform in [lo, hi), by rejection sampling."""
    weights = _weights(digits, base)
    if weights is not None:
        lo_value, hi_value = int(lo @ weights), int(hi @ weights)

        def inside(x: np.ndarray) -> np.ndarray:
            value = x @ weights  # the same test on the integers: digit order is numeric order
            return (value >= lo_value) & (value < hi_value)
    else:
        def inside(x: np.ndarray) -> np.ndarray:
            return ~_below(x, lo) & _below(x, hi)
    x = random_digits(rng, 2 * n + 16, digits, base)
    accepted = x[inside(x)]
    if len(accepted) >= n:  # the first draw almost always suffices: no list, no concatenation
        return accepted[:n]
    parts = [accepted]
    have = len(accepted)
    while have < n:
        x = random_digits(rng, 2 * (n - have) + 16, digits, base)
        parts.append(x[inside(x)])
        have += len(parts[-1])
    return np.concatenate(parts)[:n]


def carries(a: np.ndarray, b: np.ndarray, base: int) -> np.ndarray:
    """The carry into each position of a + b (lsb first), as 0/1.

    Carry-lookahead instead of a ripple loop: a position propagates an incoming carry iff its
    digit sum is base-1, so the carry into position i is the carry generated at the last
    non-propagating position below i (or 0 if there is none).
    """
    s = a + b
    generate = s >= base
    stops = np.where(s != base - 1, np.arange(s.shape[1]), -1)
    last_stop = np.maximum.accumulate(stops, axis=1)[:, :-1]
    carry_in = np.zeros(s.shape, s.dtype)
    carry_in[:, 1:] = (last_stop >= 0) & np.take_along_axis(generate, np.maximum(last_stop, 0), 1)
    return carry_in


def add_digits(a: np.ndarray, b: np.ndarray, base: int) -> np.ndarray:
    """Digit-wise a + b (lsb first, same width); the caller leaves room for the final carry."""
    weights = _weights(a.shape[1], base)
    if weights is not None and 2 * (base ** a.shape[1] - 1) <= np.iinfo(np.int64).max:  # so does the sum
        total = a @ weights + b @ weights  # add the integers, then read the sum's digits back
        return (total[:, None] // weights % base).astype(np.result_type(a, b))
    return (a + b + carries(a, b, base)) % base


def handout_bounds(digits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The handout's split, generalised to any length: 0 <= train < 55…5 <= test < 99…9."""
    zero = np.zeros(digits, np.int32)
    fives = np.full(digits, 5, np.int32)
    nines = np.full(digits, 9, np.int32)
    return zero, fives, nines


def sample_operands(cfg: Config, rng: np.random.Generator, n: int, test: bool) -> np.ndarray:
    """(n, digits) lsb-first operand digits from the configured distribution."""
    if cfg.data == "uniform":
        return random_digits(rng, n, cfg.digits, cfg.base)
    zero, fives, nines = handout_bounds(cfg.digits)
    lo, hi = (fives, nines) if test else (zero, fives)
    return digits_in_range(rng, n, cfg.digits, cfg.base, lo, hi)


def initial_state(cfg: Config, rng: np.random.Generator | None, n: int) -> np.ndarray:
    """(state_parts, layers, n, hidden) initial recurrent state for the configured h0 mode.

    xavier and he are normal draws with the std those inits give a (hidden x hidden) matrix:
    xavier gain/sqrt(hidden) (gain 5/3 for tanh, sqrt 2 for relu), he sqrt(2/hidden).
    """
    shape = (cfg.state_parts, cfg.layers, n, cfg.hidden)
    if cfg.h0 == "zeros":
        return np.zeros(shape, cfg.dtype)
    gain = 5 / 3 if cfg.activation == "tanh" else np.sqrt(2)
    std = {"randn": 1.0, "randn10": 10.0, "xavier": gain / np.sqrt(cfg.hidden),
           "he": np.sqrt(2 / cfg.hidden)}[cfg.h0]
    return (std * rng.standard_normal(shape)).astype(cfg.dtype)


def _with_carry_room(x: np.ndarray) -> np.ndarray:
    """x with a zero top position for the final carry (np.pad does the same, 10x slower)."""
    out = np.zeros((x.shape[0], x.shape[1] + 1), x.dtype)
    out[:, :-1] = x
    return out


def make_batch(cfg: Config, stream: int, h0_stream: int, step: int, n: int, test: bool) -> Batch:
    """n sums drawn from random stream `stream`, their initial states from `h0_stream`."""
    rng = _rng(cfg, stream, step)
    a, b = (_with_carry_room(sample_operands(cfg, rng, n, test)) for _ in range(2))
    target = add_digits(a, b, cfg.base).astype(np.int32, copy=False)
    if cfg.order == "msb":
        a, b, target = (x[:, ::-1] for x in (a, b, target))
    # Zeros draw nothing: skip seeding their generator (a fifth of a canonical batch's time).
    h0_rng = None if cfg.h0 == "zeros" else _rng(cfg, h0_stream, step)
    return Batch(a, b, target, initial_state(cfg, h0_rng, n))


def train_batch(cfg: Config, step: int) -> Batch:
    """Training batch number `step`: a pure function of (cfg.seed, step). A `reorder` control
    gets the same rows in a fixed other order (common/controls.py)."""
    batch = make_batch(cfg, _TRAIN, _TRAIN_H0, step, cfg.batch_size, test=False)
    if cfg.control != "reorder":
        return batch
    rows = reorder_rows(cfg.seed, cfg.batch_size)
    return Batch(batch.a[rows], batch.b[rows], batch.target[rows], batch.h0[:, :, rows])


def eval_set(cfg: Config) -> Batch:
    """The held-out set, fixed per seed (handout data: drawn from the test range)."""
    return make_batch(cfg, _EVAL, _EVAL_H0, 0, cfg.eval_size, test=True)


def eval_chunk_size(cfg: Config) -> int:
    """Sequences per eval forward pass, so a 5000-digit eval set does not need gigabytes."""
    per_sequence = cfg.positions * max(cfg.hidden, 2 * cfg.embed, cfg.base)
    return max(1, min(cfg.eval_size, _EVAL_CHUNK_BUDGET // per_sequence))


def eval_chunks(batch: Batch, size: int) -> Iterator[tuple[Batch, int]]:
    """Equal-size chunks (the last padded by repeating rows) and how many rows are real.

    Equal shapes let a jitted eval compile once; callers score only the first `valid` rows.
    """
    n = len(batch)
    for start in range(0, n, size):
        idx = np.arange(start, start + size) % n
        chunk = Batch(batch.a[idx], batch.b[idx], batch.target[idx], batch.h0[:, :, idx])
        yield chunk, min(size, n - start)


def to_int(digits: np.ndarray, base: int, order: str = "lsb") -> list[int]:
    """Decode digit rows to Python ints (for tests and inspection, not the hot path)."""
    rows = digits if order == "msb" else digits[:, ::-1]
    return [functools.reduce(lambda acc, d: acc * base + int(d), row, 0) for row in rows]
