"""Any CSV (``.tsv``: tab-separated) or Parquet table with a target column."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.base import Task
from runner.data.types import DataSpec, Raw, one_line, resolve

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
    path = resolve(spec.path)
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
        raise ValueError(f"csv: cannot read {path}: {one_line(err)}") from None
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
            f"csv: target column {column!r} cannot be encoded as class labels ({one_line(err)})"
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
                    f"csv: column {name!r} cannot be one-hot encoded ({one_line(err)}); "
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


def load_table(spec: DataSpec) -> Raw:
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
