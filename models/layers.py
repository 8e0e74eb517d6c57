"""Keras building blocks the builders share: in-graph standardisation and task heads.

Imported only from inside ``build`` functions, so that importing ``models`` stays Keras-free.
"""

from __future__ import annotations

import keras
from keras import layers

from models.base import InputSpec, Task


def features_input(spec: InputSpec) -> keras.KerasTensor:
    """The model's single input: flat raw features."""
    return keras.Input(shape=(spec.n_features,), name="features")


def standardize(x: keras.KerasTensor, spec: InputSpec) -> keras.KerasTensor:
    """Standardise with the training split's statistics, so the saved model takes raw inputs."""
    if spec.mean is None or spec.variance is None:
        return x
    return layers.Normalization(mean=spec.mean, variance=spec.variance, name="standardize")(x)


def head(x: keras.KerasTensor, task: Task, name: str = "output") -> keras.KerasTensor:
    """Softmax over the classes, or one linear unit for regression."""
    if task.is_classification:
        return layers.Dense(task.n_classes, activation="softmax", name=name)(x)
    return layers.Dense(1, name=name)(x)
