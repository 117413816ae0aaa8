"""compare.equivalence.sentiment: the text classifier's cross-backend checks pass, and fail when
one backend is broken."""

import subprocess
import sys

from compare.equivalence import sentiment as seq
from jax_impl import sentiment as jax_sentiment


def test_the_backends_agree_on_mixed_lengths():
    """gru x2 in float32 here; lstm x1 in float64 is every workload's check (tests/test_workloads.py)."""
    result = seq.check("gru", 2, "float32")
    assert result.violations() == [] and result.steps == 100
    assert result.padding <= 1e-6


def test_the_last_padded_state_instead_of_the_last_real_one_is_caught(monkeypatch):
    monkeypatch.setattr(jax_sentiment, "real_tokens", lambda width, lengths: jax_sentiment.jnp.ones(
        (width, lengths.shape[0]), bool))
    broken = seq.check("rnn-tanh", 1, "float32").violations()
    assert any(": logits " in line for line in broken) and any("padding changed a logit" in line for line in broken)


def test_the_command_line(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "compare.equivalence", "--task", "sentiment", "--cell", "gru",
                         "--layers", "1", "--dtype", "float32"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "Sentiment: the worst figure of each kind per dtype" in ok.stdout and "BROKEN" not in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "compare.equivalence", "--task", "sentiment", "--noise"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --noise: a check of --task adder, not of --task sentiment"
