"""compare.bench.sentiment: real tokens counted, padding cut by buckets, and (slow) a text case end to end."""

import json
import subprocess
import sys

import pytest

from compare.bench import sentiment


def test_text_cases_count_real_tokens_and_bucketing_cuts_padding():
    cfg = sentiment.CASES["text-lstm-1024"]
    per_token = 2 * 4 * 1024 * (100 + 1024)  # one layer: 4 gates of (in + hidden) x hidden
    assert sentiment.flops_per_step(cfg, 1000) == 3 * per_token * 1000 + 3 * 2 * 1024 * 64
    random, bucketed = sentiment.batches("random"), sentiment.batches("bucketed")
    for batch in random + bucketed:
        assert len(batch) == 64 and 50 <= batch.lengths.min() and batch.lengths.max() <= 400
        assert batch.ids.shape[1] <= 400 and (batch.ids[:, :50] > 1).all()
    share = lambda group: sum(sentiment.pad_share(b) for b in group) / len(group)  # noqa: E731
    assert share(random) > 0.4 and share(bucketed) < 0.25  # uniform 50..400: ~45 % pad unsorted, ~22 % bucketed


@pytest.mark.slow
def test_bench_measures_a_text_case(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "compare.bench", "--quick", "--cases", "text-rnn-256",
                             "--thread_counts", "1", "--vmap_seeds", "0", "--json", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert {r["backend"] for r in rows} == {"jax", "torch"}
    for r in rows:
        assert r["gflops"] > 0 and r["bucketed_gflops"] > 0 and r["pad_share"] > r["bucketed_pad_share"]
    torch_row = next(r for r in rows if r["backend"] == "torch")  # the lab's packed sequence beside it
    assert torch_row["packed_random_step_s"] > 0 and torch_row["packed_bucketed_step_s"] > 0
    assert "Sentiment model: batches of 64 texts" in result.stdout
