"""compare.bench.baselines: the plain loops the bench measures our backends against must be real
training loops of the handout's model on correct sums."""

import numpy as np
import pytest

from common.config import Config
from common.data import to_int
from compare.bench.baselines import HANDOUT_HIGH, handout_batch, plain_loop, supports


def test_handout_batches_are_correct_sums_of_the_handout_range():
    a, b, target = handout_batch(np.random.default_rng(0), 500, 10)
    assert a.shape == b.shape == target.shape == (500, 10) and a.max() <= 9
    ints = [to_int(x, 10) for x in (a, b, target)]
    assert all(0 <= x < HANDOUT_HIGH for x in ints[0] + ints[1])
    assert [x + y for x, y in zip(ints[0], ints[1])] == ints[2]
    assert max(ints[2]) >= 10**9  # some sums carry into the 10th position


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_plain_loop_learns_to_add(backend):
    cfg = Config(lr=1e-2, threads=1)
    step, loss = plain_loop(backend, cfg)
    step()
    first = loss()
    for _ in range(150):
        step()
    assert loss() < 0.25 * first, (first, loss())  # ln 10 = 2.3 at the start; it learns the digits


def test_only_the_handout_model_has_a_baseline():
    assert supports(Config()) and not supports(Config(cell="gru")) and not supports(Config(data="uniform"))
    with pytest.raises(ValueError, match="only the handout's model"):
        plain_loop("torch", Config(cell="lstm"))
