"""Ensembles within a serving budget: the members' summed cost (prediction milliseconds per
1000 rows) at most ``max_cost`` and at most ``max_members`` of them, chosen by forward
selection on validation predictions. Every candidate ensemble the selection weighs is kept,
so the trade-off between cost and validation loss (its Pareto front) can be drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ensembles.metrics import EPS
from ensembles.validation import check_fitted, check_predictions


@dataclass(frozen=True)
class Budget:
    """What a served ensemble may cost: ``costs`` per member (in member order; needed with
    ``max_cost``), at most ``max_cost`` in total and at most ``max_members`` members."""

    costs: tuple[float, ...] | None = None
    max_cost: float | None = None
    max_members: int | None = None

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return self.max_cost is not None or self.max_members is not None


def check_limits(max_cost: Any, max_members: Any) -> tuple[float | None, int | None]:
    """The two limits, validated: ``max_cost`` a number > 0 or None, ``max_members`` an
    integer >= 1 or None; ValueError naming the bad value otherwise."""
    if max_cost is not None:
        if isinstance(max_cost, bool) or not isinstance(max_cost, (int, float, np.number)):
            raise ValueError(f"max_latency_ms must be a number > 0 or null, got {max_cost!r}")
        if not np.isfinite(max_cost) or max_cost <= 0:
            raise ValueError(f"max_latency_ms must be a number > 0 or null, got {max_cost!r}")
        max_cost = float(max_cost)
    if max_members is not None and (
        isinstance(max_members, bool)
        or not isinstance(max_members, (int, np.integer))
        or max_members < 1
    ):
        raise ValueError(f"max_members must be an integer >= 1 or null, got {max_members!r}")
    return max_cost, None if max_members is None else int(max_members)


def validation_loss(pred: np.ndarray, y: np.ndarray) -> float:
    """What the methods minimise: log loss of class probabilities, squared error of values."""
    if pred.ndim == 2:
        return float(-np.mean(np.log(np.clip(pred[np.arange(len(y)), y], EPS, None))))
    return float(np.mean((pred - y) ** 2))


class BudgetedEnsemble(BaseEstimator):
    """An ensemble ``method`` (with ``params``) fitted on the members a selection keeps within
    the budget. Two searches, the better on validation loss kept: forward, from the best
    affordable member, adding while an affordable member lowers the fitted ensemble's loss
    the member that lowers it most; and backward, from the method fitted on all candidates,
    dropping until within budget the member whose loss lost per cost saved is least (so two
    cheap members can replace an expensive one). When the method on every candidate is
    already within budget it is kept as it is (a budget that binds nothing changes nothing,
    below ``POOL`` members).
    Beyond ``POOL`` members only the ``POOL`` best alone are candidates.

    ``weights_`` cover all members (0 outside the selection); ``candidates_`` every ensemble
    weighed: its members, cost and validation loss. When no member alone fits the budget,
    ``fit`` raises ValueError, unless not ``strict``: then the cheapest member serves alone
    (what leave-one-out compares with when the member left out was the only affordable one)."""

    POOL = 32

    def __init__(
        self,
        method: str = "weighted",
        params: dict[str, Any] | None = None,
        costs: tuple[float, ...] | None = None,
        max_cost: float | None = None,
        max_members: int | None = None,
        random_state: int | None = None,
        strict: bool = True,
    ) -> None:
        self.method = method
        self.params = params
        self.costs = costs
        self.max_cost = max_cost
        self.max_members = max_members
        self.random_state = random_state
        self.strict = strict

    @property
    def averages(self) -> bool:
        """Whether ``predict`` is the ``weights_``-weighted average (as the inner method's)."""
        from ensembles import METHODS

        return bool(getattr(METHODS[self.method], "averages", False))

    def used_members(self) -> np.ndarray:
        """Indices of the members whose predictions ``predict`` reads."""
        return self.subset_[self.ensemble_.used_members()]

    def check_params(self) -> None:
        """The limits as ``check_limits`` wants them; costs (finite, >= 0) with a cost limit."""
        check_limits(self.max_cost, self.max_members)
        if self.max_cost is None and self.max_members is None:
            raise ValueError("a budgeted ensemble needs max_cost or max_members")
        if self.max_cost is not None and self.costs is None:
            raise ValueError("max_cost needs the members' costs")
        if self.costs is not None:
            costs = np.asarray(self.costs, dtype=np.float64)
            if costs.ndim != 1 or not np.all(np.isfinite(costs)) or np.any(costs < 0):
                raise ValueError(f"costs must be finite numbers >= 0, got {self.costs!r}")

    def _inner(self) -> Any:
        from ensembles import make

        return make(self.method, **{"random_state": self.random_state, **(self.params or {})})

    def _selector(self) -> Any:
        """What the searches fit on each subset they weigh: the method itself, or the method
        it names as ``selected_by`` (stacking's meta-learner cross-fits itself on every fit,
        and the searches' hundreds of fits, again per fold and per member left out, took
        minutes), with its defaults."""
        from ensembles import make

        proxy = self._proxy()
        return self._inner() if proxy is None else make(proxy, random_state=self.random_state)

    def _proxy(self) -> str | None:
        from ensembles import METHODS

        return getattr(METHODS[self.method], "selected_by", None)

    def _cost_of(self, members: np.ndarray, est: Any) -> float:
        return float(self.costs_[members[est.used_members()]].sum())

    def fit(self, P: np.ndarray, y: np.ndarray) -> BudgetedEnsemble:
        """Select members within the budget on validation predictions, fit the method on
        them; ValueError if no single member fits the budget."""
        self.check_params()
        P, y = check_predictions(P, y)
        self.pred_shape_ = P.shape[2:]
        m = P.shape[0]
        self.costs_ = np.ones(m) if self.costs is None else np.asarray(self.costs, dtype=np.float64)
        if len(self.costs_) != m:
            raise ValueError(f"got {len(self.costs_)} costs for {m} members")
        alone = np.array([validation_loss(p, y) for p in P])
        self.pool_ = np.sort(np.argsort(alone, kind="stable")[: self.POOL])
        affordable = [i for i in self.pool_ if self._fits(self.costs_[i], 1)]
        if not affordable and not self.strict:  # the cheapest alone, over budget
            affordable = [min(self.pool_, key=lambda i: (self.costs_[i], i))]
        if not affordable:
            raise ValueError(
                f"no member fits max_latency_ms={self.max_cost:g}: the cheapest of the "
                f"{len(self.pool_)} candidates takes {self.costs_[self.pool_].min():.3g} ms"
            )
        self.candidates_: list[dict[str, Any]] = [
            {"members": [int(i)], "cost": float(self.costs_[i]), "loss": float(alone[i])}
            for i in affordable
        ]
        forward = self._forward(P, y, alone, affordable)
        backward, start = self._backward(P, y)
        paths = [forward] if backward is None else [forward, backward]
        # the method on every candidate within budget: served as it is (a selector's zero
        # weights leave members out that the method itself would read)
        unbound = backward is not None and len(backward[0]) == len(self.pool_)
        if unbound and self._proxy() is not None:
            unbound = self._fits(float(self.costs_[self.pool_].sum()), len(self.pool_))
        if unbound:
            paths = [backward]
        self.subset_, self.ensemble_, self.loss_ = min(paths, key=lambda path: path[2])
        if self._proxy() is not None:
            self._fit_chosen(P, y, whole=unbound)
        # the members either search depends on: the forward path's, and all with weight
        # where the backward one starts; and those served (stacking on a whole pool reads
        # members its selector gave no weight)
        self.picked_ = sorted({int(i) for i in (*forward[0], *start, *self.subset_)})
        self.cost_ = self._cost_of(self.subset_, self.ensemble_)
        self.weights_ = np.zeros(m)
        self.weights_[self.subset_] = self.ensemble_.weights_
        self._keep_oof(self.ensemble_)
        return self

    def _fit_chosen(self, P: np.ndarray, y: np.ndarray, whole: bool) -> None:
        """The method itself fitted on the members its selector gave weight (or on all the
        selection holds, when ``whole``)."""
        if not whole:
            self.subset_ = self.subset_[self.ensemble_.used_members()]
        self.ensemble_ = self._inner().fit(P[self.subset_], y)
        oof = getattr(self.ensemble_, "oof_pred_", None)
        self.loss_ = validation_loss(
            self.ensemble_.predict(P[self.subset_]) if oof is None else oof, y
        )

    def _keep_oof(self, inner: Any) -> None:
        """A method that cross-fits (stacking) scores on its out-of-fold predictions: keep
        them as this ensemble's, where the stage looks for them."""
        oof = getattr(inner, "oof_pred_", None)
        if oof is not None:
            self.oof_pred_ = oof
        elif hasattr(self, "oof_pred_"):
            del self.oof_pred_

    def _fits(self, cost: float, n: int) -> bool:
        return (self.max_cost is None or cost <= self.max_cost * (1 + 1e-12)) and (
            self.max_members is None or n <= self.max_members
        )

    def _forward(
        self,
        P: np.ndarray,
        y: np.ndarray,
        alone: np.ndarray,
        affordable: list[int],
    ) -> tuple[np.ndarray, Any, float]:
        """The forward search: (selected members, the method fitted on them, its loss)."""
        first = min(affordable, key=lambda i: (alone[i], i))
        subset = np.array([first])
        est = self._selector().fit(P[subset], y)
        oof = getattr(est, "oof_pred_", None)  # a meta-learner on one member: its own loss
        loss = float(alone[first]) if oof is None else validation_loss(oof, y)
        cost = float(self.costs_[first])
        while True:
            n_used = len(est.used_members())
            best: tuple[float, int, Any, float, float] | None = None
            for j in self.pool_:  # the member that lowers the loss most
                if j in subset or not self._fits(cost + self.costs_[j], n_used + 1):
                    continue
                members = np.sort(np.append(subset, j))
                trial, new_loss, new_cost = self._weigh(P, y, members)
                gain = loss - new_loss
                if gain <= 1e-9 * max(1.0, abs(loss)):
                    continue
                score = gain
                if best is None or score > best[0]:
                    best = (score, int(j), trial, new_loss, new_cost)
            if best is None:
                return subset, est, loss
            _, j, est, loss, cost = best
            subset = np.sort(np.append(subset, j))

    def _weigh(self, P: np.ndarray, y: np.ndarray, members: np.ndarray) -> tuple[Any, float, float]:
        """The method fitted on ``members``, its validation loss (out of fold where it has
        one) and cost; recorded among the candidates."""
        trial = self._selector().fit(P[members], y)
        pred = getattr(trial, "oof_pred_", None)
        loss = validation_loss(trial.predict(P[members]) if pred is None else pred, y)
        cost = self._cost_of(members, trial)
        used = members[trial.used_members()]
        self.candidates_.append({"members": used.tolist(), "cost": cost, "loss": loss})
        return trial, loss, cost

    def _backward(
        self, P: np.ndarray, y: np.ndarray
    ) -> tuple[tuple[np.ndarray, Any, float] | None, np.ndarray]:
        """The backward search: (selected members, the method fitted on them, its loss), or
        None if it ends on one member beyond the budget; and the members it started from."""
        est, loss, cost = self._weigh(P, y, self.pool_)
        fitted_on = self.pool_
        subset = start = fitted_on[est.used_members()]
        per_cost = self.max_cost is not None and self.costs is not None
        while not self._fits(cost, len(subset)):
            if len(subset) == 1:
                return None, start
            best: tuple[float, np.ndarray, Any, float, float] | None = None
            for j in subset:  # the member whose loss lost (per cost saved) is least
                members = subset[subset != j]
                trial, new_loss, new_cost = self._weigh(P, y, members)
                lost = new_loss - loss
                score = lost / max(cost - new_cost, 1e-9) if per_cost else lost
                if best is None or score < best[0]:
                    best = (score, members, trial, new_loss, new_cost)
            _, fitted_on, est, loss, cost = best
            subset = fitted_on[est.used_members()]
        return (fitted_on, est, loss), start

    def predict(self, P: np.ndarray) -> np.ndarray:
        """The inner ensemble's prediction from the selected members' predictions."""
        P = check_fitted(self, P)
        return self.ensemble_.predict(P[self.subset_])

    def refit_without(self, i: int, P: np.ndarray, y: np.ndarray) -> BudgetedEnsemble:
        """The same budget fitted on every member but ``i``. A member no selection path
        picked changes no path when it leaves (unless the pool was capped), so then the fit
        is kept as it is and only re-indexed."""
        keep = np.arange(P.shape[0]) != i
        costs = None if self.costs is None else tuple(np.asarray(self.costs)[keep].tolist())
        fresh = BudgetedEnsemble(
            self.method,
            self.params,
            costs,
            self.max_cost,
            self.max_members,
            self.random_state,
            strict=False,
        )
        if i in self.picked_ or P.shape[0] > self.POOL:
            return fresh.fit(P[keep], y)
        shift = lambda idx: np.asarray(idx) - (np.asarray(idx) > i)  # noqa: E731
        fresh.costs_ = self.costs_[keep]
        fresh.pool_ = shift(self.pool_[self.pool_ != i])
        fresh.subset_, fresh.ensemble_, fresh.loss_ = (
            shift(self.subset_),
            self.ensemble_,
            self.loss_,
        )
        fresh.picked_ = shift(self.picked_).tolist()
        fresh.cost_, fresh.weights_ = self.cost_, self.weights_[keep]
        fresh._keep_oof(self.ensemble_)
        fresh.candidates_ = []
        return fresh
