"""Optimisers by name with their own options: validated without Keras, built with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from models.option_checks import (
    check_bool,
    check_nonnegative,
    check_option_names,
    check_positive,
    check_unit,
    split_named,
)

if TYPE_CHECKING:
    import keras

# name -> Keras class name
KERAS_CLASSES = {
    "sgd": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "adamw": "AdamW",
}
OPTIMIZERS = tuple(KERAS_CLASSES)

_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "momentum": check_unit,
    "nesterov": check_bool,
    "rho": check_unit,
    "beta_1": check_unit,
    "beta_2": check_unit,
    "epsilon": check_positive,
    "amsgrad": check_bool,
    "centered": check_bool,
    "initial_accumulator_value": check_nonnegative,
    "weight_decay": check_nonnegative,
}

# The options each optimiser takes: its own Keras constructor arguments, plus weight_decay
# (decoupled weight decay, which every Keras 3 optimiser supports). Clipping and the learning
# rate are TrainingOptions fields. tests/test_training.py checks this against Keras' signatures.
OPTIMIZER_OPTIONS: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum", "nesterov", "weight_decay"),
    "adagrad": ("initial_accumulator_value", "epsilon", "weight_decay"),
    "rmsprop": ("rho", "momentum", "epsilon", "centered", "weight_decay"),
    "adam": ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay"),
    "adamax": ("beta_1", "beta_2", "epsilon", "weight_decay"),
    "nadam": ("beta_1", "beta_2", "epsilon", "weight_decay"),
    "adamw": ("weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad"),
}


def check_optimizer(value: Any) -> str | dict[str, Any]:
    """The canonical optimizer: a plain name, or ``{name, **options}`` when options are given."""
    name, kwargs = split_named("optimizer", value, OPTIMIZERS)
    check_option_names(f"optimizer {name!r}", kwargs, OPTIMIZER_OPTIONS[name])
    checked = {k: _CHECKS[k](f"optimizer.{k}", v) for k, v in kwargs.items()}
    return {"name": name, **checked} if checked else name


def optimizer_parts(optimizer: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, options) of a canonical optimizer value."""
    if isinstance(optimizer, str):
        return optimizer, {}
    return optimizer["name"], {k: v for k, v in optimizer.items() if k != "name"}


def build_optimizer(
    optimizer: str | dict[str, Any],
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
) -> keras.optimizers.Optimizer:
    """A Keras optimiser with its options, a learning rate (or schedule) and gradient clipping."""
    import keras

    name, kwargs = optimizer_parts(optimizer)
    cls = getattr(keras.optimizers, KERAS_CLASSES[name])
    return cls(learning_rate=learning_rate, clipnorm=clipnorm, clipvalue=clipvalue, **kwargs)
