"""The toy kind's fitted model, in a module of its own beside ``toy_kind.py`` (as a user's
kind imports helpers of theirs): a served model must ship it with the kind."""

from __future__ import annotations

from typing import Any

import numpy as np


class ToyModel:
    """Fitted parameters: centroids (classes) or coefficients (values), and the scaling."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def predict(self, X: np.ndarray) -> np.ndarray:
        p = self.params
        Z = (np.asarray(X, dtype=np.float64) - np.array(p["mean"])) / np.array(p["scale"])
        if "centroids" in p:
            d = ((Z[:, None, :] - np.array(p["centroids"])[None]) ** 2).sum(axis=2)
            logits = -d / p["temperature"]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        else:
            out = np.c_[Z, np.ones(len(Z))] @ np.array(p["coef"])
        corrupt = p.get("corrupt", "none")
        if corrupt == "nan_values":
            out[::3] = np.nan
        elif corrupt == "wrong_shape":
            out = out[:-1]
        elif corrupt == "unnormalised":
            out = out * 0.5
        elif corrupt == "squeezed":  # right for many rows, not for one
            out = np.squeeze(out)
        return out
