"""What the data loaders share: the ``data`` config, a loaded table before splitting, and the
splits with what models need to know about their inputs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.base import InputSpec, Task


@dataclass(frozen=True)
class DataSpec:
    """Which dataset to load, which rows and classes to keep, and how to split it."""

    name: str
    val_fraction: float = 0.2
    test_fraction: float = 0.2  # ignored where the dataset ships its own test split
    seed: int = 0
    path: str | None = None  # a local file or folder instead of the library's cache
    target: str | None = None  # csv: the target column
    task: str | None = None  # csv: classification or regression; None infers it
    classes: tuple[int, ...] | None = None  # keep these classes only, relabelled 0..k-1
    max_rows: int | None = None  # subsample (stratified, seeded) before splitting: smoke runs
    max_train_rows: int | None = None  # cap the training split only (few-label experiments)
    log_target: bool = False  # regression: members learn log1p(target), predictions mapped back
    row_limit: int | None = 5_000_000  # tables: refuse more rows than this (null: no limit)
    column_limit: int | None = 5_000  # tables: refuse more columns than this (null: no limit)
    sep: str | None = None  # csv: the field separator; None: from the header
    decimal: str | None = None  # csv: "." or ","; None: "," only where the separator is not one
    image_size: tuple[int, int] | None = None  # images: resize every image to (height, width)


@dataclass(frozen=True)
class Raw:
    """A loaded dataset before splitting.

    ``X`` is a float32 matrix, or a DataFrame of raw table columns that each member encodes
    itself (``models.tabular``). ``X_test``/``y_test`` are set when the dataset ships its own
    test split (Fashion-MNIST); then only ``X``/``y`` are split into train and validation.
    ``notes`` says what the loader changed (rows dropped), for the user.
    """

    X: Any
    y: np.ndarray
    task: Task
    image_shape: tuple[int, int, int] | None = None
    feature_names: tuple[str, ...] | None = None
    X_test: Any = None
    y_test: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    resizes_images: bool = False  # images of any size were resized to image_shape

    def __post_init__(self) -> None:
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError("Raw needs both X_test and y_test, or neither")

    @property
    def has_test(self) -> bool:
        """Whether the dataset ships its own test split."""
        return self.X_test is not None


@dataclass(frozen=True)
class Dataset:
    """Train/val/test splits plus what models need to know about the inputs (features are
    float32 matrices, or DataFrames of raw table rows)."""

    name: str
    task: Task
    input_spec: InputSpec
    X_train: Any
    y_train: np.ndarray
    X_val: Any
    y_val: np.ndarray
    X_test: Any
    y_test: np.ndarray
    fingerprint: str
    log_target: bool = False
    notes: tuple[str, ...] = ()
    # bagged (runner.folds=K): the fold 0..K-1 of each training row; the training and
    # validation rows are then one pool (X_val is X_train), each fold held out once
    folds: np.ndarray | None = field(default=None, repr=False)

    def sizes(self) -> dict[str, int]:
        """Rows per split (bagged: the pooled rows, each predicted out of fold, and K)."""
        out = {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}
        if self.folds is not None:
            out["folds"] = int(self.folds.max()) + 1
        return out

    def fit_rows(self, fold: int | None) -> tuple[tuple[Any, np.ndarray], tuple[Any, np.ndarray]]:
        """The (training, validation) rows a member fits on: the two splits, or, for fold
        ``fold`` of a bagged dataset, the other folds and that fold."""
        if fold is None:
            return (self.X_train, self.y_train), (self.X_val, self.y_val)
        if self.folds is None:
            raise ValueError(f"fold {fold} asked of a dataset that is not bagged")
        held = self.folds == fold
        rest, out = np.flatnonzero(~held), np.flatnonzero(held)
        return (
            (take(self.X_train, rest), self.y_train[rest]),
            (take(self.X_train, out), self.y_train[out]),
        )


def take(X: Any, rows: np.ndarray) -> Any:
    """The ``rows`` (positions) of a feature matrix or a table, a table renumbered 0..n-1."""
    if isinstance(X, pd.DataFrame):
        return X.iloc[rows].reset_index(drop=True)
    return X[rows]


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` of an exception from a library."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0].strip()}" if lines else type(err).__name__


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` expanded, made absolute against the current working directory."""
    return Path(path).expanduser().resolve()
