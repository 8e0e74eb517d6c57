"""Ensembles of members' predictions: pure NumPy/SciPy, no Ray; MLflow only in the CLI.

``METHODS`` is the registry (name -> estimator class following the scikit-learn contract).
"""

from __future__ import annotations

from ensembles.methods import MeanEnsemble, WeightedEnsemble

METHODS: dict[str, type] = {
    "mean": MeanEnsemble,
    "weighted": WeightedEnsemble,
}


def make(method: str, **params) -> MeanEnsemble | WeightedEnsemble:
    """An unfitted ensemble of the named method, or ValueError listing the known methods."""
    if method not in METHODS:
        raise ValueError(
            f"unknown ensemble method {method!r}; known methods: {', '.join(sorted(METHODS))}"
        )
    return METHODS[method](**params)


__all__ = ["METHODS", "MeanEnsemble", "WeightedEnsemble", "make"]
