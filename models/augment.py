"""Image data augmentation inside the model (Keras preprocessing layers: random flips,
shifts, rotations and zooms of each training batch). The layers act only in training, so a
saved model predicts raw images unchanged; Keras-free until ``layers`` is called."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from models.base import check_choice, check_float
from models.option_checks import check_option_names

if TYPE_CHECKING:
    import keras

FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")
# ``true`` means these: shifts and zooms of up to a tenth, no flip (digits and letters change
# meaning when flipped; clothes do not: ``{flip: horizontal, translate: 0.1, zoom: 0.1}``)
DEFAULTS: dict[str, Any] = {"flip": "none", "translate": 0.1, "rotate": 0.0, "zoom": 0.1}
# a mapping turns on only what it names: ``{flip: horizontal}`` flips and nothing else
OFF: dict[str, Any] = {"flip": "none", "translate": 0.0, "rotate": 0.0, "zoom": 0.0}


def check_augment(name: str, value: Any) -> dict[str, Any] | None:
    """null/false (off), true (``DEFAULTS``) or a mapping of the transformations to apply
    (the others off): ``flip`` one of FLIPS, ``translate`` and ``zoom`` fractions of the image
    in [0, 1), ``rotate`` a fraction of a full turn in [0, 0.5]."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(DEFAULTS)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{name} must be null, true or a mapping of {', '.join(sorted(DEFAULTS))}, "
            f"got {value!r}"
        )
    check_option_names(name, value, DEFAULTS)
    out = {**OFF, **value}
    return {
        "flip": check_choice(f"{name}.flip", out["flip"], FLIPS),
        "translate": check_float(f"{name}.translate", out["translate"], 0.0, 1.0),
        "rotate": check_float(f"{name}.rotate", out["rotate"], 0.0, 0.5, high_open=False),
        "zoom": check_float(f"{name}.zoom", out["zoom"], 0.0, 1.0),
    }


def augment(x: keras.KerasTensor, settings: Mapping[str, Any] | None) -> keras.KerasTensor:
    """``x`` (a batch of images) through the random transformations ``settings`` ask for;
    unchanged without settings. Shifted, rotated or zoomed-out borders repeat the nearest
    pixel."""
    if not settings:
        return x
    from keras import layers

    if settings["flip"] != "none":
        x = layers.RandomFlip(settings["flip"], name="augment_flip")(x)
    if settings["translate"]:
        t = settings["translate"]
        x = layers.RandomTranslation(t, t, fill_mode="nearest", name="augment_translate")(x)
    if settings["rotate"]:
        x = layers.RandomRotation(settings["rotate"], fill_mode="nearest", name="augment_rotate")(x)
    if settings["zoom"]:
        x = layers.RandomZoom(settings["zoom"], fill_mode="nearest", name="augment_zoom")(x)
    return x
