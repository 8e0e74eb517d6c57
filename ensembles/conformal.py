"""Split-conformal uncertainty for an ensemble: intervals for regression, prediction sets for
classification, with a coverage guarantee on rows exchangeable with the calibration rows.

Calibration takes held-out predictions (the ensemble's cross-fitted validation predictions:
no weight was fitted on the row it predicts) and their targets; nothing here sees test rows.

- Regression: the score of a row is its absolute error divided by the members' spread there
  (the weighted standard deviation of their predictions) plus a floor, so intervals widen
  where the members disagree (normalised conformal regression, Papadopoulos et al. 2008).
- Classification: adaptive prediction sets (Romano, Sesia and Candès 2020), randomised: a
  row's score for a class is the probability mass of the classes ranked above it plus a
  share u of its own probability; a set holds the classes, most probable first, whose score
  stays within the calibrated quantile. Without the share u a confident model's scores all
  sit near its top probability and the sets fill up with unlikely classes; with it they hit
  the target. Here u is a pseudo-random number in [0, 1) computed from the row's
  probabilities, so a served row always gets the same set.

With n calibration rows and target coverage 1 - a, the quantile is the ceil((n + 1)(1 - a))-th
smallest score, so a new exchangeable row is covered with probability at least 1 - a (and
below 1 - a + 1 / (n + 1) when scores do not tie).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ensembles.validation import is_number


def check_coverage(value: Any) -> float | None:
    """``coverage``: null (off) or a number strictly between 0 and 1."""
    if value is None:
        return None
    if not is_number(value) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"coverage must be null or a number in (0, 1), got {value!r}")
    return float(value)


def least_calibration_rows(coverage: float) -> int:
    """The fewest calibration rows whose quantile at ``coverage`` is finite: below them the
    guarantee makes intervals infinite and prediction sets hold every class."""
    n = max(1, math.floor(coverage / (1.0 - coverage)) - 1)
    while math.ceil((n + 1) * coverage) > n:  # as _quantile ranks
        n += 1
    return n


def check_calibration_rows(coverage: float | None, n: int, where: str = "coverage") -> None:
    """ValueError in one line when ``n`` calibration rows cannot give ``coverage`` finite
    intervals or sets smaller than every class."""
    if coverage is None or n >= (least := least_calibration_rows(coverage)):
        return
    raise ValueError(
        f"{where}={coverage:g} needs at least {least} calibration rows for finite intervals "
        f"(or prediction sets short of every class); the validation rows are {n}: lower the "
        "coverage, or give validation more rows"
    )


def spread(P: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row, the weighted standard deviation of the members' regression predictions
    ``P`` (members, rows) around their weighted mean (|weights| normalised).

    Bagged members' predictions may come per fold, ``P`` (folds, members, rows): the spread is
    then the root mean square over folds of each fold's models' spread. Their out-of-fold
    predictions, which calibrate the quantile, each come from one fold's models; the mean of
    K folds' models disagrees less (about 10% on California housing), which would narrow the
    intervals and cover too few rows."""
    w = np.abs(np.asarray(weights, dtype=np.float64))
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    P = np.asarray(P, dtype=np.float64)
    if P.ndim == 3:
        return np.sqrt(np.mean([spread(fold, w) ** 2 for fold in P], axis=0))
    mean = np.tensordot(w, P, axes=1)
    return np.sqrt(np.tensordot(w, (P - mean) ** 2, axes=1))


