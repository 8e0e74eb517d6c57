"""Wide & deep network (Hands-On ML ch. 10, Cheng et al. 2016): a multi-input functional model
whose wide path feeds raw (standardised) features straight to the output while the deep path
learns features; an optional auxiliary output on the deep path regularises it.

The saved model takes the flat raw features: frozen 0/1 Dense layers pick each path's columns
and feed an inner two-input model, so serving needs no column juggling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task, check_float, check_int
from models.hparams import (
    check_activation,
    check_batch_norm,
    check_initializer,
    check_regularization,
)

if TYPE_CHECKING:
    import keras


def _check_columns(name: str, value: Any) -> tuple[int | str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, Sequence)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, (str, int)) for v in value)
    ):
        raise ValueError(
            f"{name} must be null (all features) or a non-empty list of column names or "
            f"indices, got {value!r}"
        )
    return tuple(value)


def check(
    *,
    wide: Any = None,
    deep: Any = None,
    depth: int = 2,
    width: int = 30,
    activation: str = "relu",
    initializer: Any = "he_normal",
    dropout: float = 0.0,
    batch_norm: Any = "none",
    aux_output: bool = False,
    loss_weights: Any = (0.9, 0.1),
    l1: float = 0.0,
    l2: float = 0.0,
    max_norm: float | None = None,
) -> dict[str, Any]:
    """Validate the hyperparameters without importing Keras (the driver calls this).

    ``wide``/``deep``: the columns of each path (names or indices; null = every feature).
    ``loss_weights``: main and auxiliary loss weights when ``aux_output`` is on.
    """
    weights = tuple(loss_weights) if isinstance(loss_weights, Sequence) else ()
    if len(weights) != 2 or any(
        isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights
    ):
        raise ValueError(f"loss_weights must be two numbers >= 0, got {loss_weights!r}")
    return {
        "wide": _check_columns("wide", wide),
        "deep": _check_columns("deep", deep),
        "depth": check_int("depth", depth),
        "width": check_int("width", width),
        "activation": check_activation(activation),
        "initializer": check_initializer(initializer),
        "dropout": check_float("dropout", dropout, 0.0, 1.0),
        "batch_norm": check_batch_norm(batch_norm),
        "aux_output": bool(aux_output),
        "loss_weights": tuple(float(w) for w in weights),
        **check_regularization(l1, l2, max_norm),
    }


def column_indices(columns: tuple[int | str, ...] | None, spec: InputSpec, name: str) -> list[int]:
    """Resolve names or indices against the input's features; ValueError names a bad one."""
    if columns is None:
        return list(range(spec.n_features))
    names = list(spec.feature_names or ())
    out = []
    for c in columns:
        if isinstance(c, str):
            if c not in names:
                known = ", ".join(names) if names else "none (the data has no column names)"
                raise ValueError(f"{name} column {c!r} is not a feature; features: {known}")
            out.append(names.index(c))
        elif not 0 <= c < spec.n_features:
            raise ValueError(f"{name} column index {c} is outside [0, {spec.n_features})")
        else:
            out.append(int(c))
    return out


def check_input(hparams: dict[str, Any], spec: InputSpec) -> None:
    """Check the column groups against the data's features (the driver calls this)."""
    hp = check(**hparams)
    column_indices(hp["wide"], spec, "wide")
    column_indices(hp["deep"], spec, "deep")


def loss_weights(hparams: dict[str, Any]) -> list[float] | None:
    """Loss weights for compile(): [main, aux] when the auxiliary output is on."""
    hp = check(**hparams)
    return list(hp["loss_weights"]) if hp["aux_output"] else None


def build(spec: InputSpec, task: Task, **hparams: Any) -> keras.Model:
    """An uncompiled wide & deep model: outputs ``output`` (and ``aux_output`` if asked)."""
    import keras
    from keras import layers

    from models.layers import features_input, head, select_columns, standardize
    from models.mlp import trunk

    hp = check(**hparams)
    wide_cols = column_indices(hp["wide"], spec, "wide")
    deep_cols = column_indices(hp["deep"], spec, "deep")
    wide_in = keras.Input(shape=(len(wide_cols),), name="wide_input")
    deep_in = keras.Input(shape=(len(deep_cols),), name="deep_input")
    deep = trunk(deep_in, hp, prefix="deep")
    concat = layers.Concatenate(name="wide_and_deep")([wide_in, deep])
    outputs = [head(concat, task, name="main_head")]
    if hp["aux_output"]:
        outputs.append(head(deep, task, name="aux_head"))
    inner = keras.Model([wide_in, deep_in], outputs, name="wide_deep_core")

    features = features_input(spec)
    x = standardize(features, spec)
    everything = list(range(spec.n_features))
    wide_x = x if wide_cols == everything else select_columns(x, wide_cols, "select_wide")
    deep_x = x if deep_cols == everything else select_columns(x, deep_cols, "select_deep")
    out = inner([wide_x, deep_x])
    out = out if isinstance(out, (list, tuple)) else [out]
    # Named identities give the outer model's outputs distinct names for losses and metrics.
    named = [
        layers.Identity(name=n)(o) for n, o in zip(("output", "aux_output"), out, strict=False)
    ]
    return keras.Model(features, named if len(named) > 1 else named[0], name="wide_deep")
