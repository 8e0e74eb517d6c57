"""Multilayer perceptron (Hands-On ML ch. 10-11): stacked Dense layers with a choice of
activation, initialiser, batch norm, dropout and l1/l2/max-norm regularisation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task
from models.hparams import DENSE_STACK
from models.kind import Hparam

if TYPE_CHECKING:
    import keras

SCHEMA: dict[str, Hparam] = dict(DENSE_STACK)


def trunk(x: keras.KerasTensor, hp: dict[str, Any], prefix: str = "hidden") -> keras.KerasTensor:
    """The hidden layers, for builders that reuse the MLP body (wide & deep, MC dropout)."""
    from models.layers import dense_block

    for i in range(hp["depth"]):
        x = dense_block(x, hp["width"], hp, f"{prefix}_{i}")
    return x


def build(spec: InputSpec, task: Task, hp: dict[str, Any]) -> keras.Model:
    """An uncompiled MLP on standardised features."""
    import keras

    from models.layers import features_input, head, standardize

    inputs = features_input(spec)
    x = trunk(standardize(inputs, spec), hp)
    return keras.Model(inputs, head(x, task), name="mlp")
