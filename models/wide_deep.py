"""Wide & deep network (Hands-On ML ch. 10, Cheng et al. 2016): a multi-input functional model
whose wide path feeds raw (standardised) features straight to the output while the deep path
learns features; an optional auxiliary output on the deep path regularises it.

The saved model takes the flat raw features: frozen 0/1 Dense layers pick each path's columns
and feed an inner two-input model, so serving needs no column juggling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task
from models.hparams import DENSE_STACK, flag
from models.kind import Hparam

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


def _loss_weights(name: str, value: Any) -> tuple[float, float]:
    weights = tuple(value) if isinstance(value, Sequence) else ()
    if len(weights) != 2 or any(
        isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights
    ):
        raise ValueError(f"{name} must be two numbers >= 0, got {value!r}")
    if weights[0] <= 0:  # the main output is what the member serves: it must learn
        raise ValueError(f"{name}: the main output's weight (the first) must be > 0, got {value!r}")
    return (float(weights[0]), float(weights[1]))


# ``wide``/``deep``: the columns of each path (names or indices; null = every feature);
# ``loss_weights``: main and auxiliary loss weights when ``aux_output`` is on.
SCHEMA: dict[str, Hparam] = {
    "wide": Hparam(None, _check_columns),
    "deep": Hparam(None, _check_columns),
    **DENSE_STACK,
    "width": replace(DENSE_STACK["width"], default=30),
    "aux_output": flag(False),
    "loss_weights": Hparam((0.9, 0.1), _loss_weights),
}


def _named(c: str, names: list[str], spec: InputSpec, name: str) -> list[int]:
    """Positions of the feature ``c``: a group (``@categorical``, ``@numeric``; an empty one
    means every feature), a feature's name, or a raw table column (all it was encoded into)."""
    if c.startswith("@"):
        groups = dict(spec.groups or {})
        if c[1:] not in ("categorical", "numeric"):
            raise ValueError(f"{name} group {c!r} is unknown; known: @categorical, @numeric")
        found = list(groups.get(c[1:], ()))
        return found or list(range(spec.n_features))
    # a raw column with the features it was encoded into (its missing flag, a date's parts)
    encoded = [i for i, n in enumerate(names) if n == c or n.startswith((f"{c}=", f"{c}:"))]
    if encoded:
        return encoded
    known = ", ".join(names) if names else "none (the data has no column names)"
    raise ValueError(f"{name} column {c!r} is not a feature; features: {known}")


def column_indices(columns: tuple[int | str, ...] | None, spec: InputSpec, name: str) -> list[int]:
    """Resolve names, groups or indices against the input's features; ValueError names a
    bad one."""
    if columns is None:
        return list(range(spec.n_features))
    names = list(spec.feature_names or ())
    out: list[int] = []
    for c in columns:
        if isinstance(c, str):
            out.extend(i for i in _named(c, names, spec, name) if i not in out)
        elif not 0 <= c < spec.n_features:
            raise ValueError(f"{name} column index {c} is outside [0, {spec.n_features})")
        else:
            out.append(int(c))
    return out


def check_input(hp: dict[str, Any], spec: InputSpec) -> None:
    """Check the column groups against the data's features (the driver calls this); raw
    table rows are checked by name only, their encoding is fitted with the member."""
    if spec.table:
        for key in ("wide", "deep"):
            for c in hp[key] or ():
                if isinstance(c, int):
                    raise ValueError(f"{key}: name table columns, not positions, got {c}")
                if isinstance(c, str) and c.startswith("@"):
                    _named(c, [], spec, key)
                elif c not in (spec.feature_names or ()):
                    known = ", ".join(spec.feature_names or ())
                    raise ValueError(f"{key} column {c!r} is not a column; columns: {known}")
        return
    column_indices(hp["wide"], spec, "wide")
    column_indices(hp["deep"], spec, "deep")


def loss_weights(hp: dict[str, Any]) -> list[float] | None:
    """Loss weights for compile(): [main, aux] when the auxiliary output is on."""
    return list(hp["loss_weights"]) if hp["aux_output"] else None


def build(spec: InputSpec, task: Task, hp: dict[str, Any]) -> keras.Model:
    """An uncompiled wide & deep model: outputs ``output`` (and ``aux_output`` if asked)."""
    import keras
    from keras import layers

    from models.layers import features_input, head, select_columns, standardize
    from models.mlp import trunk

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
