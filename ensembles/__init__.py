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
    """An unfitted ensemble of the named method, or ValueError listing the known methods (or
    the method's parameters, for one it does not take).
    With an active ``budget`` the method is fitted on the members selected within it."""
    if method not in METHODS:
        raise ValueError(
            f"unknown ensemble method {method!r}; known methods: {', '.join(sorted(METHODS))}"
        )
    known = METHODS[method]._get_param_names()  # scikit-learn's list of __init__ params
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for method {method!r}; "
            f"its parameters: {', '.join(known)}"
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
