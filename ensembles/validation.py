"""Input checks shared by every ensemble method: shapes, finiteness, labels."""

from __future__ import annotations

import numpy as np


def check_predictions(P: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``P`` as float64 ``(members, n[, classes])`` and ``y``, or raise ValueError."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim not in (2, 3):
        raise ValueError(
            "predictions must be shaped (members, rows) or (members, rows, classes), "
            f"got shape {P.shape}"
        )
    if P.shape[0] < 1 or P.shape[1] < 1:
        raise ValueError(f"predictions need at least one member and one row, got shape {P.shape}")
    if not np.all(np.isfinite(P)):
        bad = sorted({int(m) for m in np.argwhere(~np.isfinite(P))[:, 0]})
        raise ValueError(f"predictions of members {bad} contain NaN or infinite values")
    if y is None:
        return P, np.empty(0)
    y = np.asarray(y)
    if y.shape != (P.shape[1],):
        raise ValueError(f"y must be shaped ({P.shape[1]},) to match predictions, got {y.shape}")
    if P.ndim == 3 and (
        not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= P.shape[2]
    ):
        raise ValueError(
            f"classification labels must be integers in [0, {P.shape[2]}), "
            f"got {y.dtype} in [{y.min()}, {y.max()}]"
        )
    if P.ndim == 2 and (y.dtype.kind not in "biuf" or not np.all(np.isfinite(y))):
        bad = int(np.sum(~np.isfinite(y))) if y.dtype.kind in "biuf" else len(y)
        raise ValueError(
            f"regression targets must be finite numbers, got {y.dtype} with {bad} bad values"
        )
    return P, y


def check_fitted(estimator: object, P: np.ndarray) -> np.ndarray:
    """``P`` checked for a fitted estimator with ``weights_`` over its members: RuntimeError
    before ``fit``, ValueError for predictions of another number of members."""
    weights = getattr(estimator, "weights_", None)
    if weights is None:
        raise RuntimeError(f"{type(estimator).__name__} is not fitted; call fit(P, y) first")
    P, _ = check_predictions(P)
    if P.shape[0] != len(weights):
        raise ValueError(f"fitted on {len(weights)} members, got predictions of {P.shape[0]}")
    return P
