"""Ensemble methods with the scikit-learn estimator contract: ``fit(P, y)`` learns ``weights_``
over members from validation predictions ``P`` shaped (members, n[, classes]); ``predict(P)``
returns the combined predictions in the members' format."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ensembles.metrics import EPS
from ensembles.validation import check_predictions


class _WeightedAverage:
    """Shared ``predict``: the ``weights_``-weighted average of the members' predictions."""

    weights_: np.ndarray

    def predict(self, P: np.ndarray) -> np.ndarray:
        """Combined predictions: (n, classes) probabilities or (n,) values."""
        if not hasattr(self, "weights_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(P, y) first")
        P, _ = check_predictions(P)
        if P.shape[0] != len(self.weights_):
            raise ValueError(
                f"fitted on {len(self.weights_)} members, got predictions of {P.shape[0]}"
            )
        return np.tensordot(self.weights_, P, axes=1)

    def get_params(self, deep: bool = True) -> dict:
        """Constructor arguments, as scikit-learn's ``clone`` expects."""
        return {k: getattr(self, k) for k in self._param_names}

    def set_params(self, **params) -> _WeightedAverage:
        """Set constructor arguments, as scikit-learn's search tools expect."""
        for k, v in params.items():
            if k not in self._param_names:
                raise ValueError(f"unknown parameter {k!r}; allowed: {list(self._param_names)}")
            setattr(self, k, v)
        return self

    _param_names: tuple[str, ...] = ("random_state",)


class MeanEnsemble(_WeightedAverage):
    """Uniform average of all members: the baseline every other method must beat."""

    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = random_state

    def fit(self, P: np.ndarray, y: np.ndarray) -> MeanEnsemble:
        """Learn nothing but the number of members."""
        P, y = check_predictions(P, y)
        self.weights_ = np.full(P.shape[0], 1.0 / P.shape[0])
        return self


class WeightedEnsemble(_WeightedAverage):
    """Convex weights (non-negative, summing to 1) minimising validation log loss (classes)
    or mean squared error (values), by SLSQP; ``l2`` pulls the weights towards uniform."""

    _param_names = ("l2", "random_state")

    def __init__(self, l2: float = 0.0, random_state: int | None = None) -> None:
        self.l2 = l2
        self.random_state = random_state

    def fit(self, P: np.ndarray, y: np.ndarray) -> WeightedEnsemble:
        """Learn ``weights_`` on validation predictions."""
        if not (isinstance(self.l2, (int, float)) and self.l2 >= 0):
            raise ValueError(f"l2 must be a number >= 0, got {self.l2!r}")
        P, y = check_predictions(P, y)
        m = P.shape[0]
        uniform = np.full(m, 1.0 / m)
        if m == 1:
            self.weights_ = uniform
            return self
        if P.ndim == 3:
            picked = P[:, np.arange(P.shape[1]), y]  # (members, n): prob. of the true class

            def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
                p = np.clip(w @ picked, EPS, None)
                return float(-np.mean(np.log(p))), -(picked / p).mean(axis=1)
        else:

            def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
                err = w @ P - y
                return float(np.mean(err**2)), 2.0 * (P * err).mean(axis=1)

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = loss(w)
            d = w - uniform
            return value + self.l2 * float(d @ d), grad + 2.0 * self.l2 * d

        result = minimize(
            objective,
            uniform,
            jac=True,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * m,
            constraints=[
                {"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(m)}
            ],
            options={"maxiter": 500, "ftol": 1e-10},
        )
        w = np.clip(result.x, 0.0, None)
        self.weights_ = w / w.sum()
        self.n_iter_ = int(result.nit)
        return self
