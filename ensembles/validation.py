"""Input checks shared by every ensemble method: shapes, finiteness, labels."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

# how far a probability row's sum may stray from 1 (float32 softmax rows stray about 1e-7)
SUM_TOLERANCE = 1e-3


def is_number(value: Any) -> bool:
    """A finite real number (numpy's included), not a bool."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_predictions(P: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``P`` as float64 ``(members, n[, classes])`` and ``y``, or raise ValueError.
    Regression predictions shaped (members, n, 1), as Keras regressors give them, are
    taken as (members, n)."""
    if isinstance(P, (list, tuple)):
        # a Keras regressor's (rows, 1) beside others' (rows,): the same predictions
        P = [p[:, 0] if np.ndim(p) == 2 and np.shape(p)[1] == 1 else p for p in map(np.asarray, P)]
        shapes = [p.shape for p in P]
        if len(set(shapes)) > 1:
            said = ", ".join(f"member {i} {shape}" for i, shape in enumerate(shapes))
            raise ValueError(
                f"every member's predictions must have the same shape (rows[, classes]), got {said}"
            )
    P = np.asarray(P, dtype=np.float64)
    if P.ndim == 3 and P.shape[2] == 1:
        P = P[:, :, 0]
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
    if P.ndim == 3:
        _check_probabilities(P)
    if y is None:
        return P, np.empty(0)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (P.shape[1],):
        raise ValueError(f"y must be shaped ({P.shape[1]},) to match predictions, got {y.shape}")
    if P.ndim == 3 and not np.issubdtype(y.dtype, np.integer):
        example = _plain(y[0]) if len(y) else None
        raise ValueError(
            f"classification labels must be integer class ids in [0, {P.shape[2]}), got "
            f"{y.dtype} values such as {example!r}"
        )
    if P.ndim == 3 and (y.min() < 0 or y.max() >= P.shape[2]):
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


def _check_probabilities(P: np.ndarray) -> None:
    """Each member's rows must be probabilities: in [0, 1], summing to 1 (not logits)."""
    sums = P.sum(axis=2)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    negative = (P < -SUM_TOLERANCE).any(axis=2)
    if off.any() or negative.any():
        member, row = (int(v) for v in np.argwhere(off | negative)[0])
        raise ValueError(
            "classification predictions must be probabilities (rows in [0, 1] summing to 1; "
            f"apply a softmax to logits): member {member}'s row {row} sums to "
            f"{sums[member, row]:.4g}, smallest value {P[member, row].min():.4g}"
        )


def check_fitted(estimator: object, P: np.ndarray) -> np.ndarray:
    """``P`` checked for a fitted estimator with ``weights_`` over its members: RuntimeError
    before ``fit``, ValueError for predictions of another number of members."""
    weights = getattr(estimator, "weights_", None)
    if weights is None:
        raise RuntimeError(f"{type(estimator).__name__} is not fitted; call fit(P, y) first")
    P, _ = check_predictions(P)
    if P.shape[0] != len(weights):
        raise ValueError(f"fitted on {len(weights)} members, got predictions of {P.shape[0]}")
    fitted = getattr(estimator, "pred_shape_", None)  # absent from ensembles saved before it
    if fitted is not None and tuple(P.shape[2:]) != tuple(fitted):
        raise ValueError(
            f"fitted on {_predicting(fitted)}, got predictions of {_predicting(P.shape[2:])}"
        )
    return P


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; a string or other object as it is."""
    return value.item() if isinstance(value, np.generic) else value


def _predicting(shape: tuple[int, ...]) -> str:
    """What members' predictions of one row are, in words: values or K-class probabilities."""
    return f"{shape[0]}-class probabilities" if shape else "regression values"
