"""Pretrained ``keras.applications`` bases for the transfer learner (DLwP ch. 7, Hands-On ML
ch. 11): an ImageNet architecture without its top, fed by the zoo's flat raw pixels.

Its weights come from a local file (``weights: /path/to/...notop.h5``; nothing downloads), from
Keras' own cache with ``weights: imagenet``, or are random with ``weights: null``. The images
are folded from the flat features, resized to ``image_size`` (at least 32 pixels a side),
repeated to three channels if grey, and scaled from ``[0, pixel_max]`` to the range the
architecture expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.base import InputSpec, check_choice, check_float, check_int

if TYPE_CHECKING:
    import keras

PREFIX = "applications:"
MIN_SIZE = 32
# architecture -> the pixel range its first layer expects
ARCHITECTURES: dict[str, str] = {
    "MobileNetV2": "minus_one_to_one",
    "ResNet50V2": "minus_one_to_one",
    "MobileNetV3Small": "zero_to_255",  # these carry their own preprocessing layers
    "MobileNetV3Large": "zero_to_255",
    "EfficientNetB0": "zero_to_255",
    "EfficientNetV2B0": "zero_to_255",
}


def is_application(base: Any) -> bool:
    """Whether a transfer ``base`` names a keras.applications architecture."""
    return isinstance(base, str) and base.startswith(PREFIX)


def check(
    base: str, weights: Any, image_size: Any, pixel_max: Any, application_kwargs: Any
) -> dict[str, Any]:
    """Validate an applications base without importing Keras."""
    name = check_choice("applications base", base[len(PREFIX) :], sorted(ARCHITECTURES))
    if weights is not None and weights != "imagenet" and not isinstance(weights, str):
        raise ValueError(f"weights must be null, imagenet or a weights file path, got {weights!r}")
    if application_kwargs is None:
        application_kwargs = {}
    if not isinstance(application_kwargs, dict):
        raise ValueError(f"application_kwargs must be a mapping, got {application_kwargs!r}")
    if check_float("pixel_max", pixel_max, 0.0, float("inf")) == 0:
        raise ValueError(f"pixel_max must be > 0, got {pixel_max!r}")
    return {
        "architecture": name,
        "weights": weights,
        "image_size": check_int("image_size", image_size, minimum=MIN_SIZE),
        "pixel_max": float(pixel_max),
        "application_kwargs": dict(application_kwargs),
    }


def check_input(hp: dict[str, Any], spec: InputSpec) -> None:
    """An applications base needs images, and a weights file that exists."""
    if spec.image_shape is None:
        raise ValueError(f"base {PREFIX}{hp['architecture']} needs image data, got flat features")
    if spec.image_shape[-1] not in (1, 3):
        raise ValueError(
            f"base {PREFIX}{hp['architecture']} needs 1 or 3 channels, got {spec.image_shape}"
        )
    weights = hp["weights"]
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise ValueError(f"weights file {weights!r} does not exist")


def to_rgb(inputs: keras.KerasTensor, spec: InputSpec, hp: dict[str, Any]) -> keras.KerasTensor:
    """Flat raw pixels -> (size, size, 3) images in the range the architecture expects."""
    from keras import layers

    size = hp["image_size"]
    x = layers.Reshape(spec.image_shape, name="to_image")(inputs)
    x = layers.Resizing(size, size, name="resize")(x)
    if spec.image_shape[-1] == 1:
        x = layers.Concatenate(name="to_rgb")([x, x, x])
    if ARCHITECTURES[hp["architecture"]] == "minus_one_to_one":
        return layers.Rescaling(2.0 / hp["pixel_max"], offset=-1.0, name="to_unit_range")(x)
    return layers.Rescaling(255.0 / hp["pixel_max"], name="to_255")(x)


def base_model(hp: dict[str, Any]) -> keras.Model:
    """The architecture without its top, global-average pooled, named ``base``."""
    import keras

    build = getattr(keras.applications, hp["architecture"])
    size = hp["image_size"]
    return build(
        include_top=False,
        weights=hp["weights"],
        input_shape=(size, size, 3),
        pooling="avg",
        name="base",
        **hp["application_kwargs"],
    )
