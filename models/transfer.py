"""Transfer learning (Hands-On ML ch. 11; DLwP ch. 7): a new head on a pretrained base, trained
in two phases: the base frozen and called with ``training=False`` (batch norm stays in
inference mode), then its top layers unfrozen with a lower learning rate and a recompile.

The base is a saved ``.keras`` model (a member of an earlier stage of the same experiment, or a
file), whose own output layer is dropped so the layer feeding it becomes the features; or a
``keras.applications`` architecture (``applications:MobileNetV2``, see models/applications.py)
with weights from a local file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import applications
from models.base import InputSpec, Task, check_float, check_int

if TYPE_CHECKING:
    import keras


def check(
    *,
    base: Any = None,
    head_units: int = 0,
    dropout: float = 0.0,
    frozen_epochs: int = 5,
    unfreeze: int | str = "all",
    fine_tune_lr_factor: float = 0.1,
    weights: str | None = None,
    image_size: int = 32,
    pixel_max: float = 255.0,
    application_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate the hyperparameters without importing Keras (the driver calls this).

    ``base``: path of a ``.keras`` file, ``STAGE.MEMBER`` naming an earlier stage's member
    (the runner resolves it to that member's saved model), or ``applications:NAME``.
    ``frozen_epochs``: epochs of phase one; the rest of ``training.epochs`` fine-tunes.
    ``unfreeze``: how many of the base's top layers to unfreeze in phase two (``all`` or an
    integer; 0 keeps the base frozen). ``weights``, ``image_size``, ``pixel_max`` and
    ``application_kwargs`` (e.g. ``{alpha: 0.35}``) configure an applications base.
    """
    if not isinstance(base, str) or not base:
        raise ValueError(
            "base must be a .keras file path, STAGE.MEMBER of an earlier stage or "
            f"applications:NAME, got {base!r}"
        )
    app = (
        applications.check(base, weights, image_size, pixel_max, application_kwargs)
        if applications.is_application(base)
        else None
    )
    if unfreeze != "all":
        unfreeze = check_int("unfreeze", unfreeze, minimum=0)
    factor = check_float("fine_tune_lr_factor", fine_tune_lr_factor, 0.0, 1.0, high_open=False)
    if factor <= 0:
        raise ValueError(f"fine_tune_lr_factor must be in (0, 1], got {fine_tune_lr_factor!r}")
    return {
        "base": base,
        "head_units": check_int("head_units", head_units, minimum=0),
        "dropout": check_float("dropout", dropout, 0.0, 1.0),
        "frozen_epochs": check_int("frozen_epochs", frozen_epochs, minimum=0),
        "unfreeze": unfreeze,
        "fine_tune_lr_factor": factor,
        "application": app,
    }


def is_stage_reference(base: Any) -> bool:
    """Whether ``base`` names a member of an earlier stage (not a file or an architecture)."""
    return (
        isinstance(base, str)
        and not base.endswith(".keras")
        and not applications.is_application(base)
    )


def check_input(hparams: dict[str, Any], spec: InputSpec) -> None:
    """A base given as a path must exist, an applications base needs images (stage
    references are checked by the runner)."""
    hp = check(**hparams)
    if hp["application"] is not None:
        applications.check_input(hp["application"], spec)
    elif hp["base"].endswith(".keras") and not Path(hp["base"]).is_file():
        raise ValueError(f"base model file {hp['base']!r} does not exist")


def example(folder: Any, spec: InputSpec, task: Task) -> dict[str, Any]:
    """Save a tiny MLP base in ``folder`` and point ``base`` at it (for smoke builds)."""
    from models.mlp import build as build_mlp

    path = Path(folder) / "transfer_base.keras"
    build_mlp(spec, task, depth=1, width=8).save(path)
    return {"base": str(path), "frozen_epochs": 1, "unfreeze": 1}


