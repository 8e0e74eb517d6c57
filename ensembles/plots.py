"""Pictures for MLflow runs (headless matplotlib): learning curves, ensemble weights,
diversity heatmap, confusion matrix, predicted-vs-true and residuals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# Figures grow with the members (or classes) shown, up to this many inches a side: at 100 dpi
# the canvas stays under ~1.5 MB however large the ensemble.
MAX_INCHES = 12.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def warm() -> None:
    """Import pyplot now (about half a second), before the first picture needs it."""
    _pyplot()


def _save(plt, fig, path: str | Path) -> Path:
    """Lay out, write as PNG and free the figure (pyplot keeps every open one alive)."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


MOST_BARS = 40  # a search of thousands: the bars of the largest weights, the rest counted


def weights_bar(weights: Mapping[str, float], path: str | Path, title: str = "") -> Path:
    """Bar chart of the members' weights in the ensemble: those with weight, at most
    ``MOST_BARS`` of the largest, in member order; the title counts the rest."""
    plt = _pyplot()
    names = [n for n in weights if weights[n] > 0] or list(weights)
    if len(names) > MOST_BARS:
        largest = set(sorted(names, key=lambda n: -weights[n])[:MOST_BARS])
        names = [n for n in names if n in largest]
    title = title or "ensemble weights"
    if len(names) < len(weights):
        title += f" ({len(names)} largest of {len(weights)} members)"
    fig, ax = plt.subplots(figsize=(min(MAX_INCHES, max(4.0, 0.6 * len(names) + 2)), 3.2))
    ax.bar(names, [weights[n] for n in names], color="#3b75af")
    ax.set_ylabel("weight")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
    return _save(plt, fig, path)


def heatmap(matrix: np.ndarray, names: Sequence[str], path: str | Path, title: str) -> Path:
    """Annotated heatmap of a members x members matrix (e.g. error correlation)."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    size = min(MAX_INCHES, max(3.5, 0.7 * len(names) + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, matrix.min()), vmax=1.0)
    labels = 8 if len(names) <= 30 else 5
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=labels)
    ax.set_yticks(range(len(names)), names, fontsize=labels)
    if len(names) <= 15:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if matrix[i, j] < 0.6 else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title)
    return _save(plt, fig, path)


def learning_curves(history: Mapping[str, Sequence[float]], path: str | Path, title: str) -> Path:
    """Train and validation curves per epoch: loss on the left, each other metric beside it
    (Keras history keys: ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``, ...)."""
    plt = _pyplot()
    bases = [k for k in history if not k.startswith("val_") and k not in ("lr", "learning_rate")]
    bases = [k for k in bases if k != "phase" and len(history[k]) > 0]
    bases.sort(key=lambda k: (k != "loss", k))
    if not bases:
        raise ValueError(f"no per-epoch metrics to plot; history keys: {sorted(history)}")
    fig, axes = plt.subplots(
        1, len(bases), figsize=(min(MAX_INCHES, 4.2 * len(bases)), 3.2), squeeze=False
    )
    for ax, key in zip(axes[0], bases, strict=True):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker="o", ms=3, label="train")
        if len(history.get(f"val_{key}", [])) == len(epochs):
            ax.plot(epochs, history[f"val_{key}"], marker="o", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(plt, fig, path)


def confusion_matrix(y_true: np.ndarray, proba: np.ndarray, path: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix of class probabilities against the true labels."""
    from sklearn.metrics import confusion_matrix as counts

    plt = _pyplot()
    n = proba.shape[1]
    matrix = counts(np.asarray(y_true).astype(int), proba.argmax(axis=1), labels=range(n))
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(MAX_INCHES, max(3.5, 0.45 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black",
                    )
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title(title)
    return _save(plt, fig, path)


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, path: str | Path, title: str) -> Path:
    """Regression: predictions against targets (with the identity line), and the residuals
    against the predictions."""
    plt = _pyplot()
    y_true, y_pred = np.ravel(y_true).astype(float), np.ravel(y_pred).astype(float)
    residual = y_true - y_pred
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    left.scatter(y_true, y_pred, s=6, alpha=0.4)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    left.plot([low, high], [low, high], color="black", lw=1)
    left.set_xlabel("true")
    left.set_ylabel("predicted")
    left.set_title("predicted vs true")
    right.scatter(y_pred, residual, s=6, alpha=0.4)
    right.axhline(0.0, color="black", lw=1)
    right.set_xlabel("predicted")
    right.set_ylabel("residual (true - predicted)")
    right.set_title(f"residuals (RMSE {np.sqrt(np.mean(residual**2)):.4f})")
    fig.suptitle(title)
    return _save(plt, fig, path)


