"""compare/plots.py: what the curves figure draws (its loss panel above all)."""

import numpy as np

from compare import plots
from compare.stats import Group


def record(task, seed, losses, means=None, tests=None):
    """A finished run of 2 eval points: batch losses, interval means (None: an old record) and,
    for sentiment, test losses."""
    curve = []
    for k, loss in enumerate(losses):
        point = {"step": 10 * (k + 1), "loss": loss, "exact_acc": 0.5, "test_acc": 0.5}
        if means is not None:
            point["train_loss_mean"] = means[k]
        if tests is not None:
            point["test_loss"] = tests[k]
        curve.append(point)
    return {"task": task, "status": "ok", "config": {"steps": 20, "eval_every": 10, "seed": seed}, "curve": curve,
            "timing": {}}


def drawn(monkeypatch, groups):
    """The loss panel of `plots.curves` for one config: its y label and its lines by label."""
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    plots.curves({"cfg": groups}, "title", None)
    loss_ax = figures[0].axes[0]
    drawn = loss_ax.get_ylabel(), {line.get_label(): line.get_ydata() for line in loss_ax.get_lines()}
    plots.plt.close(figures[0])
    return drawn


def test_the_loss_panel_plots_the_interval_mean_and_says_so(monkeypatch):
    records = [record("adder", 0, [1.0, 0.2], means=[2.0, 0.6]), record("adder", 1, [3.0, 0.4], means=[4.0, 0.8])]
    label, lines = drawn(monkeypatch, {"jax": Group("cfg", {}, "jax", records)})
    assert label == "training loss (mean since last eval)"
    np.testing.assert_allclose(lines["jax"], [3.0, 0.7])  # the mean over seeds of the interval means


def test_old_records_without_the_mean_plot_the_batch_loss_and_say_so(monkeypatch):
    records = [record("adder", 0, [1.0, 0.2], means=[2.0, 0.6]), record("adder", 1, [3.0, 0.4])]  # one old
    label, lines = drawn(monkeypatch, {"jax": Group("cfg", {}, "jax", records)})
    assert label == "training loss (the eval step's batch)"
    np.testing.assert_allclose(lines["jax"], [2.0, 0.3])


def test_a_sentiment_panel_adds_the_test_loss(monkeypatch):
    groups = {b: Group("cfg", {}, b, [record("sentiment", 0, [1.0, 0.2], means=[0.9, 0.5], tests=[0.8, 0.7])])
              for b in ("jax", "torch")}
    label, lines = drawn(monkeypatch, groups)
    assert label == "training loss (mean since last eval)\nand test loss (dots)"
    assert sorted(lines) == ["jax", "jax test", "torch", "torch test"]
    np.testing.assert_allclose(lines["torch"], [0.9, 0.5])
    np.testing.assert_allclose(lines["torch test"], [0.8, 0.7])



def test_compile_times_are_drawn_by_kind_and_never_below_zero(monkeypatch, tmp_path):
    # One cold compile among cache hits: a mean ± t-interval drew 0.29 ± 1.24 s.
    def timed(seed, seconds, cache):
        return {**record("adder", seed, [1.0, 0.5]),
                "timing": {"compile_s": seconds, "compile_cache": cache, "run_steps_per_s": 100.0, "contention": 0}}

    jax = Group("cfg", {}, "jax", [timed(0, 1.2, "compiled"), timed(1, 0.02, "memory"), timed(2, 0.03, "hit")])
    torch = Group("cfg", {}, "torch", [{**timed(k, None, None)} for k in range(3)])
    assert plots.compile_spans(jax) == {"compiled": (1.2, 1.2, 1.2, 1), "from cache": (0.025, 0.02, 0.03, 2)}
    assert plots.compile_text(jax) == "1.20 compiled, 0.03 from cache (x2)" and plots.compile_text(torch) == "–"
    assert plots.compile_spans(torch) == {}  # eager: nothing compiled
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig))
    plots.timing({"cfg": {"jax": jax, "torch": torch}}, "title", tmp_path / "t.png")
    compile_ax = figures[0].axes[1]
    heights = sorted(round(bar.get_height(), 3) for bar in compile_ax.patches)
    assert heights == [0.025, 1.2]
    lows = [line.get_ydata().min() for line in compile_ax.lines if len(line.get_ydata())]
    assert min(lows) >= 0.02  # the whiskers span the runs' own times, nothing below them
    plots.plt.close(figures[0])
