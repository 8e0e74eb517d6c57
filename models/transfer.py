"""Transfer learning (Hands-On ML ch. 11; DLwP ch. 7): a new head on a pretrained base, trained
in two phases: the base frozen and called with ``training=False`` (batch norm stays in
inference mode), then its top layers unfrozen with a lower learning rate and a recompile.

The base is a saved ``.keras`` model (a member of an earlier stage of the same experiment, or a
file), whose own output layer is dropped so the layer feeding it becomes the features; or a
``keras.applications`` architecture (``applications:MobileNetV2``, see models/applications.py)
with weights from a local file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models import applications
from models.base import InputSpec, Task, check_float, check_int
from models.hparams import integer, number
from models.kind import Hparam

if TYPE_CHECKING:
    import keras


def _base(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(
            "base must be a .keras file path, STAGE.MEMBER of an earlier stage or "
            f"applications:NAME, got {value!r}"
        )
    if value.endswith(".h5"):
        raise ValueError(
            f"base {value!r} is an HDF5 file: base takes a saved .keras model (load a Keras 2 "
            "model and save it as .keras), STAGE.MEMBER or applications:NAME (a weights file "
            "goes in weights=)"
        )
    return value


def _unfreeze(name: str, value: Any) -> int | str:
    return value if value == "all" else check_int(name, value, minimum=0)


def _lr_factor(name: str, value: Any) -> float:
    factor = check_float(name, value, 0.0, 1.0, high_open=False)
    if factor <= 0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return factor


# ``base``: path of a ``.keras`` file, ``STAGE.MEMBER`` naming an earlier stage's member (the
# runner resolves it to that member's saved model), or ``applications:NAME``.
# ``frozen_epochs``: epochs of phase one; the rest of ``training.epochs`` fine-tunes.
# ``unfreeze``: how many of the base's top layers to unfreeze in phase two (``all`` or an
# integer; 0 keeps the base frozen). ``weights``, ``image_size``, ``pixel_max`` and
# ``application_kwargs`` (e.g. ``{alpha: 0.35}``) configure an applications base.
SCHEMA: dict[str, Hparam] = {
    "base": Hparam(None, _base),
    "head_units": integer(0, minimum=0),
    "dropout": number(0.0, 0.0, 1.0),
    "frozen_epochs": integer(5, minimum=0),
    "unfreeze": Hparam("all", _unfreeze),
    "fine_tune_lr_factor": Hparam(0.1, _lr_factor),
    "weights": Hparam(None),
    "image_size": Hparam(32),
    "pixel_max": Hparam(255.0),
    "application_kwargs": Hparam(None),
}
APPLICATION_KEYS = ("weights", "image_size", "pixel_max", "application_kwargs")


def validate(hp: dict[str, Any]) -> dict[str, Any]:
    """Fold the applications settings into ``application`` (None for a saved base)."""
    app = (
        applications.check(hp["base"], *(hp[k] for k in APPLICATION_KEYS))
        if applications.is_application(hp["base"])
        else None
    )
    return {**{k: v for k, v in hp.items() if k not in APPLICATION_KEYS}, "application": app}


def is_stage_reference(base: Any) -> bool:
    """Whether ``base`` names a member of an earlier stage (not a file or an architecture)."""
    return (
        isinstance(base, str)
        and not base.endswith(".keras")
        and not applications.is_application(base)
    )


def check_input(hp: dict[str, Any], spec: InputSpec) -> None:
    """A base given as a path must exist, an applications base needs images (stage
    references are checked by the runner)."""
    if hp["application"] is not None:
        applications.check_input(hp["application"], spec)
    elif hp["base"].endswith(".keras") and not Path(hp["base"]).is_file():
        raise ValueError(f"base model file {hp['base']!r} does not exist")


def references(hparams: dict[str, Any]) -> dict[str, str]:
    """``base`` when it names a member of an earlier stage."""
    base = hparams.get("base")
    return {"base": base} if is_stage_reference(base) else {}


def check_reference(key: str, ref: str, kind: Any) -> None:
    """A base must be a Keras member."""
    if kind.framework != "keras":
        raise ValueError(f"{ref!r} is not a Keras member")


def example(folder: Path, spec: InputSpec, task: Task) -> dict[str, Any]:
    """Save a tiny MLP base in ``folder`` and point ``base`` at it (for smoke builds)."""
    from models.hparams import DENSE_STACK
    from models.kind import check_hparams
    from models.mlp import build as build_mlp

    path = Path(folder) / "transfer_base.keras"
    hp = check_hparams("mlp", DENSE_STACK, {"depth": 1, "width": 8})
    build_mlp(spec, task, hp).save(path)
    return {"base": str(path), "frozen_epochs": 1, "unfreeze": 1}


def _head_input(model: keras.Model) -> Any:
    """The tensor (of ``model``'s graph) feeding its head: the last layer with weights on the
    way back from its ``output`` layer (or first output), past layers without weights (a
    softmax or activation after the head, the named identities of ``wide_deep``), and into a
    nested model (``wide_deep``'s core, whose head reads the wide and deep features)."""
    import keras

    names = [x.name for x in model.layers]
    layer = model.get_layer("output") if "output" in names else model.outputs[0]._keras_history[0]
    start = layer
    while True:
        if isinstance(layer, keras.Model):  # its own head's input, on this graph's tensors
            sub = keras.Model(layer.inputs, _head_input(layer))
            # the tensors this graph feeds it (its ``input`` names its own Input layers)
            args = layer._inbound_nodes[0].input_tensors
            return sub(args if len(args) > 1 else args[0])
        if layer.weights:
            return layer.input
        before = layer.input
        if isinstance(before, (list, tuple)):  # a merge without weights: no single head
            return start.input
        layer = before._keras_history[0]
        if isinstance(layer, keras.layers.InputLayer):
            return start.input


def feature_extractor(base: keras.Model) -> keras.Model:
    """The base without its output layer: input -> the tensor that fed the old head (a base
    with test-time augmentation: those features averaged over each image's copies)."""
    import keras

    inner = base.base if hasattr(base, "samples") else base  # MC-dropout wrapper
    names = [x.name for x in inner.layers]
    features = _head_input(inner)
    if "tta_copies" in names:
        from models.custom import MeanOfCopies

        copies = inner.get_layer("tta_copies").copies
        features = MeanOfCopies(copies, name="tta_features")(features)
    return keras.Model(inner.inputs, features, name="base")


def build(spec: InputSpec, task: Task, hp: dict[str, Any]) -> keras.Model:
    """Phase-one model: the frozen base (``training=False``) under a new head, uncompiled."""
    import keras
    from keras import layers

    from models.layers import features_input, head
    from models.store import load_model

    inputs = features_input(spec)
    if hp["application"] is not None:
        applications.check_input(hp["application"], spec)
        x = applications.to_rgb(inputs, spec, hp["application"])
        extractor = applications.base_model(hp["application"])
    else:
        extractor = feature_extractor(load_model(hp["base"]))
        shape = tuple(extractor.input_shape[1:])
        values = int(np.prod(shape)) if None not in shape else None
        if values != spec.n_features:
            raise ValueError(
                f"base takes inputs of shape {shape} ({values} values a row), the data has "
                f"{spec.n_features} features"
            )
        # a base that reads images, e.g. (28, 28) into Flatten: the flat rows folded back
        x = inputs if shape == (spec.n_features,) else layers.Reshape(shape, name="to_base")(inputs)
    if _from_scratch(hp):  # random weights: nothing to keep, batch norm must learn its statistics
        x = extractor(x)
    else:
        extractor.trainable = False
        x = extractor(x, training=False)
    if hp["head_units"]:
        x = layers.Dense(hp["head_units"], activation="relu", name="head_dense")(x)
    if hp["dropout"]:
        x = layers.Dropout(hp["dropout"], name="head_dropout")(x)
    return keras.Model(inputs, head(x, task), name="transfer")


def unfreeze_top(model: keras.Model, hp: dict[str, Any]) -> int:
    """Phase two: make the base's top layers trainable (BN layers stay frozen); returns how
    many layers were unfrozen. The caller must recompile, with a lower learning rate."""
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


def _from_scratch(hp: dict[str, Any]) -> bool:
    """Whether the base is an applications architecture with random weights (``weights:
    null``): frozen, its untrained batch norm in inference mode passes on nothing (features
    of 1e-12), so the whole network trains from the start instead."""
    return hp["application"] is not None and hp["application"].get("weights") is None


def fit(
    model: keras.Model,
    task: Task,
    train: tuple[Any, Any],
    val: tuple[Any, Any],
    options: Any,
    hp: dict[str, Any],
    callbacks: Any = (),
    on_phase: Any = None,
    n_train_rows: int | None = None,
    log_dir: str | None = None,
) -> dict[str, list[float]]:
    """Two-phase training; returns both phases' history, with ``phase`` (1 or 2) per epoch.

    Phase one trains the new head for ``frozen_epochs`` (capped by ``options.epochs``; all
    of them with ``unfreeze: 0``, which keeps the base frozen);
    phase two unfreezes the base's top layers, recompiles with the learning rate and every
    rate the schedule names times ``fine_tune_lr_factor``, and trains for the remaining
    epochs. The epoch count and the learning-rate schedule run over both phases: phase two
    continues them where phase one stopped (TensorBoard steps, piecewise boundaries,
    step-based schedules), so its rates are the whole run's times the factor.
    """
    from dataclasses import replace

    from models.schedules import scale_schedule
    from models.training import compile_model, fit_keras

    # nothing to fine-tune: the head trains for every epoch on the frozen base (or, on a base
    # of random weights, the whole network does)
    scratch = _from_scratch(hp)
    if scratch or hp["unfreeze"] == 0:
        first = options.epochs
    else:
        first = min(hp["frozen_epochs"], options.epochs)
        if first == options.epochs:
            warnings.warn(
                f"transfer: training.epochs={options.epochs} is not above frozen_epochs="
                f"{hp['frozen_epochs']}, so the base is never fine-tuned (unfreeze="
                f"{hp['unfreeze']} has no effect)",
                stacklevel=2,
            )
    phases = [(1, 0, first, options)]
    if options.epochs > first:
        factor = hp["fine_tune_lr_factor"]
        tuned = replace(
            options,
            learning_rate=options.learning_rate * factor,
            schedule=scale_schedule(options.schedule, factor),
        )
        phases.append((2, first, options.epochs, tuned))
    history: dict[str, list[float]] = {}
    for phase, start, end, opts in phases:
        if end == start:
            continue
        if phase == 2:
            unfreeze_top(model, hp)  # a base without weights: the head goes on, more slowly
        if on_phase is not None:
            on_phase(phase)
        compile_model(model, task, opts, n_train_rows=n_train_rows, initial_epoch=start)
        part = fit_keras(
            model, train, val, replace(opts, epochs=end), callbacks, log_dir, initial_epoch=start
        )
        n = len(next(iter(part.values()), []))
        for key, values in {**part, "phase": [float(phase)] * n}.items():
            history.setdefault(key, []).extend(values)
    return history