def _quantile(scores: np.ndarray, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest score; infinite when n is too small."""
    n = len(scores)
    rank = math.ceil((n + 1) * coverage)
    return float("inf") if rank > n else float(np.sort(scores)[rank - 1])


NONNEGATIVE_ROWS = 30  # calibration rows, per unit of miss rate, that show a target is >= 0
LOG_LEVELS = 1000.0  # steps per unit of log-probability that a row's share is hashed from


def _share(proba: np.ndarray) -> np.ndarray:
    """Per row, a number in [0, 1) that looks uniform across rows but depends only on the
    row's probabilities: a hash (splitmix64's mixer) of their logarithms to 1e-3, so that
    rows as confident as 1 - 1e-9 still spread evenly (a weighted sum's fraction did not: a
    near one-hot row's share was fixed by its class, and whole classes fell out of the sets),
    while the last bits a model's arithmetic varies by batch size (1e-16 in float64, 1e-7 in
    float32) change a row's share, and so its set, about once in 10,000 rows at most. The
    probabilities are hashed largest first, so the classes' order does not matter."""
    logs = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-300, None))
    logs = -np.sort(-logs, axis=1)  # by size, not class order: renumbered classes, same sets
    levels = np.ascontiguousarray(np.round(logs * LOG_LEVELS).astype(np.int64)).view(np.uint64)
    mixed = np.full(len(levels), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for column in levels.T:
        mixed = _mix(mixed ^ column)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(2**53)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 values (multiplication wraps modulo 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _set_scores(proba: np.ndarray) -> np.ndarray:
    """For every row and class: the mass of the classes ranked above it (most probable first,
    ties by class id) plus the row's share of its own probability."""
    order = np.argsort(-proba, axis=1, kind="stable")
    ranked = np.take_along_axis(proba, order, axis=1)
    above = np.empty_like(proba)
    np.put_along_axis(above, order, np.cumsum(ranked, axis=1) - ranked, axis=1)
    return above + _share(proba)[:, None] * proba


@dataclass(frozen=True)
class Conformal:
    """A calibrated conformal predictor: the target ``coverage``, the score quantile ``q``
    and, for regression, the spread ``floor`` added before dividing."""

    coverage: float
    kind: str  # "interval" (regression) or "set" (classification)
    q: float
    floor: float = 0.0
    n_calibration: int = 0
    # a new row's spread is taken fold by fold (bagged members, as ``spread`` of (folds,
    # members, rows)); what measured it on test, so the served model does the same
    spread_by_fold: bool = False
    # 0.0 when no calibration target was negative (prices, counts): lower bounds stop there
    lowest: float | None = None
    # calibrated on scores divided by the members' spread: new rows need theirs too
    scaled: bool = False

    def interval(
        self, pred: np.ndarray, spread_: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) around the point predictions, ``spread_`` the members' spread
        (ignored by a predictor calibrated without one); a lower bound below the targets'
        floor (0 for a target never negative) is that floor."""
        if spread_ is None and self.scaled:
            raise ValueError(
                "this predictor was calibrated on errors scaled by the members' spread: pass "
                "the new rows' spread (ensembles.conformal.spread) too"
            )
        if not self.scaled:  # calibrated on plain errors: a spread would widen it q-fold
            spread_ = None
        spread_ = np.zeros(len(np.atleast_1d(pred))) if spread_ is None else spread_
        half = self.q * (np.asarray(spread_, dtype=np.float64) + self.floor)
        pred = np.asarray(pred, dtype=np.float64)
        lower = pred - half
        if self.lowest is not None:  # but never above the prediction (a far-out row's)
            lower = np.minimum(np.maximum(lower, self.lowest), pred)
        return lower, np.maximum(pred + half, lower)

    def sets(self, proba: np.ndarray) -> np.ndarray:
        """(rows, classes) booleans: which classes each row's prediction set holds."""
        return _set_scores(np.asarray(proba, dtype=np.float64)) <= self.q + 1e-12

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the served model reads it back with ``from_dict``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Conformal:
        """The predictor ``to_dict`` wrote; one saved before ``scaled`` was recorded was
        calibrated as the runner does, on errors scaled by the spread (regression)."""
        if "scaled" not in values:
            values = {**values, "scaled": values.get("kind") == "interval"}
        return cls(**values)


def _rows(
    pred: np.ndarray, y: np.ndarray, spread_: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Predictions (rows,) or (rows, classes), targets (rows,) and spread (rows,) of as many
    rows, a column (rows, 1) taken as values (a Keras regressor's shape); else ValueError
    (an (n,) against an (n, 1) array compared every row with every other, silently)."""
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y)
    pred = pred[:, 0] if pred.ndim == 2 and pred.shape[1] == 1 else pred
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    s = None if spread_ is None else np.asarray(spread_, dtype=np.float64).reshape(-1)
    if pred.ndim not in (1, 2) or y.ndim != 1 or len(y) != len(pred):
        raise ValueError(
            f"predictions must be (rows,) or (rows, classes) and targets (rows,), got "
            f"{pred.shape} and {y.shape}"
        )
    if s is not None and len(s) != len(y):
        raise ValueError(f"spread must hold one value per row ({len(y)}), got {len(s)}")
    for what, values in (("predictions", pred), ("spread", s)):
        if values is not None and not np.all(np.isfinite(values)):
            bad = int(np.sum(~np.isfinite(values)))
            raise ValueError(f"{what} must be finite numbers, got {bad} NaN or infinite")
    whole = y.dtype.kind in "iub" or (y.dtype.kind == "f" and bool(np.all(y == np.round(y))))
    if pred.ndim == 2 and not whole:
        raise ValueError(f"classes must be integer ids, got {y.dtype} values such as {y[0]!r}")
    if pred.ndim == 2 and len(y) and (y.min() < 0 or y.max() >= pred.shape[1]):
        bad = y[(y < 0) | (y >= pred.shape[1])][0]
        raise ValueError(f"classes must be ids in [0, {pred.shape[1]}), got {bad.item()!r}")
    return pred, y, s


def calibrate(
    coverage: float,
    pred: np.ndarray,
    y: np.ndarray,
    spread_: np.ndarray | None = None,
) -> Conformal:
    """Fit the conformal quantile on held-out predictions ``pred`` of targets ``y``: class
    probabilities (rows, classes) give prediction sets, values (rows,) intervals (scaled by
    the members' spread ``spread_`` when given)."""
    coverage = check_coverage(coverage)
    if coverage is None:
        raise ValueError("coverage must be a number in (0, 1), got None")
    pred, y, spread_ = _rows(pred, y, spread_)
    if pred.ndim == 2:
        scores = _set_scores(pred)[np.arange(len(y)), y.astype(np.int64)]
        return Conformal(coverage, "set", _quantile(scores, coverage), 0.0, len(y))
    s = np.zeros(len(y)) if spread_ is None else np.asarray(spread_, dtype=np.float64)
    # the floor keeps rows where the members agree from getting zero-width intervals; with
    # no spread at all the scores are plain absolute errors
    floor = next((float(v) for v in (np.median(s), np.mean(s)) if v > 0), 1.0)
    scores = np.abs(y.astype(np.float64) - pred) / (s + floor)
    # a target never negative on calibration rows (a price) gets no negative lower bounds,
    # once they are enough to tell: with n rows all >= 0, a negative one is rarer than 3 in n
    # (95% sure), which is a tenth of the rows the coverage allows to miss; on fewer, a target
    # that is often negative can be >= 0 on all of them by chance, and clipping would
    # uncover its negative rows
    enough = len(y) * (1.0 - coverage) >= NONNEGATIVE_ROWS - 1e-9
    lowest = 0.0 if enough and float(np.min(y)) >= 0 else None
    q = _quantile(scores, coverage)
    return Conformal(
        coverage, "interval", q, floor, len(y), lowest=lowest, scaled=spread_ is not None
    )


def evaluate_on(
    conformal: Conformal, pred: np.ndarray, y: np.ndarray, spread_: np.ndarray | None = None
) -> dict[str, float]:
    """Empirical coverage and mean interval width (or set size) on labelled rows."""
    pred, y, spread_ = _rows(pred, y, spread_)
    if (conformal.kind == "set") != (pred.ndim == 2):
        what = "class probabilities (rows, classes)" if conformal.kind == "set" else "values"
        raise ValueError(f"this {conformal.kind} predictor takes {what}, got shape {pred.shape}")
    if conformal.kind == "set":
        sets = conformal.sets(pred)
        covered = sets[np.arange(len(y)), y.astype(np.int64)]
        return {"coverage": float(covered.mean()), "mean_set_size": float(sets.sum(1).mean())}
    lo, hi = conformal.interval(pred, spread_)
    covered = (y >= lo) & (y <= hi)
    return {"coverage": float(covered.mean()), "mean_width": float(np.mean(hi - lo))}


def coverage_curve(
    cal: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    test: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    levels: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """Empirical test coverage at each target level, each calibrated on ``cal`` (pred, y,
    spread): the points of a coverage plot (on the diagonal when the guarantee holds)."""
    levels = np.linspace(0.5, 0.98, 25) if levels is None else np.asarray(levels)
    out = []
    for level in levels:
        fitted = calibrate(float(level), *cal)
        out.append(evaluate_on(fitted, *test)["coverage"])
    return {"target": [float(v) for v in levels], "test": out}


def served_frame(
    conformal: Conformal,
    pred: np.ndarray,
    spread_: np.ndarray | None,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """What a served ensemble with a coverage target returns: for regression the prediction
    and its interval (``prediction``, ``lower``, ``upper``); for classification each class's
    probability (``proba_K``), the most probable class (``prediction``) and the prediction
    set (``set``), as class ids, or as names when given the ``classes``."""
    pred = np.asarray(pred, dtype=np.float64)
    if conformal.kind == "interval":
        lo, hi = conformal.interval(pred, spread_)
        return pd.DataFrame({"prediction": pred, "lower": lo, "upper": hi})
    out = pd.DataFrame({f"proba_{k}": pred[:, k] for k in range(pred.shape[1])})
    ids = np.argmax(pred, axis=1)
    sets = [np.flatnonzero(row).tolist() for row in conformal.sets(pred)]
    if classes is None:
        out["prediction"], out["set"] = ids, sets
    else:
        out["prediction"] = [classes[k] for k in ids]
        out["set"] = [[classes[k] for k in row] for row in sets]
    return out


def point_predictions(served: Any) -> np.ndarray:
    """The probabilities or values in what a served ensemble returned: the ``proba_K`` or
    ``prediction`` columns of a ``served_frame``, or the array itself without a coverage
    target."""
    if isinstance(served, pd.DataFrame):
        proba = [c for c in served.columns if str(c).startswith("proba_")]
        return served[proba].to_numpy() if proba else served["prediction"].to_numpy()
    return np.asarray(served)
