"""Scores for combined predictions: accuracy and log loss for classes, RMSE and MAE for values."""

from __future__ import annotations

import numpy as np

EPS = 1e-15


def is_classification(pred: np.ndarray) -> bool:
    """Class probabilities are (n, classes); regression values are (n,)."""
    return np.ndim(pred) == 2


# metric -> the task it scores
METRICS = {
    "accuracy": "classification",
    "log_loss": "classification",
    "rmse": "regression",
    "mae": "regression",
}


def check_metric(metric: str, classification: bool) -> str:
    """``metric`` if it scores this task, else ValueError naming what is allowed."""
    task = "classification" if classification else "regression"
    allowed = [m for m, t in METRICS.items() if t == task]
    if metric not in METRICS:
        raise ValueError(
            f"unknown metric {metric!r}; known for {task}: {', '.join(allowed)} (for "
            f"{'regression' if classification else 'classification'}: "
            f"{', '.join(m for m in METRICS if m not in allowed)})"
        )
    if metric not in allowed:
        raise ValueError(f"metric {metric!r} does not score {task}; allowed: {', '.join(allowed)}")
    return metric


def headline_metric(classification: bool, chosen: str | None = None) -> str:
    """The metric the leaderboard ranks by: ``chosen`` (checked against the task), or
    accuracy for classes and RMSE for values."""
    if chosen is not None:
        return check_metric(chosen, classification)
    return "accuracy" if classification else "rmse"


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better."""
    return metric in ("accuracy",)


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    picked = np.asarray(proba[np.arange(len(y)), y], dtype=np.float64)
    return float(-np.mean(np.log(np.clip(picked, EPS, 1.0))))


def evaluate(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """All metrics for the task that the shape of ``pred`` implies."""
    y, pred = np.asarray(y), np.asarray(pred)
    if pred.ndim == 2 and pred.shape[1] == 1:  # a Keras regressor's column of values
        pred = pred[:, 0]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(pred):  # (n,) against (n, 1) broadcast to (n, n)
        raise ValueError(
            f"targets must be shaped ({len(pred)},) to match {pred.shape} predictions, got "
            f"{y.shape}"
        )
    if is_classification(pred):
        return {
            "accuracy": float(np.mean(np.argmax(pred, axis=1) == y)),
            "log_loss": log_loss(y, pred),
        }
    err = np.asarray(pred, dtype=np.float64) - y
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}
