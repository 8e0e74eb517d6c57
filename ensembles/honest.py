"""Honest estimates: a cross-fitted validation score of the ensemble and of the best single
member, and a bootstrap confidence interval of the ensemble's test gain over that member."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ensembles import make
from ensembles.folds import cross_fit_folds, folds_used
from ensembles.metrics import EPS, check_metric, evaluate, greater_is_better
from ensembles.validation import check_predictions

MIN_BOOT = 10  # the fewest bootstrap resamples whose 2.5% and 97.5% quantiles mean anything


def best_member(P: np.ndarray, y: np.ndarray, metric: str) -> int:
    """Index of the member with the best ``metric`` on (P, y); a tie (three members right on
    the same rows) goes to the better log loss or RMSE, then to the lower index, so that the
    member order a tool happens to list them in does not pick the baseline."""
    sign = -1.0 if greater_is_better(metric) else 1.0
    keys = []
    for i, p in enumerate(P):
        scores = evaluate(y, p)
        loss = scores["log_loss"] if "log_loss" in scores else scores["rmse"]
        keys.append((sign * scores[metric], loss, i))
    return min(keys)[2]


def cross_fitted_predictions(
    method: str,
    params: Mapping[str, Any],
    P: np.ndarray,
    y: np.ndarray,
    metric: str,
    k: int = 5,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(ensemble, best member) predictions on every row, each from a fit on the other folds:
    the ensemble fitted on k-1 folds of validation predicts the held-out fold, and the best
    single member is chosen on the same k-1 folds."""
    P, y = check_predictions(P, y)
    classification = P.ndim == 3
    check_metric(metric, classification)
    ens_oof = np.zeros(P.shape[1:])
    best_oof = np.zeros(P.shape[1:])
    for train, held in cross_fit_folds(y, classification, k, random_state):
        est = make(method, **{"random_state": random_state, **params}).fit(P[:, train], y[train])
        ens_oof[held] = est.predict(P[:, held])
        best_oof[held] = P[best_member(P[:, train], y[train], metric), held]
    return ens_oof, best_oof


def cross_fitted_loss(
    method: str,
    params: Mapping[str, Any],
    P: np.ndarray,
    y: np.ndarray,
    k: int = 5,
    random_state: int | None = 0,
) -> float:
    """The loss the methods minimise (log loss, or squared error) of ``method``'s
    cross-fitted predictions of every row; a single member's own loss."""
    from ensembles.budget import validation_loss

    P, y = check_predictions(P, y)
    if P.shape[0] == 1:
        return validation_loss(P[0], y)
    metric = "log_loss" if P.ndim == 3 else "rmse"
    ens_oof, _ = cross_fitted_predictions(method, params, P, y, metric, k, random_state)
    return validation_loss(ens_oof, y)


def score_cross_fitted(
    y: np.ndarray, ens_oof: np.ndarray, best_oof: np.ndarray, metric: str, k: int
) -> dict[str, Any]:
    """The cross-fitted scores of the ensemble and the best member, and the gain."""
    ens, best = evaluate(y, ens_oof), evaluate(y, best_oof)
    sign = 1.0 if greater_is_better(metric) else -1.0
    return {
        "folds": folds_used(k, len(y)),
        "ensemble": ens,
        "best_member": best,
        "gain": sign * (ens[metric] - best[metric]),
    }


def cross_fitted(
    method: str,
    params: Mapping[str, Any],
    P: np.ndarray,
    y: np.ndarray,
    metric: str,
    k: int = 5,
    random_state: int | None = 0,
) -> dict[str, Any]:
    """Fit on k-1 folds of validation, predict the held-out fold; score the stitched result.

    The best single member is chosen the same way (on the k-1 folds), so the two scores are
    comparable and neither has seen the rows it is scored on.
    """
    ens_oof, best_oof = cross_fitted_predictions(method, params, P, y, metric, k, random_state)
    return score_cross_fitted(y, ens_oof, best_oof, metric, k)


# metrics that are a mean over rows: each row's contribution
_PER_ROW = {
    "accuracy": lambda y, p: (np.argmax(p, 1) == y).astype(float),
    "log_loss": lambda y, p: -np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0)),
    "mae": lambda y, p: np.abs(np.asarray(p, dtype=np.float64) - y),
}


def bootstrap_gain(
    y: np.ndarray,
    ensemble_pred: np.ndarray,
    member_pred: np.ndarray,
    metric: str,
    n_boot: int = 1000,
    level: float = 0.95,
    random_state: int | None = 0,
) -> dict[str, float]:
    """Gain of the ensemble over one member on test (positive = ensemble better), with a
    percentile bootstrap interval over test rows."""
    both, y = check_predictions([ensemble_pred, member_pred], y)
    ensemble_pred, member_pred = both
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < MIN_BOOT:
        raise ValueError(
            f"n_boot must be a whole number >= {MIN_BOOT} (fewer resamples give no interval "
            f"worth reporting), got {n_boot!r}"
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if metric in ("rmse", *_PER_ROW):
        check_metric(metric, both.ndim == 3)
    if metric == "rmse":
        se_e, se_m = (ensemble_pred - y) ** 2, (member_pred - y) ** 2
        estimate = float(np.sqrt(se_m.mean()) - np.sqrt(se_e.mean()))
    elif metric in _PER_ROW:
        per_row = _PER_ROW[metric](y, ensemble_pred) - _PER_ROW[metric](y, member_pred)
        per_row = per_row if greater_is_better(metric) else -per_row
        estimate = float(per_row.mean())
    else:
        known = ", ".join(["rmse", *_PER_ROW])
        raise ValueError(f"metric must be one of {known}, got {metric!r}")
    rng = np.random.default_rng(random_state)
    n = len(y)
    gains = np.empty(n_boot)
    for start in range(0, n_boot, 100):
        stop = min(start + 100, n_boot)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=stop - start) / n  # resampling weights
        if metric == "rmse":
            gains[start:stop] = np.sqrt(w @ se_m) - np.sqrt(w @ se_e)
        else:
            gains[start:stop] = w @ per_row
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    return {
        "estimate": estimate,
        "ci_low": float(low),
        "ci_high": float(high),
        "level": level,
        "n_boot": n_boot,
    }
