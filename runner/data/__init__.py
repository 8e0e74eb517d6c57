"""Datasets: load from libraries or local paths, split train/val/test (seeded), fingerprint.

The fingerprint names the exact split, so predictions from different splits are never mixed.

One loader per source (``LOADERS``: ``library`` for the built-in datasets, ``tables`` for CSV
and Parquet) takes the whole ``DataSpec`` and returns a ``Raw``: features as float32,
classification labels as int64 in 0..k-1, regression targets as float64. ``load`` then keeps
``spec.classes``, caps ``spec.max_rows``, splits (``split``) and computes what models learn
from the training rows (``prepare``). Local paths are resolved against the current working
directory. No loader downloads anything, and none imports TensorFlow/Keras: the driver stays
TensorFlow-free.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from models.tabular import TablePrep
from runner.data.images import load_images
from runner.data.library import load_california_housing, load_digits, load_fashion_mnist
from runner.data.prepare import input_spec
from runner.data.split import (
    MIN_CLASS_ROWS,
    MIN_TRAIN_CLASS_ROWS,
    bagged,
    cap_rows,
    class_floor_error,
    fingerprint,
    keep_classes,
    least_rows,
    split,
    subsample,
)
from runner.data.tables import load_table
from runner.data.types import Dataset, DataSpec, Raw, one_line, take

LOADERS: dict[str, Callable[[DataSpec], Raw]] = {
    "california_housing": load_california_housing,
    "csv": load_table,
    "digits": load_digits,
    "fashion_mnist": load_fashion_mnist,
    "images": load_images,
}
# Datasets that ship their own test split: ``data.test_fraction`` does not apply to them.
OWN_TEST_SPLIT = frozenset({"fashion_mnist"})
# The ``data`` keys every dataset reads (``load``'s), and those only some loaders read: a key
# given to a dataset that does not read it would be ignored in silence (``+data.path=my.csv``
# beside data=digits trained on the digits)
COMMON_KEYS = frozenset(
    {"name", "val_fraction", "test_fraction", "seed", "classes", "max_rows", "max_train_rows"}
    | {"log_target"}
)
OWN_KEYS: dict[str, frozenset[str]] = {
    "california_housing": frozenset({"path"}),
    "csv": frozenset({"path", "target", "task", "sep", "decimal", "row_limit", "column_limit"}),
    "digits": frozenset(),
    "fashion_mnist": frozenset({"path"}),
    "images": frozenset({"path", "image_size"}),
}


def load(spec: DataSpec) -> Dataset:
    """Load, filter, cap and split the dataset ``spec`` names; raises ValueError (one line)."""
    name, val_fraction, test_fraction, seed = (
        spec.name,
        spec.val_fraction,
        spec.test_fraction,
        spec.seed,
    )
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")
    raw = LOADERS[name](spec)
    raw = keep_classes(raw, spec.classes, name)
    _check_class_sizes(raw, name)
    least = 0  # the fewest rows a stratified split of these classes takes (for the advice)
    if spec.max_rows is not None and raw.task.is_classification and not raw.has_test:
        least = least_rows(len(np.unique(raw.y)), val_fraction, test_fraction)
    raw = cap_rows(raw, spec.max_rows, seed, name, least)
    try:
        train, val, test = split(raw, val_fraction, test_fraction, seed)
    except ValueError as err:
        hint = "; raise data.max_rows" if spec.max_rows is not None else ""
        if hint and least:
            hint += f" (to {max(least, len(raw.y) + 1)} at the very least)"
        raise ValueError(
            f"{name}: cannot split {len(raw.y)} rows into train/val/test ({one_line(err)}){hint}"
        ) from None
    if spec.max_train_rows is not None and spec.max_train_rows < len(train):
        train = _cap_train(raw, train, spec)
    X_all_test, y_all_test = (raw.X_test, raw.y_test) if raw.has_test else (raw.X, raw.y)
    X_train = take(raw.X, train)
    parts = {
        "train": (X_train, raw.y[train]),
        "val": (take(raw.X, val), raw.y[val]),
        "test": (take(X_all_test, test), y_all_test[test]),
    }
    return Dataset(
        name=name,
        task=raw.task,
        input_spec=input_spec(raw, X_train),
        X_train=X_train,
        y_train=parts["train"][1],
        X_val=parts["val"][0],
        y_val=parts["val"][1],
        X_test=parts["test"][0],
        y_test=parts["test"][1],
        fingerprint=fingerprint(name, parts),
        log_target=_log_target(spec, raw),
        notes=raw.notes + _column_notes(X_train, parts["train"][1], raw.task.is_classification),
    )


def _check_class_sizes(raw: Raw, name: str) -> None:
    """Every class has ``MIN_CLASS_ROWS`` examples (a stratified split takes at least one
    into training; fewer fail inside scikit-learn's split, naming a class id)."""
    if not raw.task.is_classification:
        return
    counts = np.bincount(raw.y, minlength=raw.task.n_classes)
    if raw.has_test:
        counts = counts + np.bincount(raw.y_test, minlength=raw.task.n_classes)
    small = int(counts.argmin())
    if counts[small] < MIN_CLASS_ROWS:
        label = raw.task.labels[small] if raw.task.labels else small
        raise ValueError(
            f"{name}: class {label!r} has {counts[small]} example(s); every class needs at "
            f"least {MIN_CLASS_ROWS} (train, validation and test)"
        )


def _cap_train(raw: Raw, train: np.ndarray, spec: DataSpec) -> np.ndarray:
    """At most ``data.max_train_rows`` of the training rows (few labelled examples), each
    class keeping a row; val and test keep their size."""
    n, strat = spec.max_train_rows, raw.task.is_classification
    if strat and (
        short := class_floor_error(raw.y[train], n, MIN_TRAIN_CLASS_ROWS, raw.task.labels)
    ):
        raise ValueError(
            f"{spec.name}: data.max_train_rows={n} {short[0]} (a member cannot learn a class "
            f"without a training row); raise data.max_train_rows to at least {short[1]}"
        )
    rng = np.random.default_rng(spec.seed)
    return train[subsample(raw.y[train], n, strat, rng, MIN_TRAIN_CLASS_ROWS)]


def _column_notes(X_train: object, y_train: np.ndarray, classification: bool) -> tuple[str, ...]:
    """For raw table rows: the columns every member's encoding will read as numbers from
    text, or drop, and why (the same encoding fitted here on the training rows; no usable
    column at all fails here)."""
    if not isinstance(X_train, pd.DataFrame):
        return ()
    prep = TablePrep().fit(X_train, y_train, classification)
    read = tuple(f"column {name!r} is {how}" for name, how in prep.notes.items())
    return read + tuple(f"column {name!r} is dropped: {why}" for name, why in prep.dropped.items())


def _log_target(spec: DataSpec, raw: Raw) -> bool:
    """``data.log_target``, checked against the task and the targets."""
    if not spec.log_target:
        return False
    if raw.task.is_classification:
        raise ValueError(f"{spec.name}: data.log_target=true applies to regression only")
    low = float(np.min(raw.y))
    if low <= -1:
        raise ValueError(
            f"{spec.name}: data.log_target=true needs targets > -1 (log1p), the smallest is "
            f"{low:.6g}"
        )
    return True


__all__ = [
    "COMMON_KEYS",
    "LOADERS",
    "OWN_KEYS",
    "OWN_TEST_SPLIT",
    "DataSpec",
    "Dataset",
    "Raw",
    "bagged",
    "load",
]
