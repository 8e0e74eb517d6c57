"""Fit an ensemble on members' validation predictions, then score it once on test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ensembles import make
from ensembles.metrics import evaluate


@dataclass
class EnsembleResult:
    """A fitted ensemble's weights by member and its validation and test scores."""

    method: str
    params: dict[str, Any]
    weights: dict[str, float]
    val_scores: dict[str, float]
    test_scores: dict[str, float]
    val_pred: np.ndarray = field(repr=False)
    test_pred: np.ndarray = field(repr=False)


def fit_and_score(
    method: str,
    params: Mapping[str, Any],
    names: Sequence[str],
    P_val: np.ndarray,
    y_val: np.ndarray,
    P_test: np.ndarray,
    y_test: np.ndarray,
    random_state: int | None = None,
) -> EnsembleResult:
    """Learn weights on validation predictions only; test is touched once, to report."""
    if len(names) != len(P_val) or len(names) != len(P_test):
        raise ValueError(
            f"got {len(names)} names for {len(P_val)} val and {len(P_test)} test predictions"
        )
    estimator = make(method, random_state=random_state, **params).fit(P_val, y_val)
    val_pred, test_pred = estimator.predict(P_val), estimator.predict(P_test)
    return EnsembleResult(
        method=method,
        params=dict(params),
        weights={n: float(w) for n, w in zip(names, estimator.weights_, strict=True)},
        val_scores=evaluate(y_val, val_pred),
        test_scores=evaluate(y_test, test_pred),
        val_pred=val_pred,
        test_pred=test_pred,
    )
