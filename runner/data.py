"""Datasets: load from libraries or local paths, split train/val/test (seeded), fingerprint.

The fingerprint names the exact split, so predictions from different splits are never mixed.

Loaders (``LOADERS``) take the whole ``DataSpec`` and return a ``Raw``: features as float32,
classification labels as int64 in 0..k-1, regression targets as float64. ``load`` then keeps
``spec.classes``, caps ``spec.max_rows`` and splits. Local paths are resolved against the
current working directory. No loader downloads anything, and none imports TensorFlow/Keras:
the driver stays TensorFlow-free.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
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

    def __post_init__(self) -> None:
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError("Raw needs both X_test and y_test, or neither")

    @property
    def has_test(self) -> bool:
        """Whether the dataset ships its own test split."""
        return self.X_test is not None


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


def _one_line(err: BaseException) -> str:
    """``Type: first line of the message`` of an exception from a library."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0].strip()}" if lines else type(err).__name__


def _resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` expanded, made absolute against the current working directory."""
    return Path(path).expanduser().resolve()


def _load_digits(spec: DataSpec) -> Raw:
    """scikit-learn's 8x8 digits (ships inside scikit-learn)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Raw(
        X=bunch.data.astype(np.float32),
        y=bunch.target.astype(np.int64),
        task=Task("classification", n_classes=10),
        image_shape=(8, 8, 1),
        feature_names=tuple(bunch.feature_names),
    )


# ---------------------------------------------------------------------------- Fashion-MNIST

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes, the only one Fashion-MNIST uses


def keras_fashion_dirs() -> list[Path]:
    """Where ``keras.datasets.fashion_mnist.load_data()`` caches its files, as Keras decides.

    ``$KERAS_HOME`` (default ``~/.keras``, or ``/tmp/.keras`` when home is not writable), and
    ``/tmp/.keras`` too when that base is not writable (Keras' ``get_file`` falls back there).
    """
    if "KERAS_HOME" in os.environ:
        base = Path(os.environ["KERAS_HOME"]).expanduser()
    else:
        home = Path("~").expanduser()
        base = (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"
    bases = [base]
    if not os.access(base, os.W_OK) and base != Path("/tmp/.keras"):
        bases.append(Path("/tmp/.keras"))
    return [b / "datasets" / "fashion-mnist" for b in bases]


def read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes as a uint8 array of the shape its header gives."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read IDX file {path}: {_one_line(err)}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != IDX_UBYTE or data[3] == 0:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (header {data[:4]!r})")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise ValueError(f"{path} is truncated: its IDX header promises {ndim} dimensions")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    values = np.frombuffer(data, np.uint8, offset=offset)
    if values.size != int(np.prod(dims)):
        raise ValueError(f"{path} holds {values.size} values, its header says {dims}")
    return values.reshape(dims)


def _fashion_folder(spec: DataSpec) -> Path:
    """The folder holding the four Fashion-MNIST files: ``spec.path`` or Keras' cache."""
    tried = [_resolve(spec.path)] if spec.path is not None else keras_fashion_dirs()
    for folder in tried:
        if all((folder / f).is_file() for f in FASHION_FILES.values()):
            return folder
    where = ", ".join(str(f) for f in tried)
    got = f"data.path={spec.path!r}" if spec.path is not None else "data.path=null"
    raise ValueError(
        f"fashion_mnist: the four IDX files ({', '.join(FASHION_FILES.values())}) are not in "
        f"{where} ({got}); pass data.path=FOLDER holding them "
        "(this loader does not download)"
    )


def _load_fashion_mnist(spec: DataSpec) -> Raw:
    """Fashion-MNIST from its IDX files: 60k train + the official 10k test, 28x28 grey."""
    folder = _fashion_folder(spec)
    arrays = {key: read_idx(folder / name) for key, name in FASHION_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise ValueError(
                f"fashion_mnist: {part} images {images.shape} and labels {labels.shape} in "
                f"{folder} are not (n, 28, 28) and (n,)"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(f"fashion_mnist: {part} labels in {folder} go above 9")
    return Raw(
        X=arrays["train_images"].reshape(-1, 784).astype(np.float32),
        y=arrays["train_labels"].astype(np.int64),
        task=Task("classification", n_classes=10),
        image_shape=(28, 28, 1),
        feature_names=tuple(f"pixel_{r}_{c}" for r in range(28) for c in range(28)),
        X_test=arrays["test_images"].reshape(-1, 784).astype(np.float32),
        y_test=arrays["test_labels"].astype(np.int64),
    )


# ----------------------------------------------------------------------- California housing

CALIFORNIA_FEATURES = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)
CALIFORNIA_FILE = "cal_housing.data"
# StatLib's column order (longitude, latitude, housingMedianAge, totalRooms, totalBedrooms,
# population, households, medianIncome, medianHouseValue) -> scikit-learn's cached order
CALIFORNIA_COLUMNS = [8, 7, 2, 3, 4, 5, 6, 1, 0]


def california_from_statlib(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's float64 X, y computed from StatLib's raw ``cal_housing.data``."""
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as err:
        raise ValueError(f"california_housing: cannot read {path}: {_one_line(err)}") from None
    if table.shape[1] != 9:
        raise ValueError(
            f"california_housing: {path} has {table.shape[1]} columns, expected the 9 of "
            f"StatLib's {CALIFORNIA_FILE}"
        )
    # the same operations, in the same order, as sklearn.datasets.fetch_california_housing
    table = table[:, CALIFORNIA_COLUMNS]
    target, data = table[:, 0], table[:, 1:]
    data[:, 2] /= data[:, 5]  # AveRooms = totalRooms / households
    data[:, 3] /= data[:, 5]  # AveBedrms = totalBedrooms / households
    data[:, 5] = data[:, 4] / data[:, 5]  # AveOccup = population / households
    return data, target / 100000.0  # MedHouseVal in units of $100,000


def _load_california_housing(spec: DataSpec) -> Raw:
    """California housing as scikit-learn's ``fetch_california_housing`` gives it; regression.

    ``data.path`` may be StatLib's ``cal_housing.data`` or a folder holding it (computed from
    the raw file, nothing cached); a folder without it is used as scikit-learn's ``data_home``.
    Without a path scikit-learn's default data home is read. Nothing is downloaded.
    """
    path = _resolve(spec.path) if spec.path is not None else None
    if path is not None and path.is_dir() and (path / CALIFORNIA_FILE).is_file():
        path = path / CALIFORNIA_FILE
    if path is not None and path.is_file():
        X, y = california_from_statlib(path)
    elif path is not None and not path.exists():
        raise ValueError(
            f"california_housing: data.path={spec.path!r} does not exist (resolved to {path}); "
            f"pass data.path=.../{CALIFORNIA_FILE}"
        )
    else:
        from sklearn.datasets import fetch_california_housing, get_data_home

        data_home = None if path is None else str(path)
        try:
            X, y = fetch_california_housing(
                data_home=data_home, download_if_missing=False, return_X_y=True
            )
        except Exception as err:  # any failure means: not usable offline
            raise ValueError(
                f"california_housing: not in scikit-learn's data home "
                f"{get_data_home(data_home)} ({_one_line(err)}); "
                f"pass data.path=.../{CALIFORNIA_FILE} (the StatLib file)"
            ) from None
    return Raw(
        X=np.asarray(X, dtype=np.float32),
        y=np.asarray(y, dtype=np.float64),
        task=Task("regression"),
        feature_names=CALIFORNIA_FEATURES,
    )


# ------------------------------------------------------------------------------------- CSV

MAX_CLASSES_INFERRED = 20  # an integer target with at most this many values (and < 5%) ...
MAX_CLASS_SHARE = 0.05  # ... of the rows is inferred to be a class label
MAX_CATEGORIES = 1000  # a categorical feature with more distinct values is rejected
PARQUET_SUFFIXES = (".parquet", ".pq")


def _columns_list(columns: Sequence[object], limit: int = 30) -> str:
    """Comma-separated column names, cut after ``limit``."""
    names = [str(c) for c in columns]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _read_table(spec: DataSpec) -> tuple[Path, pd.DataFrame]:
    """The CSV or Parquet file ``spec.path`` names, as a DataFrame."""
    if spec.path is None:
        raise ValueError("csv: data.path is required, got null; pass data.path=FILE.csv")
    path = _resolve(spec.path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"csv: data.path={spec.path!r} {what} (resolved to {path})")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        else:
            sep = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
            frame = pd.read_csv(path, sep=sep)
    except Exception as err:  # pandas and pyarrow raise many types
        raise ValueError(f"csv: cannot read {path}: {_one_line(err)}") from None
    if frame.empty:
        raise ValueError(f"csv: {path} has no data rows")
    return path, frame


def _is_integral(values: pd.Series) -> bool:
    """Integer dtype, or floats that are all whole numbers (ints become floats next to NaN)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return True
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype=np.float64)
        return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    return False


def _is_numeric(values: pd.Series) -> bool:
    """Numbers (ints or floats), not booleans."""
    dtype = values.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _is_categorical(values: pd.Series) -> bool:
    """Strings, objects, pandas categoricals or booleans: one-hot encoded as features."""
    dtype = values.dtype
    return (
        pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def infer_task(target: pd.Series) -> str:
    """'classification' for a non-numeric target or an integer one with few distinct values."""
    if not _is_numeric(target):
        return "classification"
    n_values = target.nunique()
    few = n_values <= MAX_CLASSES_INFERRED and n_values < MAX_CLASS_SHARE * len(target)
    return "classification" if few and _is_integral(target) else "regression"


def _encode_target(target: pd.Series, kind: str, column: str) -> tuple[np.ndarray, Task]:
    """Labels 0..k-1 (sorted values) for classification, float64 values for regression."""
    if kind == "regression":
        if not _is_numeric(target):
            raise ValueError(
                f"csv: target column {column!r} has dtype {target.dtype}, which is not numeric; "
                "data.task=regression needs numbers"
            )
        y = target.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"csv: target column {column!r} has infinite values")
        return y, Task("regression")
    try:
        codes, values = pd.factorize(target, sort=True)
    except TypeError as err:
        raise ValueError(
            f"csv: target column {column!r} cannot be encoded as class labels ({_one_line(err)})"
        ) from None
    if len(values) < 2:
        raise ValueError(
            f"csv: target column {column!r} has {len(values)} distinct value(s); "
            "classification needs 2 or more"
        )
    return codes.astype(np.int64), Task("classification", n_classes=len(values))


def _row_number(frame: pd.DataFrame, position: int) -> object:
    """1-based data row (header not counted) of the row at ``position`` in ``frame``."""
    label = frame.index[position]
    return int(label) + 1 if isinstance(label, (int, np.integer)) else label


def _encode_features(frame: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """Numeric columns as float32, categorical ones one-hot (``pandas.get_dummies``)."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for column in frame.columns:
        values = frame[column]
        name = str(column)
        if _is_numeric(values) and not pd.api.types.is_complex_dtype(values.dtype):
            block = values.to_numpy(dtype=np.float64, na_value=np.nan)
            missing = np.isnan(block)
            if missing.any():
                raise ValueError(
                    f"csv: numeric column {name!r} has {int(missing.sum())} missing value(s) "
                    f"(first in data row {_row_number(frame, np.flatnonzero(missing)[0])}); "
                    "fill or drop them first (this loader does not impute)"
                )
            block = block.astype(np.float32)
            if not np.all(np.isfinite(block)):
                raise ValueError(
                    f"csv: numeric column {name!r} has infinite values or values beyond float32"
                )
            blocks.append(block[:, None])
            names.append(name)
        elif _is_categorical(values):
            try:
                n_values = values.nunique(dropna=True)
                if n_values > MAX_CATEGORIES:
                    raise ValueError(
                        f"csv: categorical column {name!r} has {n_values} distinct values, more "
                        f"than {MAX_CATEGORIES} to one-hot encode; drop it or encode it yourself"
                    )
                onehot = pd.get_dummies(
                    values,
                    prefix=name,
                    prefix_sep="=",
                    dummy_na=bool(values.isna().any()),
                    dtype=np.float32,
                )
            except TypeError as err:
                raise ValueError(
                    f"csv: column {name!r} cannot be one-hot encoded ({_one_line(err)}); "
                    "drop or convert it"
                ) from None
            blocks.append(onehot.to_numpy(dtype=np.float32))
            names.extend(str(c) for c in onehot.columns)
        else:
            raise ValueError(
                f"csv: column {name!r} has dtype {values.dtype}, which cannot be encoded as "
                "features; drop or convert it"
            )
    return np.hstack(blocks).astype(np.float32, copy=False), tuple(names)


def _load_csv(spec: DataSpec) -> Raw:
    """Any CSV (``.tsv``: tab-separated) or Parquet (``.parquet``/``.pq``) file.

    ``data.target`` names the target column; ``data.task`` is 'classification', 'regression'
    or null to infer it (a non-numeric target, or an integer one with <= 20 distinct values
    that are < 5% of the rows, is a class label; otherwise regression). Rows with a missing
    target are dropped. Numeric features become float32; a missing (or infinite) numeric value
    fails naming its column: nothing is imputed, so no statistic leaks across the splits.
    Categorical features (object, string, category or bool dtype) are one-hot encoded with
    ``pandas.get_dummies`` into columns named ``column=value`` (plus ``column=nan`` when values
    are missing); more than 1000 categories, or any other dtype, fails naming the column. Class
    labels are encoded 0..k-1 in sorted order of their values (``data.classes`` uses these ids).
    """
    path, frame = _read_table(spec)
    columns = [str(c) for c in frame.columns]
    if spec.target is None:
        raise ValueError(
            f"csv: data.target is required, got null; columns of {path.name}: "
            f"{_columns_list(columns)}"
        )
    target = str(spec.target)
    if target not in columns:
        raise ValueError(
            f"csv: target column {target!r} is not in {path.name}; available columns: "
            f"{_columns_list(columns)}"
        )
    frame.columns = columns
    if columns.count(target) > 1:
        raise ValueError(f"csv: {path.name} has more than one column named {target!r}")
    frame = frame[frame[target].notna()]  # keeps the file's row numbers for messages
    if frame.empty:
        raise ValueError(f"csv: every row of {path.name} misses the target {target!r}")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise ValueError(f"csv: {path.name} has no feature columns besides the target {target!r}")
    if spec.task is not None and spec.task not in ("classification", "regression"):
        raise ValueError(
            f"csv: data.task must be classification, regression or null, got {spec.task!r}"
        )
    kind = spec.task or infer_task(frame[target])
    y, task = _encode_target(frame[target], kind, target)
    X, names = _encode_features(features)
    return Raw(X=X, y=y, task=task, feature_names=names)


LOADERS: dict[str, Callable[[DataSpec], Raw]] = {
    "california_housing": _load_california_housing,
    "csv": _load_csv,
    "digits": _load_digits,
    "fashion_mnist": _load_fashion_mnist,
}


# ------------------------------------------------------------------ classes, rows, splits


def keep_classes(raw: Raw, classes: Sequence[int] | None, name: str) -> Raw:
    """Keep the rows labelled with one of ``classes``, relabelled 0..k-1 in the list's order."""
    if classes is None:
        return raw
    classes = list(classes)
    if not raw.task.is_classification:
        raise ValueError(
            f"{name}: data.classes={classes} applies to classification only; "
            f"{name!r} is a regression task"
        )
    n = raw.task.n_classes
    bad = [
        c
        for c in classes
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n
    ]
    if bad or len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(
            f"{name}: data.classes must list two or more distinct class ids in 0..{n - 1}, "
            f"got {classes}"
        )
    lookup = np.full(n, -1, dtype=np.int64)
    lookup[classes] = np.arange(len(classes))

    def subset(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = lookup[y]
        keep = new >= 0
        return X[keep], new[keep]

    X, y = subset(raw.X, raw.y)
    X_test, y_test = subset(raw.X_test, raw.y_test) if raw.has_test else (None, None)
    return replace(
        raw,
        X=X,
        y=y,
        X_test=X_test,
        y_test=y_test,
        task=Task("classification", n_classes=len(classes)),
    )


def subsample(y: np.ndarray, n: int, stratify: bool, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n`` rows drawn without replacement, per class in proportion."""
    if n >= len(y):
        return np.arange(len(y))
    if not stratify:
        return np.sort(rng.choice(len(y), size=n, replace=False))
    labels, counts = np.unique(y, return_counts=True)
    exact = counts * (n / len(y))
    quota = np.floor(exact).astype(np.int64)
    # largest remainders get the rows left over; ties go to the earlier class
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - int(quota.sum())]] += 1
    picks = [
        rng.choice(np.flatnonzero(y == label), size=int(q), replace=False)
        for label, q in zip(labels, quota, strict=True)
    ]
    return np.sort(np.concatenate(picks))


def cap_rows(raw: Raw, max_rows: int | None, seed: int, name: str) -> Raw:
    """At most ``max_rows`` rows (stratified for classification, seeded), split-wise in
    proportion when the dataset has its own test split."""
    if max_rows is None:
        return raw
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise ValueError(f"{name}: data.max_rows must be an integer >= 1, got {max_rows!r}")
    n_main = len(raw.y)
    n_test = len(raw.y_test) if raw.has_test else 0
    if max_rows >= n_main + n_test:
        return raw
    rng = np.random.default_rng(seed)
    strat = raw.task.is_classification
    k_main = int(round(max_rows * n_main / (n_main + n_test)))
    keep = subsample(raw.y, k_main, strat, rng)
    out = replace(raw, X=raw.X[keep], y=raw.y[keep])
    if raw.has_test:
        keep_test = subsample(raw.y_test, max_rows - k_main, strat, rng)
        out = replace(out, X_test=raw.X_test[keep_test], y_test=raw.y_test[keep_test])
    return out


def fingerprint(name: str, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Short hash of the dataset name and every split's features and targets."""
    h = hashlib.sha256(name.encode())
    for split in sorted(parts):
        X, y = parts[split]
        h.update(split.encode())
        h.update(np.ascontiguousarray(X).tobytes())
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


def split(
    raw: Raw, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/val/test indices, stratified for classification.

    When ``raw`` has its own test split, only ``X``/``y`` are split (``val_fraction`` of them
    to validation), ``test_fraction`` is ignored and the test indices index ``raw.X_test``.
    """
    idx = np.arange(len(raw.y))
    strat = raw.y if raw.task.is_classification else None
    if raw.has_test:
        train, val = train_test_split(
            idx, test_size=val_fraction, random_state=seed, stratify=strat
        )
        return train, val, np.arange(len(raw.y_test))
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
    raw = cap_rows(raw, spec.max_rows, seed, name)
    try:
        train, val, test = split(raw, val_fraction, test_fraction, seed)
    except ValueError as err:
        hint = "; raise data.max_rows" if spec.max_rows is not None else ""
        raise ValueError(
            f"{name}: cannot split {len(raw.y)} rows into train/val/test ({_one_line(err)}){hint}"
        ) from None
    if spec.max_train_rows is not None and spec.max_train_rows < len(train):
        # few labelled examples (transfer learning's case); val and test keep their size
        rng = np.random.default_rng(seed)
        keep = subsample(raw.y[train], spec.max_train_rows, raw.task.is_classification, rng)
        train = train[keep]
    X_all_test, y_all_test = (raw.X_test, raw.y_test) if raw.has_test else (raw.X, raw.y)
    X_train = raw.X[train]
    parts = {
        "train": (X_train, raw.y[train]),
        "val": (raw.X[val], raw.y[val]),
        "test": (X_all_test[test], y_all_test[test]),
    }
    if raw.image_shape is not None:
        # images: one mean and variance for every pixel, so standardising keeps the picture
        # (per-pixel statistics would rescale each pixel differently and distort edges)
        mean = np.full(X_train.shape[1], X_train.mean(), dtype=np.float64)
        variance = np.full(X_train.shape[1], X_train.var(), dtype=np.float64)
    else:
        mean, variance = X_train.mean(axis=0), X_train.var(axis=0)
    return Dataset(
        name=name,
        task=raw.task,
        input_spec=InputSpec(
            n_features=raw.X.shape[1],
            image_shape=raw.image_shape,
            feature_names=raw.feature_names,
            mean=mean,
            # constant features keep unit scale, as StandardScaler does; otherwise a pixel
            # that is always 0 in train would be divided by ~0 on val/test
            variance=np.where(variance > 0, variance, 1.0),
        ),
        X_train=X_train,
        y_train=parts["train"][1],
        X_val=parts["val"][0],
        y_val=parts["val"][1],
        X_test=parts["test"][0],
        y_test=parts["test"][1],
        fingerprint=fingerprint(name, parts),
    )
