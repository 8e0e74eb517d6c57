"""How members differ: pairwise error correlation and disagreement, and what each member
adds to the ensemble (leave-one-out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensembles import make
from ensembles.metrics import evaluate, greater_is_better


def residuals(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(members, n) errors: 1 - p(true class) for classes, prediction - y for values."""
    if P.ndim == 3:
        return 1.0 - P[:, np.arange(P.shape[1]), y]
    return P - y


def error_correlation(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of the members' errors; low values mean complementary members."""
    r = residuals(P, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(r) if len(r) > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    return corr


def disagreement(P: np.ndarray) -> np.ndarray | None:
    """Share of rows where two members predict different classes (None for regression)."""
    if P.ndim != 3:
        return None
    labels = P.argmax(axis=2)
    return (labels[:, None, :] != labels[None, :, :]).mean(axis=2)


def leave_one_out(
    method: str,
    params: Mapping[str, Any],
    names: Sequence[str],
    P_val: np.ndarray,
    y_val: np.ndarray,
    P_test: np.ndarray,
    y_test: np.ndarray,
    metric: str,
    random_state: int | None = 0,
) -> dict[str, dict[str, float]]:
    """Per member: how much the ensemble's score drops (val, test) when it is refitted without
    that member. Positive = the member helps."""
    sign = 1.0 if greater_is_better(metric) else -1.0

    def scores(keep: np.ndarray) -> tuple[float, float]:
        est = make(method, random_state=random_state, **params).fit(P_val[keep], y_val)
        return (
            evaluate(y_val, est.predict(P_val[keep]))[metric],
            evaluate(y_test, est.predict(P_test[keep]))[metric],
        )

    everyone = np.arange(len(names))
    full_val, full_test = scores(everyone)
    out = {}
    for i, name in enumerate(names):
        val, test = scores(everyone[everyone != i])
        out[name] = {"val": sign * (full_val - val), "test": sign * (full_test - test)}
    return out
