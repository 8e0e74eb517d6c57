"""The pictures logged to MLflow are real images, for classification and regression."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from ensembles import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _image(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01  # not a blank canvas
    return pixels


def test_learning_curves_plot_train_and_validation_per_metric(tmp_path):
    history = {
        "loss": [1.0, 0.6, 0.4],
        "val_loss": [1.1, 0.7, 0.6],
        "accuracy": [0.5, 0.7, 0.8],
        "val_accuracy": [0.45, 0.65, 0.7],
        "learning_rate": [0.001] * 3,
    }
    one = _image(plots.learning_curves({"loss": [1.0, 0.5]}, tmp_path / "one.png", "m"))
    two = _image(plots.learning_curves(history, tmp_path / "lc.png", "mlp"))
    assert two.shape[1] > 1.5 * one.shape[1]  # a panel for loss and one for accuracy


def test_learning_curves_refuse_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="no per-epoch metrics"):
        plots.learning_curves({"lr": [0.1]}, tmp_path / "x.png", "m")


def test_confusion_matrix_for_classification(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    proba = rng.dirichlet(np.ones(4), 200)
    proba[np.arange(100), y[:100]] += 2.0  # half of them right
    _image(plots.confusion_matrix(y, proba, tmp_path / "cm.png", "ensemble"))


def test_predicted_vs_true_and_residuals_for_regression(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    _image(plots.predicted_vs_true(y, y + rng.normal(0, 0.3, 300), tmp_path / "r.png", "ens"))


def test_weights_and_heatmap(tmp_path):
    _image(plots.weights_bar({"a": 0.2, "b": 0.8}, tmp_path / "w.png"))
    _image(plots.heatmap(np.array([[1.0, 0.3], [0.3, 1.0]]), ["a", "b"], tmp_path / "h.png", "t"))


def test_pictures_of_many_members_stay_bounded(tmp_path):
    names = [f"member_{i}" for i in range(200)]
    heat = _image(plots.heatmap(np.eye(200), names, tmp_path / "h.png", "200 members"))
    bars = _image(plots.weights_bar(dict.fromkeys(names, 1 / 200), tmp_path / "w.png"))
    limit = plots.MAX_INCHES * 100  # dpi
    assert max(heat.shape[:2]) <= limit and max(bars.shape[:2]) <= limit


def test_weight_bars_show_the_largest_weights_only(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = []
    real_bar = matplotlib.axes.Axes.bar
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "bar",
        lambda self, x, h, **kw: drawn.append((list(x), list(h))) or real_bar(self, x, h, **kw),
    )
    weights = {f"m{i}": 0.0 for i in range(1000)}
    weights.update({f"m{i}": (i + 1) / 5050 for i in range(0, 200, 2)})  # 100 with weight
    _image(plots.weights_bar(weights, tmp_path / "w.png"))
    (names, heights) = drawn[0]
    assert len(names) == plots.MOST_BARS and min(heights) > 0
    assert names == [f"m{i}" for i in range(200 - 2 * plots.MOST_BARS, 200, 2)]  # largest
