"""Multilayer perceptron (Hands-On ML ch. 10): stacked Dense layers with optional BN and dropout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task, check_choice, check_float, check_int

if TYPE_CHECKING:
    import keras

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "swish")
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
)


def check(
    *,
    depth: int = 2,
    width: int = 128,
    activation: str = "relu",
    initializer: str = "he_normal",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> dict[str, Any]:
    """Validate the hyperparameters without importing Keras (the driver calls this)."""
    return {
        "depth": check_int("depth", depth),
        "width": check_int("width", width),
        "activation": check_choice("activation", activation, ACTIVATIONS),
        "initializer": check_choice("initializer", initializer, INITIALIZERS),
        "dropout": check_float("dropout", dropout, 0.0, 1.0),
        "batch_norm": bool(batch_norm),
    }


def build(spec: InputSpec, task: Task, **hparams: Any) -> keras.Model:
    """An uncompiled MLP on standardised features."""
    import keras
    from keras import layers

    from models.layers import features_input, head, standardize

    hp = check(**hparams)
    inputs = features_input(spec)
    x = standardize(inputs, spec)
    for i in range(hp["depth"]):
        x = layers.Dense(
            hp["width"],
            use_bias=not hp["batch_norm"],
            kernel_initializer=hp["initializer"],
            name=f"dense_{i}",
        )(x)
        if hp["batch_norm"]:
            x = layers.BatchNormalization(name=f"bn_{i}")(x)
        x = layers.Activation(hp["activation"], name=f"act_{i}")(x)
        if hp["dropout"]:
            x = layers.Dropout(hp["dropout"], name=f"dropout_{i}")(x)
    return keras.Model(inputs, head(x, task), name="mlp")
