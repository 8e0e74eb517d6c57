"""Multilayer perceptron (Hands-On ML ch. 10-11): stacked Dense layers with a choice of
activation, initialiser, batch norm, dropout and l1/l2/max-norm regularisation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task, check_float, check_int
from models.hparams import (
    check_activation,
    check_batch_norm,
    check_initializer,
    check_regularization,
)

if TYPE_CHECKING:
    import keras


def check(
    *,
    depth: int = 2,
    width: int = 128,
    activation: str = "relu",
    initializer: Any = "he_normal",
    dropout: float = 0.0,
    batch_norm: Any = "none",
    l1: float = 0.0,
    l2: float = 0.0,
    max_norm: float | None = None,
) -> dict[str, Any]:
    """Validate the hyperparameters without importing Keras (the driver calls this)."""
    return {
        "depth": check_int("depth", depth),
        "width": check_int("width", width),
        "activation": check_activation(activation),
        "initializer": check_initializer(initializer),
        "dropout": check_float("dropout", dropout, 0.0, 1.0),
        "batch_norm": check_batch_norm(batch_norm),
        **check_regularization(l1, l2, max_norm),
    }


def trunk(x: keras.KerasTensor, hp: dict[str, Any], prefix: str = "hidden") -> keras.KerasTensor:
    """The hidden layers, for builders that reuse the MLP body (wide & deep, MC dropout)."""
    from models.layers import dense_block

    for i in range(hp["depth"]):
        x = dense_block(x, hp["width"], hp, f"{prefix}_{i}")
    return x


def build(spec: InputSpec, task: Task, **hparams: Any) -> keras.Model:
    """An uncompiled MLP on standardised features."""
    import keras

    from models.layers import features_input, head, standardize

    hp = check(**hparams)
    inputs = features_input(spec)
    x = trunk(standardize(inputs, spec), hp)
    return keras.Model(inputs, head(x, task), name="mlp")
