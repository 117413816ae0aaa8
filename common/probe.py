"""Linear carry probes on hidden states: pure numpy, shared by the loop and compare.probe.

A probe per layer (logistic regression) predicts the carry out of each position from the
hidden state there; it trains on half the sequences and is scored on the other half.
"""

from __future__ import annotations

import numpy as np

from common.data import Batch, carries


def carry_out(batch: Batch, base: int, order: str) -> np.ndarray:
    """(sequences, positions) 0/1: the carry leaving each position, in the batch's digit order."""
    a, b = (batch.a, batch.b) if order == "lsb" else (batch.a[:, ::-1], batch.b[:, ::-1])
    into = carries(a, b, base)
    out = np.zeros_like(into)
    out[:, :-1] = into[:, 1:]  # the carry out of position i is the carry into position i + 1
    return out if order == "lsb" else out[:, ::-1]


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 300, lr: float = 0.5,
                 l2: float = 1e-4) -> tuple[np.ndarray, float]:
    """Full-batch gradient descent on standardised features; returns (weights, bias)."""
    w, bias = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + bias)))
        w -= lr * (x.T @ (p - y) / len(y) + l2 * w)
        bias -= lr * float(np.mean(p - y))
    return w, bias


def probe_layer(states: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """states (sequences, positions, hidden), labels (sequences, positions): held-out accuracy
    and the majority-class baseline."""
    half = len(states) // 2
    train_x, test_x = states[:half].reshape(-1, states.shape[-1]), states[half:].reshape(-1, states.shape[-1])
    train_y, test_y = labels[:half].ravel(), labels[half:].ravel()
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    w, bias = fit_logistic((train_x - mean) / std, train_y)
    predicted = ((test_x - mean) / std @ w + bias) > 0
    majority = max(test_y.mean(), 1 - test_y.mean())
    return {"accuracy": float(np.mean(predicted == test_y)), "baseline": float(majority)}


def local_rule_accuracy(batch: Batch, labels: np.ndarray, base: int) -> float:
    """How often the current digits alone (a_i + b_i >= base) give the carry out: what a model
    that cannot know the incoming carry (msb first) can at best match."""
    return float(np.mean((batch.a + batch.b >= base) == labels))


def probe_states(batch: Batch, states: np.ndarray, base: int, order: str) -> dict:
    """Per-layer probe accuracy for states (layers, sequences, positions, hidden), with baselines."""
    labels = carry_out(batch, base, order)
    return {"layers": [probe_layer(s, labels) for s in states],
            "local_rule_accuracy": local_rule_accuracy(batch, labels, base)}
