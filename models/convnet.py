"""Small convnet (Deep Learning with Python ch. 7): conv blocks with batch norm, optional
depthwise-separable convolutions and residual connections, and a global-pooling head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task, check_choice, check_float, check_int, check_int_list
from models.hparams import check_activation, check_initializer, check_regularization

if TYPE_CHECKING:
    import keras

BATCH_NORM = ("before", "after", "none")


def check(
    *,
    filters: Any = (32, 64),
    kernel_size: int = 3,
    convs_per_block: int = 1,
    batch_norm: str = "before",
    separable: bool = False,
    residual: bool = False,
    activation: str = "relu",
    initializer: Any = "he_normal",
    dropout: float = 0.0,
    global_pool: bool = True,
    dense_units: int = 0,
    l1: float = 0.0,
    l2: float = 0.0,
    max_norm: float | None = None,
) -> dict[str, Any]:
    """Validate the hyperparameters without importing Keras (the driver calls this).

    ``batch_norm`` places BN before the activation (as DLwP recommends), after it, or nowhere;
    ``convs_per_block`` stacks convolutions (VGG-style) before each pooling. The head is global
    average pooling (DLwP) or, with ``global_pool: false``, pooling + flatten; ``dense_units``
    adds a hidden Dense layer (with ``dropout``) before the output.
    """
    return {
        "filters": check_int_list("filters", filters),
        "kernel_size": check_int("kernel_size", kernel_size),
        "convs_per_block": check_int("convs_per_block", convs_per_block),
        "batch_norm": check_choice("batch_norm", batch_norm, BATCH_NORM),
        "separable": bool(separable),
        "residual": bool(residual),
        "activation": check_activation(activation),
        "initializer": check_initializer(initializer),
        "dropout": check_float("dropout", dropout, 0.0, 1.0),
        "global_pool": bool(global_pool),
        "dense_units": check_int("dense_units", dense_units, minimum=0),
        **check_regularization(l1, l2, max_norm),
    }


def build(spec: InputSpec, task: Task, **hparams: Any) -> keras.Model:
    """An uncompiled convnet; flat inputs are folded into ``spec.image_shape`` in the graph."""
    import keras
    from keras import layers

    from models.layers import activation, dense_kwargs, features_input, head, standardize

    hp = check(**hparams)
    if spec.image_shape is None:
        raise ValueError("model 'convnet' needs image data (an image_shape), got flat features")
    conv = layers.SeparableConv2D if hp["separable"] else layers.Conv2D
    inputs = features_input(spec)
    x = layers.Reshape(spec.image_shape, name="to_image")(standardize(inputs, spec))
    kernel = dense_kwargs(hp)
    if hp["separable"]:  # SeparableConv2D names its kernels depthwise_/pointwise_
        kernel = {k.replace("kernel", "pointwise"): v for k, v in kernel.items()}
    for i, n in enumerate(hp["filters"]):
        shortcut = x
        for j in range(hp["convs_per_block"]):
            name = f"{i}" if hp["convs_per_block"] == 1 else f"{i}_{j}"
            x = conv(
                n,
                hp["kernel_size"],
                padding="same",
                use_bias=hp["batch_norm"] != "before",
                name=f"conv_{name}",
                **kernel,
            )(x)
            if hp["batch_norm"] == "before":
                x = layers.BatchNormalization(name=f"bn_{name}")(x)
            x = activation(x, hp["activation"], f"act_{name}")
            if hp["batch_norm"] == "after":
                x = layers.BatchNormalization(name=f"bn_{name}")(x)
        if hp["residual"]:
            if shortcut.shape[-1] != n:
                shortcut = layers.Conv2D(n, 1, name=f"project_{i}")(shortcut)
            x = layers.Add(name=f"residual_{i}")([x, shortcut])
        last = i == len(hp["filters"]) - 1
        if (not last or not hp["global_pool"]) and min(x.shape[1:3]) >= 4:
            x = layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    if hp["global_pool"]:
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    if hp["dropout"]:
        x = layers.Dropout(hp["dropout"], name="dropout")(x)
    if hp["dense_units"]:
        x = layers.Dense(hp["dense_units"], name="dense", **dense_kwargs(hp))(x)
        x = activation(x, hp["activation"], "dense_act")
        if hp["dropout"]:
            x = layers.Dropout(hp["dropout"], name="dense_dropout")(x)
    return keras.Model(inputs, head(x, task), name="convnet")
