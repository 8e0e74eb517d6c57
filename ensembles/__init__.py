"""Ensembles of members' predictions: pure NumPy/SciPy, no Ray; MLflow only in the CLI.

``METHODS`` is the registry (name -> estimator class following the scikit-learn contract).
"""

from __future__ import annotations

from ensembles.methods import GreedyEnsemble, MeanEnsemble, StackingEnsemble, WeightedEnsemble

METHODS: dict[str, type] = {
    "mean": MeanEnsemble,
    "weighted": WeightedEnsemble,
    "greedy": GreedyEnsemble,
    "stacking": StackingEnsemble,
}


def make(method: str, **params):
    """An unfitted ensemble of the named method, or ValueError listing the known methods."""
    if method not in METHODS:
        raise ValueError(
            f"unknown ensemble method {method!r}; known methods: {', '.join(sorted(METHODS))}"
        )
    return METHODS[method](**params)


__all__ = [
    "METHODS",
    "GreedyEnsemble",
    "MeanEnsemble",
    "StackingEnsemble",
    "WeightedEnsemble",
    "make",
]
