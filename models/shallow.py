"""Shallow scikit-learn members: diverse, fast, and often strong on tabular data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
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

from models.base import InputSpec, Task, check_hparam_names


@dataclass(frozen=True)
class SklearnEntry:
    """A registry entry for a scikit-learn estimator; ``scale`` prepends a StandardScaler."""

    name: str
    classifier: type[BaseEstimator] | None = None
    regressor: type[BaseEstimator] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    scale: bool = False
    calibrate: bool = False  # classifiers without predict_proba get Platt scaling (5-fold)
    needs_image: bool = False
    kind: str = "sklearn"

    def supports(self, task: Task) -> bool:
        """Whether an estimator exists for this task."""
        return self._estimator_class(task) is not None

    def _estimator_class(self, task: Task) -> type[BaseEstimator] | None:
        return self.classifier if task.is_classification else self.regressor

    def _estimator(self, task: Task, hparams: Mapping[str, Any]) -> BaseEstimator:
        cls = self._estimator_class(task)
        if cls is None:
            raise ValueError(f"model {self.name!r} does not support {task.kind}")
        check_hparam_names(self.name, hparams, cls().get_params(deep=False))
        params = {k: v for k, v in self.defaults.items() if k in cls().get_params(deep=False)}
        return cls(**{**params, **hparams})

    def check_input(self, hparams: Mapping[str, Any], spec: InputSpec) -> None:
        """Shallow members take any flat features."""

    def loss_weights(self, hparams: Mapping[str, Any]) -> list[float] | None:
        """Not a Keras model: no loss weights."""
        return None

    def example_hparams(self, folder: Any, spec: InputSpec, task: Task) -> dict[str, Any]:
        """The defaults build every shallow member."""
        return {}

    def check(self, hparams: Mapping[str, Any], task: Task) -> dict[str, Any]:
        """Validated hyperparameters: scikit-learn's own parameter validation, run early."""
        estimator = self._estimator(task, hparams)
        try:
            estimator._validate_params()
        except Exception as err:  # InvalidParameterError; its text names value and range
            raise ValueError(f"model {self.name!r}: {err}") from None
        return dict(hparams)

    def build(self, spec: InputSpec, task: Task, **hparams: Any) -> Pipeline:
        """An unfitted pipeline (scaler + estimator when ``scale``)."""
        estimator = self._estimator(task, hparams)
        if self.calibrate and task.is_classification:
            estimator = CalibratedClassifierCV(estimator, ensemble=False)
        steps = [StandardScaler(), estimator] if self.scale else [estimator]
        return make_pipeline(*steps)


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


ENTRIES: dict[str, SklearnEntry] = {
    e.name: e
    for e in (
        SklearnEntry(
            "logistic", classifier=LogisticRegression, defaults={"max_iter": 2000}, scale=True
        ),
        SklearnEntry("ridge", regressor=Ridge, scale=True),
        SklearnEntry(
            "svm", classifier=SVC, regressor=SVR, defaults={"C": 10.0}, scale=True, calibrate=True
        ),
        SklearnEntry(
            "hgb",
            classifier=HistGradientBoostingClassifier,
            regressor=HistGradientBoostingRegressor,
        ),
        SklearnEntry(
            "random_forest",
            classifier=RandomForestClassifier,
            regressor=RandomForestRegressor,
            defaults={"n_estimators": 200},
        ),
        SklearnEntry(
            "knn", classifier=KNeighborsClassifier, regressor=KNeighborsRegressor, scale=True
        ),
    )
}
