"""What every model kind receives (input shape, task) and the checks the kinds share.

Pure Python and NumPy: the driver imports this to validate configs without importing Keras.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

TaskKind = Literal["classification", "regression"]
TASK_KINDS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class Task:
    """What is predicted: class probabilities over ``n_classes``, or one value in target units."""

    kind: TaskKind
    n_classes: int | None = None
    # classification: what each class id stands for (the target's values, as text), in the
    # order of the probability columns; None where the dataset names no classes
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {list(TASK_KINDS)}, got {self.kind!r}")
        if self.kind == "classification" and (self.n_classes is None or self.n_classes < 2):
            raise ValueError(f"classification needs n_classes >= 2, got {self.n_classes!r}")
        if self.labels is not None and (
            self.kind != "classification" or len(self.labels) != self.n_classes
        ):
            raise ValueError(
                f"labels name each of n_classes={self.n_classes} classes of a classification "
                f"task; got {len(self.labels)} for a {self.kind} task"
            )

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"


@dataclass(frozen=True)
class InputSpec:
    """Flat numeric features; ``image_shape`` says how to fold them back into (h, w, c) images.

    ``mean`` and ``variance`` are per-feature training statistics, so models can standardise
    their raw inputs inside the graph and a saved model takes raw data.
    """

    n_features: int
    image_shape: tuple[int, int, int] | None = None
    feature_names: tuple[str, ...] | None = None
    mean: np.ndarray | None = field(default=None, compare=False, repr=False)
    variance: np.ndarray | None = field(default=None, compare=False, repr=False)
    # feature positions by origin ("categorical", "numeric") for encoded table rows
    groups: Mapping[str, tuple[int, ...]] | None = field(default=None, compare=False, repr=False)
    # images: the lowest and highest training pixel, so a served model can tell images on
    # another scale ([0, 1] where it learnt [0, 255]) from the ones it knows
    pixel_range: tuple[float, float] | None = field(default=None, compare=False, repr=False)
    # raw table rows: each member encodes them itself, so n_features and feature_names
    # describe the raw columns, not what a model sees
    table: bool = False
    # images of any size were resized to ``image_shape`` (a served model resizes them too)
    resizes_images: bool = False

    def __post_init__(self) -> None:
        if self.image_shape is not None and int(np.prod(self.image_shape)) != self.n_features:
            raise ValueError(
                f"image_shape {self.image_shape} does not hold {self.n_features} features"
            )

    def with_statistics(self, X: np.ndarray) -> InputSpec:
        """This spec with the training statistics of ``X`` (its rows) that Keras members
        standardise with, and for images the training pixels' range: one mean and variance
        for every pixel (per-pixel statistics would rescale each pixel differently and
        distort edges), per feature otherwise. A constant feature keeps unit scale, as
        StandardScaler does (divided by ~0, a pixel always 0 in training would blow up)."""
        X = np.asarray(X)
        if X.ndim == 2 and X.shape[1] != self.n_features:
            raise ValueError(
                f"the input spec says {self.n_features} features, the rows have {X.shape[1]}"
            )
        if self.image_shape is not None:
            mean = np.full(X.shape[1], X.mean(), dtype=np.float64)
            variance = np.full(X.shape[1], X.var(), dtype=np.float64)
            pixel_range = self.pixel_range or (float(np.min(X)), float(np.max(X)))
        else:
            mean, variance, pixel_range = X.mean(axis=0), X.var(axis=0), self.pixel_range
        return replace(
            self,
            mean=mean,
            variance=np.where(variance > 0, variance, 1.0),
            pixel_range=pixel_range,
        )


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ValueError naming it and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float, *, high_open: bool = True) -> float:
    """Return ``value`` as a float in [low, high) (or [low, high]), else raise ValueError."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be a number in [{low}, {high}{bracket}, got {value!r}")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError listing them."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_int_list(name: str, value: Any) -> tuple[int, ...]:
    """Return a non-empty sequence of positive ints as a tuple, else raise ValueError."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if not items or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in items
    ):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    return tuple(int(v) for v in items)


def check_hparam_names(model: str, hparams: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise ValueError for the first hyperparameter name the model does not take."""
    allowed = sorted(allowed)
    for name in hparams:
        if name not in allowed:
            raise ValueError(
                f"model {model!r} has no hyperparameter {name!r}; allowed: {', '.join(allowed)}"
            )


def check_labels(y: Any, task: Task, split: str, every_class: bool = False) -> None:
    """Classification targets must be class ids 0..K-1 (``task.labels`` names them), and with
    ``every_class`` each class needs rows: ValueError naming what was found (each library
    had its own obscure error, or none)."""
    y = np.asarray(y)
    k = task.n_classes
    if not task.is_classification or (y.ndim == 2 and y.shape[1] == k):
        return  # values, or a student's soft targets (a probability row per row)
    whole = y.dtype.kind in "iub" or (
        y.dtype.kind == "f" and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))
    )
    if not whole:
        example = _plain(y.ravel()[0]) if y.size else None
        raise ValueError(
            f"{split} targets must be class ids 0..{k - 1} (the task's labels name them), "
            f"got {y.dtype} values such as {example!r}"
        )
    if y.ndim != 1:
        raise ValueError(f"{split} targets must be shaped (rows,), got {y.shape}")
    outside = y[(y < 0) | (y >= k)]
    if len(outside):
        raise ValueError(
            f"{split} targets must be class ids in [0, {k}), got {len(outside)} outside it "
            f"(first {outside[0].item()!r})"
        )
    missing = sorted(set(range(k)) - {int(v) for v in np.unique(y)}) if every_class else []
    if missing:
        raise ValueError(
            f"class id(s) {missing} have no {split} rows of the {k} classes; every class needs "
            "some (a stratified split keeps them)"
        )


def check_finite(X: Any, split: str) -> None:
    """Numeric rows for a model that reads no missing values: ValueError naming the first
    NaN or infinite cell (a neural net trained on one ends at chance, silently)."""
    values = np.asarray(X)
    if values.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.argwhere(bad)[0]
        where = f"row {first[0]}" + (f", column {first[1]}" if len(first) > 1 else "")
        raise ValueError(
            f"{split} rows hold {int(bad.sum())} missing (NaN) or infinite value(s), first in "
            f"{where}; this model reads none: impute them, or pass a DataFrame, whose columns "
            "each member encodes and imputes"
        )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; a string or other object as it is."""
    return value.item() if isinstance(value, np.generic) else value
