"""Calibration of class probabilities: temperature scaling (Guo et al. 2017) fitted on
held-out predictions, and the scores that show whether it helped: log loss, Brier score and
expected calibration error, with the bins of a reliability diagram.

Temperature scaling divides the log-probabilities by one number ``T`` before renormalising:
``T > 1`` softens over-confident predictions, ``T < 1`` sharpens timid ones. It never changes
which class is most probable, so accuracy stays as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator

from ensembles.metrics import EPS, log_loss
from ensembles.validation import check_predictions

LOG_T_BOUNDS = (-4.0, 4.0)  # temperatures from about 0.018 to 55
# Held-out rows with fewer misclassified ones than this say nothing about over-confidence:
# with none at all, the log loss falls without end as the temperature goes to 0.
MIN_ERRORS = 10


def scale(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``proba`` (n, classes) with its log-probabilities divided by ``temperature``."""
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def too_few_errors(proba: np.ndarray, y: np.ndarray) -> str | None:
    """Why ``proba`` cannot fit a temperature (too few misclassified rows), or None."""
    errors = int(np.sum(np.argmax(proba, axis=1) != y))
    if errors >= MIN_ERRORS:
        return None
    return (
        f"only {errors} of {len(y)} held-out rows are misclassified, fewer than the "
        f"{MIN_ERRORS} a temperature needs"
    )


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the log loss of ``proba`` on labels ``y`` (bounded search
    over log T, so the result is always a finite positive number)."""
    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if proba.ndim != 2 or y.ndim != 1 or proba.shape[0] != len(y) or len(y) == 0:
        raise ValueError(
            f"temperature scaling needs (rows, classes) probabilities and one label per row, "
            f"got {proba.shape} and {y.shape}"
        )
    P, y = check_predictions(proba[None], y)  # probabilities (not logits), class ids
    proba = P[0]
    result = minimize_scalar(
        lambda log_t: log_loss(y, scale(proba, float(np.exp(log_t)))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def brier_score(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean over rows of the squared distance between the probabilities and the one-hot label
    (0 is perfect, 2 the worst)."""
    onehot = np.zeros_like(proba, dtype=np.float64)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def reliability(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Rows binned by the confidence of their top class (equal-width bins on [0, 1]): each
    bin's mean confidence, accuracy and row count (empty bins have count 0)."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    safe = np.where(count > 0, count, 1.0)
    return {
        "edges": edges,
        "confidence": np.bincount(which, confidence, n_bins) / safe,
        "accuracy": np.bincount(which, correct, n_bins) / safe,
        "count": count,
    }


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """The row-weighted mean gap between confidence and accuracy over the reliability bins."""
    bins = reliability(y, proba, n_bins)
    gap = np.abs(bins["accuracy"] - bins["confidence"])
    return float(np.sum(gap * bins["count"]) / max(len(y), 1))


def calibration_scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Log loss, Brier score and expected calibration error of ``proba`` on ``y``."""
    return {
        "log_loss": log_loss(y, proba),
        "brier": brier_score(y, proba),
        "ece": expected_calibration_error(y, proba),
    }


class CalibratedEnsemble(BaseEstimator):
    """A fitted ensemble of class probabilities followed by temperature scaling: what is
    exported and served. ``weights_`` are the inner ensemble's."""

    def __init__(self, ensemble: Any = None, temperature: float = 1.0) -> None:
        self.ensemble = ensemble
        self.temperature = temperature

    @property
    def weights_(self) -> np.ndarray:
        """The inner ensemble's weights over members."""
        return self.ensemble.weights_

    @property
    def averages(self) -> bool:
        """Whether the inner ensemble is a weighted average of its members."""
        return bool(getattr(self.ensemble, "averages", False))

    def used_members(self) -> np.ndarray:
        """Indices of the members whose predictions the inner ensemble reads."""
        return self.ensemble.used_members()

    def predict(self, P: np.ndarray) -> np.ndarray:
        """The inner ensemble's probabilities, temperature-scaled."""
        return scale(self.ensemble.predict(P), self.temperature)
