"""Ensembles of members' predictions: pure NumPy/SciPy, no Ray; MLflow only in the CLI.

``METHODS`` is the registry (name -> estimator class following the scikit-learn contract).
"""

from __future__ import annotations

from ensembles.budget import Budget, BudgetedEnsemble
from ensembles.methods import GreedyEnsemble, MeanEnsemble, StackingEnsemble, WeightedEnsemble

METHODS: dict[str, type] = {
    "mean": MeanEnsemble,
    "weighted": WeightedEnsemble,
    "greedy": GreedyEnsemble,
    "stacking": StackingEnsemble,
}


def make(method: str, budget: Budget | None = None, **params):
    """An unfitted ensemble of the named method, or ValueError listing the known methods.
    With an active ``budget`` the method is fitted on the members selected within it."""
    if method not in METHODS:
        raise ValueError(
            f"unknown ensemble method {method!r}; known methods: {', '.join(sorted(METHODS))}"
        )
    if budget is not None and budget.active:
        random_state = params.pop("random_state", None)
        return BudgetedEnsemble(
            method, params, budget.costs, budget.max_cost, budget.max_members, random_state
        )
    return METHODS[method](**params)


__all__ = [
    "METHODS",
    "Budget",
    "BudgetedEnsemble",
    "GreedyEnsemble",
    "MeanEnsemble",
    "StackingEnsemble",
    "WeightedEnsemble",
    "make",
]