def reliability_diagram(
    y_true: np.ndarray, probas: Mapping[str, np.ndarray], path: str | Path, title: str
) -> Path:
    """Accuracy against confidence of the top class per bin, one line per set of
    probabilities (perfect calibration lies on the diagonal), with the rows per bin below."""
    from ensembles.calibration import expected_calibration_error, reliability

    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.0, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="perfect")
    for name, proba in probas.items():
        bins = reliability(np.asarray(y_true), np.asarray(proba))
        used = bins["count"] > 0
        ece = expected_calibration_error(np.asarray(y_true), np.asarray(proba))
        top.plot(
            bins["confidence"][used],
            bins["accuracy"][used],
            marker="o",
            label=f"{name} (ECE {ece:.4f})",
        )
        width = np.diff(bins["edges"])
        bottom.bar(
            bins["edges"][:-1], bins["count"], width=width, align="edge", alpha=0.5, label=name
        )
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.legend(fontsize=8, loc="upper left")
    top.set_title(title)
    bottom.set_xlabel("confidence of the top class")
    bottom.set_ylabel("rows")
    return _save(plt, fig, path)


def coverage_plot(
    curve: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str,
    served: tuple[float, float] | None = None,
) -> Path:
    """Empirical test coverage of the conformal intervals or sets against the target level
    each was calibrated for (the guarantee holds on and above the diagonal); ``served``:
    (target, test coverage) of a served model other than the curve's, marked apart."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 4.4))
    ax.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="target")
    ax.plot(curve["target"], curve["test"], marker="o", ms=3, label="test coverage")
    lowest = min(min(curve["target"]), min(curve["test"]))
    if served is not None:
        ax.plot(*served, marker="*", ms=11, ls="", color="tab:red", label="served (refits)")
        lowest = min(lowest, served[1])
    low = lowest - 0.05  # every point on the plot
    ax.set_xlim(low, 1)
    ax.set_ylim(low, 1.005)
    ax.set_xlabel("target coverage (calibrated on validation)")
    ax.set_ylabel("coverage on test")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, path)


def pareto_front(costs: Sequence[float], losses: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both cost and loss, cheapest first."""
    order = np.lexsort((np.asarray(losses), np.asarray(costs)))
    front, best = [], np.inf
    for i in order:
        if losses[i] < best:
            front.append(int(i))
            best = losses[i]
    return front


def pareto_plot(budget: Mapping, path: str | Path, title: str) -> Path:
    """Validation loss against serving cost of every candidate ensemble a budgeted selection
    weighed, its Pareto front, the chosen ensemble, the same method on all members, and the
    budget's limit."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    cands = budget["candidates"]
    costs = [c["cost"] for c in cands]
    losses = [c["val_loss"] for c in cands]
    ax.scatter(costs, losses, s=10, color="0.7", label="candidates weighed")
    front = pareto_front(costs, losses)
    ax.plot(
        [costs[i] for i in front],
        [losses[i] for i in front],
        color="tab:blue",
        marker="o",
        ms=3,
        lw=1,
        label="Pareto front",
    )
    full, n = budget["all_members"], len(budget["members"])
    ax.scatter(
        [full["cost"]],
        [full["val_loss"]],
        marker="s",
        s=40,
        color="tab:orange",
        label=f"no budget ({full['members']} members with weight)",
        zorder=3,
    )
    ax.scatter(
        [budget["cost"]],
        [budget["val_loss"]],
        marker="*",
        s=160,
        color="tab:red",
        label=f"chosen ({n} member{'s' if n > 1 else ''})",
        zorder=4,
    )
    if budget.get("max_latency_ms") is not None and budget["cost_unit"] != "members":
        ax.axvline(budget["max_latency_ms"], color="black", ls="--", lw=1, label="budget")
    ax.set_xlabel(f"prediction cost ({budget['cost_unit']})")
    ax.set_ylabel(f"validation {budget['loss']}")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(plt, fig, path)
