"""Hyperparameter checks the Keras builders share (activations, initialisers, regularisation),
Keras-free so the driver can validate configs before anything starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.base import check_choice, check_float

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "swish", "tanh")
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
)
FAN_MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")
BATCH_NORM = ("none", "before", "after")


def check_activation(value: Any) -> str:
    """One of ACTIVATIONS (PReLU learns its slope; LeakyReLU uses Keras' default 0.2)."""
    return check_choice("activation", value, ACTIVATIONS)


def check_initializer(value: Any) -> str | dict[str, Any]:
    """A named initialiser, or ``{scale, mode, distribution}`` for VarianceScaling
    (e.g. He with fan_avg: ``{scale: 2.0, mode: fan_avg}``)."""
    if isinstance(value, Mapping):
        allowed = {"scale", "mode", "distribution"}
        for key in value:
            if key not in allowed:
                raise ValueError(
                    f"initializer has no key {key!r}; allowed: {', '.join(sorted(allowed))}"
                )
        scale = value.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f"initializer.scale must be a number > 0, got {scale!r}")
        return {
            "scale": float(scale),
            "mode": check_choice("initializer.mode", value.get("mode", "fan_in"), FAN_MODES),
            "distribution": check_choice(
                "initializer.distribution",
                value.get("distribution", "truncated_normal"),
                DISTRIBUTIONS,
            ),
        }
    return check_choice("initializer", value, INITIALIZERS)


def check_batch_norm(value: Any) -> str:
    """Where batch norm goes relative to the activation; booleans mean before/none."""
    if isinstance(value, bool):
        return "before" if value else "none"
    return check_choice("batch_norm", value, BATCH_NORM)


def check_regularization(l1: Any, l2: Any, max_norm: Any) -> dict[str, float | None]:
    """l1 and l2 weight penalties (>= 0) and an optional max-norm constraint (> 0)."""
    out: dict[str, float | None] = {
        "l1": check_float("l1", l1, 0.0, 1e6),
        "l2": check_float("l2", l2, 0.0, 1e6),
        "max_norm": None,
    }
    if max_norm is not None:
        if check_float("max_norm", max_norm, 0.0, 1e6) <= 0:
            raise ValueError(f"max_norm must be > 0 or null, got {max_norm!r}")
        out["max_norm"] = float(max_norm)
    return out
