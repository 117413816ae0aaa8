"""compare.findings.sentiment: the second lab's claims, judged per backend on synthetic records."""

from compare.findings import sentiment
from compare.stats import group_records
from tests.test_stats import text_record


def _sweep(field, accuracy_by_value, spread=0.004):
    return group_records([text_record(b, {field: v}, k, best=acc + spread * (k - 1))
                          for b in ("jax", "torch") for v, acc in accuracy_by_value.items() for k in range(3)])


def test_gated_cells_beat_a_plain_rnn_or_not():
    (ok,) = sentiment.cells(_sweep("cell", {"rnn": 0.70, "lstm": 0.83, "gru": 0.83}))
    (bad,) = sentiment.cells(_sweep("cell", {"rnn": 0.85, "lstm": 0.75, "gru": 0.83}))
    (tie,) = sentiment.cells(_sweep("cell", {"rnn": 0.83, "lstm": 0.83, "gru": 0.831}, spread=0.02))
    assert ok.verdict == "jax: confirmed; torch: confirmed"
    assert bad.verdict == "jax: contradicted; torch: contradicted"
    assert tie.verdict == "jax: inconclusive; torch: inconclusive"


def test_a_second_layer_changes_little_within_the_margin():
    (little,) = sentiment.layers(_sweep("layers", {1: 0.700, 2: 0.705}, spread=0.001))
    (much,) = sentiment.layers(_sweep("layers", {1: 0.70, 2: 0.80}, spread=0.001))
    assert little.verdict == "jax: confirmed; torch: confirmed"
    assert much.verdict == "jax: contradicted; torch: contradicted"


def test_larger_hidden_sizes_and_the_worst_one():
    (ok,) = sentiment.hidden(_sweep("hidden", {256: 0.70, 512: 0.69, 1024: 0.60}))
    (bad,) = sentiment.hidden(_sweep("hidden", {256: 0.70, 512: 0.75, 1024: 0.80}))
    (missing,) = sentiment.hidden(_sweep("hidden", {256: 0.70, 512: 0.69}))
    assert ok.verdict == "jax: confirmed; torch: confirmed"
    assert bad.verdict == "jax: contradicted; torch: contradicted"
    assert missing.verdict == "jax: inconclusive; torch: inconclusive" and "hidden=1024" in missing.ours


def test_the_labs_numbers_by_config():
    assert sentiment.lab_accuracy({"cell": "lstm", "layers": 1, "hidden": 256}) == 0.8308
    assert sentiment.lab_accuracy({"cell": "lstm", "layers": 2, "hidden": 256}) is None


def test_a_plain_rnn_forgets_across_filler_and_the_gated_cells_do_not():
    def sweep(accuracy):
        return group_records([text_record(b, {"cell": c, "filler": f}, k, best=accuracy(c, f) + 0.004 * (k - 1))
                              for b in ("jax", "torch") for c in ("rnn", "lstm", "gru") for f in (0, 150)
                              for k in range(3)])
    (ok,) = sentiment.length(sweep(lambda c, f: 0.83 - (0.12 if c == "rnn" and f else 0)))
    (bad,) = sentiment.length(sweep(lambda c, f: 0.83))
    assert ok.verdict == "jax: confirmed; torch: confirmed" and "rnn 0.830 -> 0.710" in ok.ours
    assert bad.verdict == "jax: contradicted; torch: contradicted"
