"""Ensemble methods with the scikit-learn estimator contract: ``fit(P, y)`` learns ``weights_``
over members from validation predictions ``P`` shaped (members, n[, classes]); ``predict(P)``
returns the combined predictions in the members' format: (n, classes) probabilities or (n,)
values.

Regression targets are standardised inside ``fit`` (centred on the mean of ``y``, divided by
its standard deviation), so every method learns the same weights whatever the target's units
and its parameters (``l2``, ``alpha``) mean the same at any scale; predictions stay in the
original units."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, clone

from ensembles.folds import cross_fit_folds
from ensembles.metrics import EPS
from ensembles.validation import check_fitted, check_predictions, is_number


class ConvergenceError(ValueError):
    """The optimiser behind an ensemble method did not converge."""


def _standardiser(P: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(centre, scale)`` of a regression target: mean and standard deviation of ``y``; if
    ``y`` has no spread, the predictions' spread or the largest magnitude stands in."""
    centre = float(np.mean(y))
    for spread in (np.std(y), np.std(P), np.max(np.abs(y)), np.max(np.abs(P))):
        if np.isfinite(spread) and spread > 0:
            return centre, float(spread)
    return centre, 1.0


def _true_class_proba(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(members, n): each member's probability of the true class of each row."""
    return P[:, np.arange(P.shape[1]), y]


class _Ensemble(BaseEstimator):
    """Shared ``predict``: the ``weights_``-weighted average of the members' predictions."""

    weights_: np.ndarray
    # whether predict is the weights_-weighted average, so a member with weight 0 changes
    # nothing (a served ensemble need not load it)
    averages = True

    def check_params(self) -> None:
        """Raise ValueError naming any constructor argument with a bad value."""

    def _check_fitted(self, P: np.ndarray) -> np.ndarray:
        return check_fitted(self, P)

    def used_members(self) -> np.ndarray:
        """Indices of the members whose predictions ``predict`` reads: those with weight in
        an average, every member otherwise."""
        if self.averages:
            return np.flatnonzero(self.weights_)
        return np.arange(len(self.weights_))

    def predict(self, P: np.ndarray) -> np.ndarray:
        """Combined predictions: (n, classes) probabilities or (n,) values."""
        P = self._check_fitted(P)
        return np.tensordot(self.weights_, P, axes=1)

    def refit_without(self, i: int, P: np.ndarray, y: np.ndarray) -> _Ensemble:
        """A new ensemble of the same settings fitted on the members of ``P`` (the ones this
        one was fitted on) but member ``i``: what leave-one-out contributions compare."""
        keep = np.arange(P.shape[0]) != i
        return clone(self).fit(P[keep], y)


class MeanEnsemble(_Ensemble):
    """Uniform average of all members: the baseline every other method must beat."""

    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = random_state

    def fit(self, P: np.ndarray, y: np.ndarray) -> MeanEnsemble:
        """Learn nothing but the number of members."""
        P, y = check_predictions(P, y)
        self.pred_shape_ = P.shape[2:]
        self.weights_ = np.full(P.shape[0], 1.0 / P.shape[0])
        return self


class WeightedEnsemble(_Ensemble):
    """Convex weights (non-negative, summing to 1) minimising validation log loss (classes)
    or mean squared error of the standardised values, by SLSQP; ``l2`` pulls the weights
    towards uniform, in units of the best member's own loss (so it pulls as hard on members
    that explain 99% of a target as on weak ones: an absolute pull would outweigh their whole
    loss and keep near-uniform weights). Raises ConvergenceError if SLSQP fails within
    ``maxiter`` iterations.

    SLSQP's cost grows with the cube of the members, so beyond ``WORKING_SET`` members it
    solves on a working set: the best members
    alone first, then, while some member outside would lower the loss (its gradient is below
    the Lagrange multiplier of the sum constraint), those members join and the weightless
    ones leave. That stops at the same optimum as one large problem, at a cost that grows
    linearly in members. At most ``max_members`` members get weight (as AutoGluon's
    ensemble selection of 100 steps), which bounds the cost when the optimum is dense; with
    fewer members than the working set, the heaviest ``max_members`` of the optimum are
    solved again alone."""

    WORKING_SET = 32
    MAX_ROUNDS = 100

    def __init__(
        self,
        l2: float = 0.1,
        maxiter: int = 500,
        max_members: int = 100,
        random_state: int | None = None,
    ) -> None:
        self.l2 = l2
        self.maxiter = maxiter
        self.max_members = max_members
        self.random_state = random_state

    def check_params(self) -> None:
        """``l2`` must be a number >= 0; ``maxiter`` an integer >= 1, ``max_members`` >= 2."""
        if not is_number(self.l2) or self.l2 < 0:
            raise ValueError(f"l2 must be a number >= 0, got {self.l2!r}")
        if (
            isinstance(self.maxiter, bool)
            or not isinstance(self.maxiter, (int, np.integer))
            or self.maxiter < 1
        ):
            raise ValueError(f"maxiter must be an integer >= 1, got {self.maxiter!r}")
        if (
            isinstance(self.max_members, bool)
            or not isinstance(self.max_members, (int, np.integer))
            or self.max_members < 2
        ):
            raise ValueError(f"max_members must be an integer >= 2, got {self.max_members!r}")

    @staticmethod
    def _alone(F: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        """Each member's own loss: log loss of its true-class probabilities, or MSE of its
        standardised values."""
        if target is None:
            return -np.log(np.clip(F, EPS, None)).mean(axis=1)
        return ((F - target) ** 2).mean(axis=1)

    @staticmethod
    def _unit(alone: np.ndarray) -> float:
        """The pull's unit: the best member's own loss, floored at a thousandth of the
        median member's (a member perfect on validation would switch the pull off)."""
        return float(max(alone.min(), 1e-3 * np.median(alone), EPS))

    def _objective(self, F: np.ndarray, target: np.ndarray | None, uniform: float, unit: float):
        """The penalised loss of weights over the rows of ``F`` (true-class probabilities if
        ``target`` is None, else standardised values), and its gradient; the pull towards
        uniform weights is ``l2`` times ``unit`` (the best member's loss)."""
        pull = self.l2 * unit
        if target is None:

            def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
                p = np.clip(w @ F, EPS, None)
                return float(-np.mean(np.log(p))), -(F / p).mean(axis=1)
        else:

            def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
                err = w @ F - target
                return float(np.mean(err**2)), 2.0 * (F * err).mean(axis=1)

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = loss(w)
            d = w - uniform
            return value + pull * float(d @ d), grad + 2.0 * pull * d

        return objective

    def refit_without(self, i: int, P: np.ndarray, y: np.ndarray) -> WeightedEnsemble:
        """As the base class, started from this fit's weights without member ``i``: the
        optimum moves little, so SLSQP needs few steps (leave-one-out refits it per member)."""
        keep = np.arange(P.shape[0]) != i
        w = self.weights_[keep]
        return clone(self)._fit(P[keep], y, w / w.sum() if w.sum() > 0 else None)

    def _slsqp(self, objective, start: np.ndarray) -> tuple[np.ndarray, int]:
        """Weights on the simplex minimising ``objective`` from ``start``."""
        k = len(start)
        result = minimize(
            objective,
            start,
            jac=True,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * k,
            constraints=[
                {"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(k)}
            ],
            options={"maxiter": self.maxiter, "ftol": 1e-10},
        )
        # SLSQP's exit 8 (a line search that cannot go downhill) comes at a numerical optimum
        # when it made progress from the start; any other failure is reported
        stalled = result.status == 8 and objective(result.x)[0] < objective(start)[0]
        if not result.success and not stalled:
            raise ConvergenceError(
                f"weighted ensemble: SLSQP did not converge ({result.message}, "
                f"{result.nit} iterations); raise maxiter (now {self.maxiter}) or l2 "
                f"(now {self.l2}), or use method=greedy"
            )
        w = np.clip(result.x, 0.0, None)
        w[w < 1e-6 * w.max()] = 0.0  # SLSQP leaves traces on members the optimum drops
        return w / w.sum(), int(result.nit)

    def fit(self, P: np.ndarray, y: np.ndarray) -> WeightedEnsemble:
        """Learn ``weights_`` on validation predictions."""
        return self._fit(P, y)

    def _fit(
        self, P: np.ndarray, y: np.ndarray, warm: np.ndarray | None = None
    ) -> WeightedEnsemble:
        """``fit``, with SLSQP started from ``warm`` weights (one per member) when given."""
        self.check_params()
        P, y = check_predictions(P, y)
        self.pred_shape_ = P.shape[2:]
        m = P.shape[0]
        self.capped_ = False
        if m == 1:
            self.weights_, self.n_iter_ = np.ones(1), 0
            return self
        if P.ndim == 3:
            F, target = _true_class_proba(P, y), None
        else:
            centre, scale = _standardiser(P, y)
            F, target = (P - centre) / scale, (y - centre) / scale
        if m <= self.WORKING_SET:
            unit = self._unit(self._alone(F, target))
            objective = self._objective(F, target, 1.0 / m, unit)
            start = np.full(m, 1.0 / m) if warm is None else warm * 0.9 + 0.1 / m
            self.weights_, self.n_iter_ = self._slsqp(objective, start)
            if np.count_nonzero(self.weights_) > self.max_members:  # the heaviest, solved again
                keep = np.sort(np.argsort(-self.weights_, kind="stable")[: self.max_members])
                sub = self._objective(F[keep], target, 1.0 / m, unit)
                v, nit = self._slsqp(sub, np.full(len(keep), 1.0 / len(keep)))
                self.weights_ = np.zeros(m)
                self.weights_[keep] = v
                self.n_iter_ += nit
                self.capped_ = True
        else:
            self.weights_, self.n_iter_ = self._fit_working_set(F, target, warm)
        return self

    def _fit_working_set(
        self, F: np.ndarray, target: np.ndarray | None, warm: np.ndarray | None = None
    ) -> tuple[np.ndarray, int]:
        """The optimum over all members, found on small sets of them (the first: the best
        members alone, or those with ``warm`` weight); at most ``max_members`` get weight
        (``capped_`` says whether more would have)."""
        m = F.shape[0]
        alone = self._alone(F, target)
        unit = self._unit(alone)
        full = self._objective(F, target, 1.0 / m, unit)
        if warm is not None and np.count_nonzero(warm) >= 2:
            chosen = np.flatnonzero(warm)
            start = warm[chosen] * 0.9 + 0.1 / len(chosen)
        else:
            first = min(self.WORKING_SET, self.max_members)
            chosen = np.sort(np.argsort(alone, kind="stable")[:first])
            start = np.full(len(chosen), 1.0 / len(chosen))
        iterations = 0
        for _ in range(self.MAX_ROUNDS):
            sub = self._objective(F[chosen], target, 1.0 / m, unit)
            v, nit = self._slsqp(sub, start)
            iterations += nit
            w = np.zeros(m)
            w[chosen] = v
            _, grad = full(w)
            multiplier = float(v @ grad[chosen])
            gap = multiplier - grad
            gap[chosen] = 0.0
            joining = np.flatnonzero(gap > 1e-7 * max(1.0, abs(multiplier)))
            kept = chosen[v > 0]
            room = min(self.WORKING_SET, self.max_members - len(kept))
            self.capped_ = bool(len(joining)) and room <= 0
            if not len(joining) or room <= 0:
                break
            joining = joining[np.argsort(-gap[joining], kind="stable")][:room]
            chosen = np.sort(np.concatenate([kept, joining]))
            start = w[chosen] * 0.9 + 0.1 / len(chosen)
        return w, iterations


class GreedyEnsemble(_Ensemble):
    """Ensemble selection from a library of models (Caruana et al. 2004).

    Forward selection with replacement: each of ``n_steps`` adds the member that most lowers
    the validation loss (log loss for classes, MSE for values) of the running average; ties go
    to members already chosen, then to the lower index. ``n_init`` starts from the N best
    single members. The step with the lowest loss is kept, so more steps never hurt on val.
    ``weights_`` are the selection counts of that step, normalised.
    """

    def __init__(self, n_steps: int = 50, n_init: int = 0, random_state: int | None = None):
        self.n_steps = n_steps
        self.n_init = n_init
        self.random_state = random_state

    def check_params(self) -> None:
        """``n_steps`` >= 1 and ``n_init`` >= 0, integers."""
        for name, value, low in (("n_steps", self.n_steps, 1), ("n_init", self.n_init, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    def fit(self, P: np.ndarray, y: np.ndarray) -> GreedyEnsemble:
        """Select members on validation predictions; deterministic for the same input."""
        self.check_params()
        P, y = check_predictions(P, y)
        self.pred_shape_ = P.shape[2:]
        m, unit = P.shape[0], 1.0
        if P.ndim == 3:
            target = _true_class_proba(P, y)  # only the true class matters to log loss

            def row_losses(avg: np.ndarray) -> np.ndarray:
                return -np.log(np.clip(avg, EPS, None)).mean(axis=1)
        else:
            centre, scale = _standardiser(P, y)
            target, yy = (P - centre) / scale, (y - centre) / scale
            unit = scale**2  # losses are reported as MSE in the target's units

            def row_losses(avg: np.ndarray) -> np.ndarray:
                return ((avg - yy) ** 2).mean(axis=1)

        counts = np.zeros(m, dtype=np.int64)
        total = np.zeros(target.shape[1])
        for i in np.argsort(row_losses(target), kind="stable")[: min(self.n_init, m)]:
            counts[i] += 1
            total += target[i]
        best_loss, best_counts = np.inf, counts.copy()
        if counts.any():
            best_loss = float(row_losses(total[None] / counts.sum())[0])
        history = []
        for _ in range(self.n_steps):
            cand = row_losses((total + target) / (counts.sum() + 1))
            tied = np.flatnonzero(cand <= cand.min() + 1e-12)
            chosen_before = tied[counts[tied] > 0]
            pick = int(chosen_before[0] if len(chosen_before) else tied[0])
            counts[pick] += 1
            total += target[pick]
            history.append(float(cand[pick]))
            if cand[pick] < best_loss - 1e-12:
                best_loss, best_counts = float(cand[pick]), counts.copy()
        self.loss_history_ = np.array(history) * unit
        self.counts_ = best_counts
        self.best_loss_ = best_loss * unit
        self.weights_ = best_counts / best_counts.sum()
        return self


# the least probability stacking reads as a feature: below it a member's log-probabilities
# (down to log(EPS) = -34.5 for a tree's 0) say little and stretched the features so far that
# the meta-learner did not converge and overfitted them
FEATURE_FLOOR = 1e-4


class StackingEnsemble(_Ensemble):
    """A meta-learner on the members' validation predictions: multinomial logistic regression
    on their log-probabilities (classes) or ridge regression on their standardised values.

    ``fit`` also stores ``oof_pred_``: cross-fitted predictions on the validation rows (each
    fold predicted by a meta-learner fitted on the other folds), so the validation score it
    reports never comes from rows the meta-learner was fitted on. ``weights_`` are each
    member's share of the meta-learner's absolute coefficients: an importance, not a convex
    combination.
    """

    def __init__(
        self, C: float = 1.0, alpha: float = 1.0, cv: int = 5, random_state: int | None = None
    ) -> None:
        self.C = C
        self.alpha = alpha
        self.cv = cv
        self.random_state = random_state

    averages = False  # the meta-learner reads every member's predictions
    # what a budget's member selection fits in its place: each fit here cross-fits itself
    selected_by = "weighted"

    def _features(self, P: np.ndarray) -> np.ndarray:
        if P.ndim == 3:
            # a meta-learner saved before the floor existed read its features from EPS up
            floor = getattr(self, "feature_floor_", EPS)
            return np.log(np.clip(P, floor, 1.0)).transpose(1, 0, 2).reshape(P.shape[1], -1)
        return P.T

    def _meta(self, classification: bool):
        from sklearn.linear_model import LogisticRegression, Ridge

        if classification:
            return LogisticRegression(C=self.C, max_iter=2000)
        return Ridge(alpha=self.alpha)

    def _fit_meta(self, X: np.ndarray, y: np.ndarray, classification: bool):
        """The meta-learner fitted on ``X``; a ridge is fitted on values standardised by
        ``y``'s mean and spread, then its intercept is put back into the target's units."""
        if classification and len(np.unique(y)) < 2:  # one class to learn: its prior, and
            from sklearn.dummy import DummyClassifier  # the members' say on the others

            return DummyClassifier(strategy="prior").fit(X, y)
        if classification:
            return self._meta(True).fit(X, y)
        centre, scale = _standardiser(X, y)
        meta = self._meta(False).fit((X - centre) / scale, (y - centre) / scale)
        meta.intercept_ = scale * meta.intercept_ + centre * (1.0 - meta.coef_.sum())
        return meta

    def _proba(self, meta, X: np.ndarray, P: np.ndarray) -> np.ndarray:
        """The meta-learner's class probabilities for the rows of ``X`` (features of the
        members' ``P``). A class it never saw fitted (a rare class held out of a fold) gets
        the members' mean probability, not 0: a 0 would cost a held-out row of it a log
        loss of -log(EPS) and push the temperature fitted on those rows."""
        out = np.zeros(P.shape[1:])
        seen = np.asarray(meta.classes_)
        unseen = np.setdiff1d(np.arange(P.shape[2]), seen)
        mass = P[:, :, unseen].mean(axis=0)  # (rows, unseen classes)
        out[:, seen] = meta.predict_proba(X) * (1.0 - mass.sum(axis=1, keepdims=True))
        out[:, unseen] = mass
        return out

    def check_params(self) -> None:
        """``cv`` >= 2; ``C`` and ``alpha`` > 0."""
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ValueError(f"cv must be an integer >= 2, got {self.cv!r}")
        for name in ("C", "alpha"):
            value = getattr(self, name)
            if not is_number(value) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")

    def fit(self, P: np.ndarray, y: np.ndarray) -> StackingEnsemble:
        """Fit the meta-learner on all validation rows; cross-fit ``oof_pred_`` beside it."""
        self.check_params()
        P, y = check_predictions(P, y)
        self.pred_shape_ = P.shape[2:]
        classification = P.ndim == 3
        self.feature_floor_ = FEATURE_FLOOR
        X = self._features(P)
        self.n_classes_ = P.shape[2] if classification else None
        self.meta_ = self._fit_meta(X, y, classification)
        n_splits = min(self.cv, np.bincount(y).max()) if classification else self.cv
        oof = np.zeros((len(y), P.shape[2])) if classification else np.zeros(len(y))
        for train, held in cross_fit_folds(y, classification, n_splits, self.random_state):
            meta = self._fit_meta(X[train], y[train], classification)
            oof[held] = (
                self._proba(meta, X[held], P[:, held]) if classification else meta.predict(X[held])
            )
        self.oof_pred_ = oof
        coef = np.abs(np.atleast_2d(getattr(self.meta_, "coef_", np.ones(X.shape[1]))))
        per_member = coef.reshape(coef.shape[0], P.shape[0], -1).sum(axis=(0, 2))
        self.weights_ = (
            per_member / per_member.sum()
            if per_member.sum() > 0
            else np.full(P.shape[0], 1.0 / P.shape[0])
        )
        return self

    def predict(self, P: np.ndarray) -> np.ndarray:
        """The meta-learner's predictions on the members' predictions ``P``."""
        P = self._check_fitted(P)
        X = self._features(P)
        if self.n_classes_ is not None:
            return self._proba(self.meta_, X, P)
        return self.meta_.predict(X)
