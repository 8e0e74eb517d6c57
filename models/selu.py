"""Self-normalising net (Hands-On ML ch. 11): SELU, LeCun-normal init, standardised inputs,
AlphaDropout; no batch norm needed because activations keep mean 0 and variance 1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task, check_float, check_int
from models.hparams import check_regularization

if TYPE_CHECKING:
    import keras


def check(
    *,
    depth: int = 4,
    width: int = 128,
    alpha_dropout: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
    max_norm: float | None = None,
) -> dict[str, Any]:
    """Validate the hyperparameters without importing Keras (the driver calls this)."""
    return {
        "depth": check_int("depth", depth),
        "width": check_int("width", width),
        "alpha_dropout": check_float("alpha_dropout", alpha_dropout, 0.0, 1.0),
        **check_regularization(l1, l2, max_norm),
    }


def build(spec: InputSpec, task: Task, **hparams: Any) -> keras.Model:
    """An uncompiled SELU net; standardisation is part of the graph, as SELU requires it."""
    import keras
    from keras import layers

    from models.layers import dense_kwargs, features_input, head, standardize

    hp = {**check(**hparams), "initializer": "lecun_normal"}
    inputs = features_input(spec)
    x = standardize(inputs, spec)
    for i in range(hp["depth"]):
        x = layers.Dense(hp["width"], activation="selu", name=f"dense_{i}", **dense_kwargs(hp))(x)
        if hp["alpha_dropout"]:
            x = layers.AlphaDropout(hp["alpha_dropout"], name=f"alpha_dropout_{i}")(x)
    return keras.Model(inputs, head(x, task), name="selu")
