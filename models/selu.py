"""Self-normalising net (Hands-On ML ch. 11): SELU, LeCun-normal init, standardised inputs,
AlphaDropout; no batch norm needed because activations keep mean 0 and variance 1."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task
from models.hparams import DENSE_STACK, REGULARIZATION, number
from models.kind import Hparam

if TYPE_CHECKING:
    import keras

SCHEMA: dict[str, Hparam] = {
    "depth": replace(DENSE_STACK["depth"], default=4),
    "width": DENSE_STACK["width"],
    "alpha_dropout": number(0.0, 0.0, 1.0),
    **REGULARIZATION,
}


def build(spec: InputSpec, task: Task, hp: dict[str, Any]) -> keras.Model:
    """An uncompiled SELU net; standardisation is part of the graph, as SELU requires it."""
    import keras
    from keras import layers

    from models.layers import dense_kwargs, features_input, head, standardize

    hp = {**hp, "initializer": "lecun_normal"}
    inputs = features_input(spec)
    x = standardize(inputs, spec)
    for i in range(hp["depth"]):
        x = layers.Dense(hp["width"], activation="selu", name=f"dense_{i}", **dense_kwargs(hp))(x)
        if hp["alpha_dropout"]:
            x = layers.AlphaDropout(hp["alpha_dropout"], name=f"alpha_dropout_{i}")(x)
    return keras.Model(inputs, head(x, task), name="selu")
