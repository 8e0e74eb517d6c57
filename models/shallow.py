"""Shallow scikit-learn members: diverse, fast, and often strong on tabular data."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from models import safe_io
from models.base import InputSpec, Task, check_hparam_names
from models.deadline import Deadline, current_deadline
from models.kind import EpochHook, ModelKind

MODEL_FILE = "model.skops"
# past this many training rows a quadratic kind's cost guess grows with them: on 350,000
# rows a k-NN member took longer than 1000 HistGradientBoosting rounds
QUADRATIC_ROWS = 10_000
# estimators that grow a part at a time with warm_start (their trees, or boosting rounds)
STAGED = (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)


# rounds a member that stops early is guessed to take, in its patience: on the diamonds table
# (54,000 rows) the tabular zoo's boosters took 16-45% of its MLP's time, guessed 20-40%
STOPPED_AFTER = 10


def _stop_rounds(params: Mapping[str, Any]) -> int | None:
    """The patience of a member that stops early (a booster's ``early_stopping_rounds``,
    scikit-learn's ``n_iter_no_change`` with ``early_stopping=True``); None if it does not."""
    stop = params.get("early_stopping_rounds")
    if stop is None and params.get("early_stopping") is True:
        stop = params.get("n_iter_no_change", 10)
    whole = isinstance(stop, int) and not isinstance(stop, bool)
    return stop if whole and stop > 0 else None


@dataclass(frozen=True, eq=False)
class SklearnKind(ModelKind):
    """A scikit-learn estimator behind the model-kind contract; ``scale`` prepends a
    StandardScaler, ``calibrate`` gives classifiers without predict_proba Platt scaling."""

    name: str
    classifier: type[BaseEstimator] | None = None
    regressor: type[BaseEstimator] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    scale: bool = False
    calibrate: bool = False
    framework: str = "sklearn"
    table_encoding: str = "onehot"
    # the guess of ``relative_cost``: a one-shot fit's cost, or (the hyperparameter counting
    # its trees or rounds, their default count, the cost of each)
    cost: float | tuple[str, int, float] = 1.0
    quadratic: bool = False  # its work grows with the square of the rows (k-NN, SVM)

    def relative_cost(
        self, epochs: int, hparams: Mapping[str, Any] | None = None, rows: int | None = None
    ) -> float:
        """A linear model 1, a forest of 300 trees 60, 5000 boosting rounds 100-200 (against
        a net's epochs), or 20-40 stopped after 100 rounds without gain: under a time limit a
        linear member no longer waits behind them, nor a booster stopped early behind a forest.
        Every kind's work grows with the rows; a quadratic kind's grows ``rows /
        QUADRATIC_ROWS`` times faster than the others' past ``QUADRATIC_ROWS`` of them."""
        if not isinstance(self.cost, tuple):
            scale = max(1.0, (rows or 0) / QUADRATIC_ROWS) if self.quadratic else 1.0
            return float(self.cost) * scale
        key, default, each = self.cost
        default = self.params.get(key, default)
        count = (hparams or {}).get(key, default)
        if isinstance(count, Mapping):  # a search domain: its largest value
            values = _numbers_in(count.values())
            count = max(values) if values else default
        whole = isinstance(count, (int, float)) and not isinstance(count, bool)
        count = count if whole else default
        stop = _stop_rounds({**self.params, **(hparams or {})})
        if stop is not None:  # stopped early: rarely past STOPPED_AFTER times its patience
            count = min(count, STOPPED_AFTER * stop)
        return float(count) * each

    def supports(self, task: Task) -> bool:
        """Whether an estimator exists for this task."""
        return self._estimator_class(task) is not None

    def _estimator_class(self, task: Task) -> type[BaseEstimator] | None:
        return self.classifier if task.is_classification else self.regressor

    def _estimator(self, task: Task, hparams: Mapping[str, Any]) -> BaseEstimator:
        cls = self._estimator_class(task)
        if cls is None:
            raise ValueError(f"model {self.name!r} does not support {task.kind}")
        allowed = cls().get_params(deep=False)
        check_hparam_names(self.name, hparams, allowed)
        params = {k: v for k, v in self.params.items() if k in allowed}
        return cls(**{**params, **hparams})

    def defaults(self, task: Task) -> dict[str, Any]:
        """The estimator's own defaults, with this entry's overrides."""
        return self._estimator(task, {}).get_params(deep=False)

    def check(self, hparams: Mapping[str, Any], task: Task) -> dict[str, Any]:
        """Validated hyperparameters: scikit-learn's own parameter validation, run early."""
        estimator = self._estimator(task, hparams)
        self._check_saveable(type(estimator))
        if not hasattr(estimator, "_parameter_constraints"):
            return dict(hparams)  # an estimator that declares no constraints checks itself
        try:
            estimator._validate_params()
        except Exception as err:  # InvalidParameterError; its text names value and range
            raise ValueError(f"model {self.name!r}: {err}") from None
        return dict(hparams)

    def _check_saveable(self, cls: type) -> None:
        """A class the safe format will load again: scikit-learn's own (skops, whose loader
        trusts them alone); ValueError naming the class otherwise, before anything trains."""
        from models.safe_io import ALLOWED_PREFIXES

        name = f"{cls.__module__}.{cls.__qualname__}"
        if not f"{cls.__module__}.".startswith(ALLOWED_PREFIXES):
            raise ValueError(
                f"model {self.name!r}: a SklearnKind saves its estimator with skops, which loads "
                f"scikit-learn's own classes only, not {name}; give the class a ModelKind of "
                "its own (build, fit, predict, save, load)"
            )

    def build(self, spec: InputSpec, task: Task, **hparams: Any) -> Pipeline:
        """An unfitted pipeline (scaler + estimator when ``scale``)."""
        estimator = self._estimator(task, hparams)
        if self.calibrate and task.is_classification:
            estimator = CalibratedClassifierCV(estimator, ensemble=False)
        steps = [StandardScaler(), estimator] if self.scale else [estimator]
        return make_pipeline(*steps)

    def fit(
        self,
        model: Any,
        task: Task,
        train: tuple[Any, Any],
        val: tuple[Any, Any],
        options: Any,
        hparams: Mapping[str, Any],
        *,
        seed: int = 0,
        on_epoch: EpochHook | None = None,
        workdir: Path | None = None,
    ) -> dict[str, list[float]]:
        """Fit once, seeded; the history is one "epoch" of train and validation scores named
        as Keras logs them, so curves and schedulers read every member alike (the training
        score on ``TRAIN_SCORE_ROWS`` of its rows at most: k-NN predicting every training row
        is quadratic in them, 20 minutes on 350,000 rows)."""
        if self.calibrate and task.is_classification:
            _calibration_folds(self.name, model, train[1])
        if task.is_classification:
            _early_stopping_rows(self.name, model, train[1])
        seed_estimator(model, seed)
        deadline = current_deadline()
        if deadline is not None and _grows_in_stages(model):
            _fit_in_stages(model, *train, deadline)
        else:
            model.fit(*train)
        X_seen, y_seen = _score_rows(*train, seed)
        scores = {
            **_keras_style(task, y_seen, self.predict(model, X_seen, task)),
            **_keras_style(task, val[1], self.predict(model, val[0], task), prefix="val_"),
        }
        if on_epoch is not None:
            on_epoch(1, scores)
        return {k: [v] for k, v in scores.items()}

    def predict(self, model: Any, X: np.ndarray, task: Task) -> np.ndarray:
        """(n, classes) probabilities, or (n,) values."""
        return predict(model, X, task)

    def save(self, model: Any, folder: Path) -> Path:
        """The fitted pipeline in the skops format (no pickle)."""
        return safe_io.dump(model, Path(folder) / MODEL_FILE)

    def load(self, path: Path) -> Any:
        """The fitted pipeline via ``models.safe_io`` (``models.store`` checks the sha256 first)."""
        return safe_io.load(path)


TRAIN_SCORE_ROWS = 10_000


def _score_rows(X: Any, y: Any, seed: int) -> tuple[Any, Any]:
    """The training rows the training score is taken on: all, or ``TRAIN_SCORE_ROWS`` of them
    drawn with the member's seed."""
    if len(y) <= TRAIN_SCORE_ROWS:
        return X, y
    rows = np.sort(np.random.default_rng(seed).choice(len(y), TRAIN_SCORE_ROWS, replace=False))
    return np.asarray(X)[rows], np.asarray(y)[rows]


def _keras_style(task: Task, y: np.ndarray, pred: np.ndarray, prefix: str = "") -> dict:
    """``loss`` plus the headline metric, as Keras names them (log loss and accuracy, or
    MSE and RMSE)."""
    if task.is_classification:
        picked = np.clip(pred[np.arange(len(y)), np.asarray(y, dtype=np.int64)], 1e-15, 1.0)
        accuracy = float(np.mean(np.argmax(pred, axis=1) == y))
        return {f"{prefix}loss": float(-np.mean(np.log(picked))), f"{prefix}accuracy": accuracy}
    mse = float(np.mean((pred - np.asarray(y, dtype=np.float64)) ** 2))
    return {f"{prefix}loss": mse, f"{prefix}rmse": float(np.sqrt(mse))}


CALIBRATION_FOLDS = 5  # scikit-learn's default for CalibratedClassifierCV


def _calibration_folds(name: str, model: Pipeline, y: np.ndarray) -> None:
    """Calibrate over as many folds as the smallest class has training rows, up to
    scikit-learn's five (which fails on a class of fewer rows); a class of one row cannot be
    calibrated by cross-validation: ValueError naming it."""
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    smallest = int(counts.min())
    if smallest < 2:
        raise ValueError(
            f"model {name!r} calibrates its probabilities by cross-validation, which needs 2 "
            f"training rows of every class; class {classes[counts.argmin()].item()!r} has "
            f"{smallest}"
        )
    calibrated = model.steps[-1][1]
    if isinstance(calibrated, CalibratedClassifierCV):
        calibrated.set_params(cv=min(CALIBRATION_FOLDS, smallest))


def _early_stopping_rows(name: str, model: Pipeline, y: np.ndarray) -> None:
    """HistGradientBoosting's early stopping holds out a stratified share of the training
    rows, which fails on a class of one row (a rare class in a bagged fold) and when the
    share or the rest is fewer rows than classes: fit such a model without it, and say so."""
    estimator = model.steps[-1][1]
    if not isinstance(estimator, HistGradientBoostingClassifier):
        return
    stops = estimator.early_stopping is True or (
        estimator.early_stopping == "auto" and len(y) > 10000
    )
    share = estimator.validation_fraction
    if not stops or share is None:
        return
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    held = math.ceil(share * len(y)) if isinstance(share, float) else int(share)
    why = None
    if counts.min() < 2:
        why = f"class {classes[counts.argmin()].item()!r} has 1 training row"
    elif min(held, len(y) - held) < len(classes):
        why = f"{len(y)} training rows hold out {held}, fewer than the {len(classes)} classes"
    if why is not None:
        logging.warning(
            "model %r: %s, which early stopping's stratified hold-out cannot split: trained "
            "without early stopping (max_iter=%s)",
            name,
            why,
            estimator.max_iter,
        )
        estimator.set_params(early_stopping=False)


STAGES = 20  # a forest or HistGradientBoosting under a deadline grows in this many steps


def _grows_in_stages(model: Any) -> bool:
    """Whether the model is a forest or a HistGradientBoosting alone (no scaler or
    calibration around it) that can be grown a part at a time (``warm_start``)."""
    steps = getattr(model, "steps", None)
    estimator = steps[-1][1] if steps and len(steps) == 1 else None
    return isinstance(estimator, STAGED) and not estimator.get_params()["warm_start"]


def _fit_in_stages(model: Any, X: Any, y: Any, deadline: Deadline) -> None:
    """Fit a forest's trees or HistGradientBoosting's iterations in ``STAGES`` warm-started
    parts, stopping after the part during which ``deadline`` passed: the model keeps what
    it grew (the same trees as one fit; HistGradientBoosting's early stopping still stops
    it), where one fit started just before a time limit ran on far past it."""
    estimator = model.steps[-1][1]
    key, unit = (
        ("max_iter", "rounds") if hasattr(estimator, "max_iter") else ("n_estimators", "trees")
    )
    total = int(estimator.get_params()[key])
    step = max(1, math.ceil(total / STAGES))
    estimator.set_params(warm_start=True)
    try:
        grown = 0
        while grown < total:
            grown = min(total, grown + step)
            estimator.set_params(**{key: grown})
            model.fit(X, y)
            if key == "max_iter" and (estimator.n_iter_ < grown or _stopped_early(estimator)):
                break  # its early stopping stopped it (in this part, or at its end)
            if grown < total and deadline.reached(grown, unit):
                break
    finally:
        estimator.set_params(warm_start=False)


def _stopped_early(estimator: Any) -> bool:
    """Whether HistGradientBoosting's early stopping holds after its last iteration (the
    last ``n_iter_no_change`` scores no better than the one before them by ``tol``): one fit
    would have stopped there, so a staged one stops too, though the part ended with it."""
    scores = getattr(estimator, "validation_score_", None)
    if scores is None or not len(scores):
        scores = getattr(estimator, "train_score_", ())
    n = int(estimator.n_iter_no_change)
    if len(scores) < n + 1:  # no early stopping (no scores), or too few iterations yet
        return False
    reference = scores[-(n + 1)] + (estimator.tol or 0.0)
    return not any(score > reference for score in scores[-n:])


def seed_estimator(estimator: BaseEstimator, seed: int) -> BaseEstimator:
    """Set every ``random_state`` in the estimator (and its pipeline steps) to ``seed``."""
    params = estimator.get_params(deep=True)
    estimator.set_params(**{k: seed for k in params if k.endswith("random_state")})
    return estimator


def predict(estimator: BaseEstimator, x: np.ndarray, task: Task) -> np.ndarray:
    """Predictions in the members' contract: (n, classes) probabilities, or (n,) values."""
    if task.is_classification:
        return np.asarray(estimator.predict_proba(x), dtype=np.float64)
    return np.asarray(estimator.predict(x), dtype=np.float64).reshape(len(x))


def _numbers_in(values: Any) -> list[float]:
    """The numbers in a search domain's arguments (``{choice: [500, 1000]}``'s list)."""
    out: list[float] = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out += _numbers_in(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
    return out


ENTRIES: dict[str, SklearnKind] = {
    e.name: e
    for e in (
        SklearnKind(
            "logistic", classifier=LogisticRegression, params={"max_iter": 2000}, scale=True
        ),
        SklearnKind("ridge", regressor=Ridge, scale=True),
        # the linear model of either task: logistic regression or ridge
        SklearnKind(
            "linear",
            classifier=LogisticRegression,
            regressor=Ridge,
            params={"max_iter": 2000},
            scale=True,
        ),
        SklearnKind(
            "extra_trees",
            classifier=ExtraTreesClassifier,
            regressor=ExtraTreesRegressor,
            params={"n_estimators": 300},
            table_encoding="ordinal",
            cost=("n_estimators", 100, 0.2),
        ),
        SklearnKind(
            "svm",
            classifier=SVC,
            regressor=SVR,
            params={"C": 10.0},
            scale=True,
            calibrate=True,
            cost=30.0,  # quadratic in the rows, five times over for its calibration
            quadratic=True,
        ),
        SklearnKind(
            "hgb",
            classifier=HistGradientBoostingClassifier,
            regressor=HistGradientBoostingRegressor,
            table_encoding="ordinal",
            cost=("max_iter", 100, 0.02),
        ),
        SklearnKind(
            "random_forest",
            classifier=RandomForestClassifier,
            regressor=RandomForestRegressor,
            params={"n_estimators": 200},
            table_encoding="ordinal",
            cost=("n_estimators", 100, 0.2),
        ),
        SklearnKind(
            "knn",
            classifier=KNeighborsClassifier,
            regressor=KNeighborsRegressor,
            scale=True,
            cost=2.0,  # its predictions on validation and test rows are its work
            quadratic=True,
        ),
    )
}
