"""Keras building blocks the builders share: in-graph standardisation, column selection,
activations, initialisers, regularised dense layers and task heads.

Imported only from inside ``build`` functions, so that importing ``models`` stays Keras-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers

from models.base import InputSpec, Task

CLIP = 5.0  # standardised features are soft-clipped to about +-CLIP


def features_input(spec: InputSpec) -> keras.KerasTensor:
    """The model's single input: flat raw features."""
    return keras.Input(shape=(spec.n_features,), name="features")


def standardize(x: keras.KerasTensor, spec: InputSpec) -> keras.KerasTensor:
    """Standardise with the training split's statistics, so the saved model takes raw inputs."""
    if spec.mean is None or spec.variance is None:
        return x
    x = layers.Normalization(mean=spec.mean, variance=spec.variance, name="standardize")(x)
    # Soft-clip at +-CLIP standard deviations (CLIP * tanh(z / CLIP)): values within 2 sigma
    # move by under 2%, while outliers (California's AveOccup reaches 1243) cannot saturate
    # units or blow up a SELU net.
    x = layers.Rescaling(1.0 / CLIP, name="clip_scale_down")(x)
    x = layers.Activation("tanh", name="clip_tanh")(x)
    return layers.Rescaling(CLIP, name="clip_scale_up")(x)


def select_columns(x: keras.KerasTensor, columns: Sequence[int], name: str) -> keras.KerasTensor:
    """Pick columns with a frozen 0/1 Dense kernel: a plain, serialisable Keras layer."""
    kernel = np.zeros((x.shape[-1], len(columns)), dtype="float32")
    kernel[list(columns), np.arange(len(columns))] = 1.0
    pick = layers.Dense(
        len(columns),
        use_bias=False,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(kernel),
        name=name,
    )
    return pick(x)


def initializer(spec: str | Mapping[str, Any]) -> Any:
    """A Keras initialiser from a name or VarianceScaling arguments."""
    if isinstance(spec, Mapping):
        return keras.initializers.VarianceScaling(**spec)
    return spec


def activation(
    x: keras.KerasTensor, name: str, layer_name: str, shared_axes: Sequence[int] | None = None
) -> keras.KerasTensor:
    """Apply an activation; PReLU is a layer with a learned slope per unit, shared along
    ``shared_axes`` (``[1, 2]`` for feature maps: one slope per channel)."""
    if name == "prelu":
        axes = None if shared_axes is None else list(shared_axes)
        return layers.PReLU(shared_axes=axes, name=layer_name)(x)
    return layers.Activation(name, name=layer_name)(x)


def _regularizer(hp: Mapping[str, Any]) -> Any:
    if hp.get("l1") or hp.get("l2"):
        return keras.regularizers.L1L2(l1=hp.get("l1", 0.0), l2=hp.get("l2", 0.0))
    return None


def _max_norm(hp: Mapping[str, Any], axis: int | list[int]) -> Any:
    return keras.constraints.MaxNorm(hp["max_norm"], axis=axis) if hp.get("max_norm") else None


def dense_kwargs(hp: Mapping[str, Any]) -> dict[str, Any]:
    """Initialiser, l1/l2 penalty and max-norm constraint (each unit's incoming weights) for
    Dense layers."""
    return {
        "kernel_initializer": initializer(hp.get("initializer", "glorot_uniform")),
        "kernel_regularizer": _regularizer(hp),
        "kernel_constraint": _max_norm(hp, 0),
    }


def conv_kwargs(hp: Mapping[str, Any], separable: bool = False) -> dict[str, Any]:
    """``dense_kwargs`` for a Conv2D, whose max-norm bounds each filter of its kernel
    (kh, kw, in, out); a SeparableConv2D gets them on both kernels: the depthwise one
    (kh, kw, in, multiplier: each channel's spatial filter) and the pointwise one."""
    kernels = [("depthwise", [0, 1]), ("pointwise", [0, 1, 2])]
    out = {}
    for part, axis in kernels if separable else [("kernel", [0, 1, 2])]:
        out[f"{part}_initializer"] = initializer(hp.get("initializer", "glorot_uniform"))
        out[f"{part}_regularizer"] = _regularizer(hp)
        out[f"{part}_constraint"] = _max_norm(hp, axis)
    return out


def dense_block(
    x: keras.KerasTensor, units: int, hp: Mapping[str, Any], name: str
) -> keras.KerasTensor:
    """Dense -> [BN] -> activation -> [BN] -> [dropout], as the hyperparameters say."""
    bn = hp.get("batch_norm", "none")
    x = layers.Dense(units, use_bias=bn != "before", name=f"{name}_dense", **dense_kwargs(hp))(x)
    if bn == "before":
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = activation(x, hp["activation"], f"{name}_act")
    if bn == "after":
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if hp.get("dropout"):
        x = layers.Dropout(hp["dropout"], name=f"{name}_dropout")(x)
    return x


def head(x: keras.KerasTensor, task: Task, name: str = "output") -> keras.KerasTensor:
    """Softmax over the classes, or one linear unit for regression."""
    if task.is_classification:
        return layers.Dense(task.n_classes, activation="softmax", name=name)(x)
    return layers.Dense(1, name=name)(x)
