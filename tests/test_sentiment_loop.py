"""common/sentiment/loop.py: the training loop's record, and accuracy by text length."""

import numpy as np

from common.sentiment.config import TextConfig
from common.sentiment.loop import by_length, fit, training_batch, widths
from compare.sentiment_equivalence import synthetic_data
from torch_impl.sentiment import Trainer


def test_by_length_splits_the_texts_into_quarters_shortest_first():
    lengths = np.array([5, 1, 8, 3, 2, 7, 4, 6])
    right = lengths > 4  # long texts right, short ones wrong
    quarters = by_length(right, lengths)
    assert [q["tokens"] for q in quarters] == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert [q["test_acc"] for q in quarters] == [0.0, 0.0, 1.0, 1.0] and sum(q["n"] for q in quarters) == 8


def test_a_run_records_its_curve_best_and_lengths():
    data = synthetic_data()
    cfg = TextConfig(hidden=8, batch_size=16, eval_batch=32, steps=20, eval_every=10, device="cpu", threads=1)
    record = fit(cfg, Trainer(cfg, data.embedding), data)
    assert record["status"] == "ok" and [p["step"] for p in record["curve"]] == [10, 20]
    best = max(record["curve"], key=lambda p: p["test_acc"])
    assert record["best"]["test_acc"] == best["test_acc"] and record["best"]["step"] == best["step"]
    assert len(record["lengths"]) == 4 and sum(q["n"] for q in record["lengths"]) == len(data.test)
    assert record["timing"]["steps_per_s"] > 0 and record["timing"]["compile_s"] is None


def test_widths_cover_every_batch_the_run_can_meet():
    data = synthetic_data()
    cfg = TextConfig(batch_size=16, eval_batch=32)
    train, test = widths(cfg, data)
    assert {training_batch(cfg, data, k).ids.shape[1] for k in range(1, 200)} <= set(train)
    assert max(train) == data.train.ids.shape[1] and test
