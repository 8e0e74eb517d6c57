"""Datasets: load from libraries or local paths, split train/val/test (seeded), fingerprint.

The fingerprint names the exact split, so predictions from different splits are never mixed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from models.base import InputSpec, Task
from runner.spec import DataSpec


@dataclass(frozen=True)
class Raw:
    """A loaded dataset before splitting.

    ``X_test``/``y_test`` are set when the dataset ships its own test split (Fashion-MNIST);
    then only ``X``/``y`` are split into train and validation.
    """

    X: np.ndarray
    y: np.ndarray
    task: Task
    image_shape: tuple[int, int, int] | None = None
    feature_names: tuple[str, ...] | None = None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@dataclass(frozen=True)
class Dataset:
    """Train/val/test splits plus what models need to know about the inputs."""

    name: str
    task: Task
    input_spec: InputSpec
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    fingerprint: str

    def sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def _load_digits(spec: DataSpec) -> Raw:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Raw(
        X=bunch.data.astype(np.float32),
        y=bunch.target.astype(np.int64),
        task=Task("classification", n_classes=10),
        image_shape=(8, 8, 1),
        feature_names=tuple(bunch.feature_names),
    )


LOADERS: dict[str, Callable[[DataSpec], Raw]] = {
    "digits": _load_digits,
}


def fingerprint(name: str, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Short hash of the dataset name and every split's features and targets."""
    h = hashlib.sha256(name.encode())
    for split in sorted(parts):
        X, y = parts[split]
        h.update(split.encode())
        h.update(np.ascontiguousarray(X).tobytes())
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


def split(raw: Raw, val_fraction: float, test_fraction: float, seed: int) -> tuple:
    """Seeded train/val/test split, stratified for classification."""
    idx = np.arange(len(raw.y))
    strat = raw.y if raw.task.is_classification else None
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=strat)
    strat_rest = raw.y[rest] if strat is not None else None
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1.0 - test_fraction),
        random_state=seed,
        stratify=strat_rest,
    )
    return train, val, test


def load(spec: DataSpec) -> Dataset:
    """Load and split the dataset ``spec`` names; raises ValueError for an unknown dataset."""
    name, val_fraction, test_fraction, seed = (
        spec.name,
        spec.val_fraction,
        spec.test_fraction,
        spec.seed,
    )
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")
    raw = LOADERS[name](spec)
    train, val, test = split(raw, val_fraction, test_fraction, seed)
    X_train = raw.X[train]
    parts = {s: (raw.X[i], raw.y[i]) for s, i in (("train", train), ("val", val), ("test", test))}
    return Dataset(
        name=name,
        task=raw.task,
        input_spec=InputSpec(
            n_features=raw.X.shape[1],
            image_shape=raw.image_shape,
            feature_names=raw.feature_names,
            mean=X_train.mean(axis=0),
            # constant features keep unit scale, as StandardScaler does; otherwise a pixel
            # that is always 0 in train would be divided by ~0 on val/test
            variance=np.where(X_train.var(axis=0) > 0, X_train.var(axis=0), 1.0),
        ),
        X_train=X_train,
        y_train=raw.y[train],
        X_val=raw.X[val],
        y_val=raw.y[val],
        X_test=raw.X[test],
        y_test=raw.y[test],
        fingerprint=fingerprint(name, parts),
    )
