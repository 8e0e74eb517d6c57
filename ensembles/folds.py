"""The folds of a cross-fit on validation rows, stratified wherever one class can fill them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold


def folds_used(k: int, rows: int) -> int:
    """The folds a cross-fit of ``rows`` rows takes when asked for ``k``: at least 2, and at
    most one a row (leave-one-out)."""
    return max(2, min(k, rows))


def cross_fit_folds(
    y: np.ndarray, classification: bool, k: int, seed: int | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(fitted, held-out) row indices of ``k`` shuffled folds. Classes are stratified even
    when a rare one has fewer rows than folds (its rows then go to as many folds as they can):
    unstratified folds could leave a fitting set without a class it holds out several times."""
    k = folds_used(k, len(y))
    if classification and np.bincount(y).max() >= k:
        with warnings.catch_warnings():  # "the least populated class has only n members"
            warnings.simplefilter("ignore", UserWarning)
            folds = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y))
        yield from folds
        return
    yield from KFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)))