def feature_extractor(base: keras.Model) -> keras.Model:
    """The base without its output layer: input -> the tensor that fed the old head."""
    import keras

    inner = base.base if hasattr(base, "samples") else base  # MC-dropout wrapper
    head_layer = (
        inner.get_layer("output")
        if "output" in [x.name for x in inner.layers]
        else (inner.layers[-1])
    )
    return keras.Model(inner.inputs, head_layer.input, name="base")


def build(spec: InputSpec, task: Task, **hparams: Any) -> keras.Model:
    """Phase-one model: the frozen base (``training=False``) under a new head, uncompiled."""
    import keras
    from keras import layers

    from models.layers import features_input, head
    from models.saving import load_member_model

    hp = check(**hparams)
    inputs = features_input(spec)
    if hp["application"] is not None:
        applications.check_input(hp["application"], spec)
        x = applications.to_rgb(inputs, spec, hp["application"])
        extractor = applications.base_model(hp["application"])
    else:
        extractor = feature_extractor(load_member_model(hp["base"]))
        if extractor.input_shape[-1] != spec.n_features:
            raise ValueError(
                f"base takes {extractor.input_shape[-1]} features, the data has {spec.n_features}"
            )
        x = inputs
    extractor.trainable = False
    x = extractor(x, training=False)
    if hp["head_units"]:
        x = layers.Dense(hp["head_units"], activation="relu", name="head_dense")(x)
    if hp["dropout"]:
        x = layers.Dropout(hp["dropout"], name="head_dropout")(x)
    return keras.Model(inputs, head(x, task), name="transfer")


def unfreeze_top(model: keras.Model, hparams: dict[str, Any]) -> int:
    """Phase two: make the base's top layers trainable (BN layers stay frozen); returns how
    many layers were unfrozen. The caller must recompile, with a lower learning rate."""
    hp = check(**hparams)
    extractor = model.get_layer("base")
    weighted = [layer for layer in extractor.layers if layer.weights]
    chosen = weighted if hp["unfreeze"] == "all" else weighted[len(weighted) - hp["unfreeze"] :]
    if not chosen:
        return 0
    extractor.trainable = True
    for layer in extractor.layers:
        is_bn = type(layer).__name__ == "BatchNormalization"
        layer.trainable = layer in chosen and not is_bn
    return sum(layer.trainable for layer in chosen)


def fit(
    model: keras.Model,
    task: Task,
    train: tuple[Any, Any],
    val: tuple[Any, Any],
    options: Any,
    hparams: dict[str, Any],
    callbacks: Any = (),
    on_phase: Any = None,
    n_train_rows: int | None = None,
    log_dir: str | None = None,
) -> dict[str, list[float]]:
    """Two-phase training; returns both phases' history, with ``phase`` (1 or 2) per epoch.

    Phase one trains the new head for ``frozen_epochs`` (capped by ``options.epochs``);
    phase two unfreezes the base's top layers, recompiles with the learning rate times
    ``fine_tune_lr_factor``, and trains for the remaining epochs.
    """
    from dataclasses import replace

    from models.training import compile_model, fit_keras

    hp = check(**hparams)
    first = min(hp["frozen_epochs"], options.epochs)
    phases = [(1, first, options)]
    if options.epochs > first:
        lr = options.learning_rate * hp["fine_tune_lr_factor"]
        phases.append((2, options.epochs - first, replace(options, learning_rate=lr)))
    history: dict[str, list[float]] = {}
    for phase, epochs, opts in phases:
        if epochs == 0:
            continue
        if phase == 2 and unfreeze_top(model, hparams) == 0:
            break  # nothing to fine-tune: phase one was the whole training
        if on_phase is not None:
            on_phase(phase)
        compile_model(model, task, opts, n_train_rows=n_train_rows)
        part = fit_keras(model, train, val, replace(opts, epochs=epochs), callbacks, log_dir)
        n = len(next(iter(part.values()), []))
        for key, values in {**part, "phase": [float(phase)] * n}.items():
            history.setdefault(key, []).extend(values)
    return history
