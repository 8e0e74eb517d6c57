"""Hyperparameter checks the Keras builders share (activations, initialisers, regularisation),
Keras-free so the driver can validate configs before anything starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.base import check_choice, check_float, check_int
from models.kind import Hparam
from models.option_checks import check_bool

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


# ------------------------------------------------- schema entries (see models.kind.Hparam)


def integer(default: int | None, minimum: int = 1) -> Hparam:
    """An integer >= ``minimum``."""
    return Hparam(default, lambda name, value: check_int(name, value, minimum))


def number(default: float, low: float, high: float, *, high_open: bool = True) -> Hparam:
    """A number in [low, high) (or [low, high])."""
    return Hparam(
        default, lambda name, value: check_float(name, value, low, high, high_open=high_open)
    )


def flag(default: bool) -> Hparam:
    """A switch: true or false only, so a typo like ``nope`` fails instead of turning it on."""
    return Hparam(default, check_bool)


def _max_norm(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        if check_float(name, value, 0.0, 1e6) > 0:
            return float(value)
    except ValueError:
        pass
    raise ValueError(f"{name} must be a number in (0, 1e6) or null, got {value!r}")


REGULARIZATION: dict[str, Hparam] = {
    "l1": number(0.0, 0.0, 1e6),
    "l2": number(0.0, 0.0, 1e6),
    "max_norm": Hparam(None, _max_norm),
}

# The dense stack the MLP family shares (mlp, wide_deep, mc_dropout reuse it).
DENSE_STACK: dict[str, Hparam] = {
    "depth": integer(2),
    "width": integer(128),
    "activation": Hparam("relu", lambda name, value: check_activation(value)),
    "initializer": Hparam("he_normal", lambda name, value: check_initializer(value)),
    "dropout": number(0.0, 0.0, 1.0),
    "batch_norm": Hparam("none", lambda name, value: check_batch_norm(value)),
    **REGULARIZATION,
}
