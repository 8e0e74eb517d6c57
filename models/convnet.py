"""Small convnet (Deep Learning with Python ch. 7): conv blocks with batch norm, optional
depthwise-separable convolutions and residual connections, and a global-pooling head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.augment import check_augment
from models.base import InputSpec, Task, check_choice, check_int_list
from models.hparams import DENSE_STACK, REGULARIZATION, flag, integer, number
from models.kind import Hparam

if TYPE_CHECKING:
    import keras

BATCH_NORM = ("before", "after", "none")


# ``batch_norm`` places BN before the activation (as DLwP recommends), after it, or nowhere;
# ``convs_per_block`` stacks convolutions (VGG-style) before each pooling. The head is global
# average pooling (DLwP) or, with ``global_pool: false``, pooling + flatten; ``dense_units``
# adds a hidden Dense layer (with ``dropout``) before the output. ``augment`` shifts, zooms,
# rotates or flips each training batch (``models.augment``; off at prediction). ``tta``
# (test-time augmentation) predicts each image and its mirror images under augment's flip,
# and averages them (``models.custom.FlippedCopies``): twice the prediction time for one flip.
SCHEMA: dict[str, Hparam] = {
    "filters": Hparam((32, 64), check_int_list),
    "kernel_size": integer(3),
    "convs_per_block": integer(1),
    "batch_norm": Hparam("before", lambda name, value: check_choice(name, value, BATCH_NORM)),
    "separable": flag(False),
    "residual": flag(False),
    "activation": DENSE_STACK["activation"],
    "initializer": DENSE_STACK["initializer"],
    "dropout": number(0.0, 0.0, 1.0),
    "global_pool": flag(True),
    "dense_units": integer(0, minimum=0),
    "augment": Hparam(None, check_augment),
    "tta": flag(False),
    **REGULARIZATION,
}


def validate(hp: dict[str, Any]) -> dict[str, Any]:
    """``tta`` averages over the flips the member trained with: it needs augment's flip."""
    if hp["tta"] and (not hp["augment"] or hp["augment"]["flip"] == "none"):
        raise ValueError(
            "tta averages each image's predictions over the flips augment trains with; set "
            f"augment with a flip (e.g. {{flip: horizontal}}), got augment={hp['augment']!r}"
        )
    return hp


def build(spec: InputSpec, task: Task, hp: dict[str, Any]) -> keras.Model:
    """An uncompiled convnet; flat inputs are folded into ``spec.image_shape`` in the graph."""
    import keras
    from keras import layers

    from models.augment import augment
    from models.layers import (
        activation,
        conv_kwargs,
        dense_kwargs,
        features_input,
        head,
        standardize,
    )

    if spec.image_shape is None:
        raise ValueError("model 'convnet' needs image data (an image_shape), got flat features")
    conv = layers.SeparableConv2D if hp["separable"] else layers.Conv2D
    inputs = features_input(spec)
    x = inputs
    if hp["tta"]:
        from models.custom import FlippedCopies

        copies = FlippedCopies(spec.image_shape, hp["augment"]["flip"], name="tta_copies")
        x = copies(x)
    if hp["augment"]:  # on the raw images, before the per-pixel standardisation
        x = augment(layers.Reshape(spec.image_shape, name="raw_image")(x), hp["augment"])
        x = layers.Reshape((spec.n_features,), name="augmented")(x)
    x = layers.Reshape(spec.image_shape, name="to_image")(standardize(x, spec))
    kernel = conv_kwargs(hp, separable=hp["separable"])
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
            x = activation(x, hp["activation"], f"act_{name}", shared_axes=[1, 2])
            if hp["batch_norm"] == "after":
                x = layers.BatchNormalization(name=f"bn_{name}")(x)
        if hp["residual"]:
            if shortcut.shape[-1] != n:
                projection = layers.Conv2D(n, 1, name=f"project_{i}", **conv_kwargs(hp))
                shortcut = projection(shortcut)
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
    out = head(x, task)
    if hp["tta"]:
        from models.custom import MeanOfCopies

        out = MeanOfCopies(copies.copies, name="tta_mean")(out)
    return keras.Model(inputs, out, name="convnet")
