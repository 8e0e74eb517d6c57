"""Rows and splits: keep classes, cap rows, split train/val/test (seeded, stratified) and
fingerprint the exact split."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from models.base import Task
from runner.data.types import Dataset, Raw, take


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
        return take(X, np.flatnonzero(keep)), new[keep]

    X, y = subset(raw.X, raw.y)
    X_test, y_test = subset(raw.X_test, raw.y_test) if raw.has_test else (None, None)
    return replace(
        raw,
        X=X,
        y=y,
        X_test=X_test,
        y_test=y_test,
        task=Task(
            "classification",
            n_classes=len(classes),
            labels=None if raw.task.labels is None else tuple(raw.task.labels[c] for c in classes),
        ),
    )


MIN_CLASS_ROWS = 3  # a stratified train/validation/test split needs a row of each class in each
MIN_TRAIN_CLASS_ROWS = 1  # a member cannot learn a class it has no training row of


def _proportional(counts: np.ndarray, n: int) -> np.ndarray:
    """Rows per class in a sample of ``n``, in proportion to ``counts`` (largest remainders
    get the rows left over; ties go to the earlier class)."""
    exact = counts * (n / counts.sum())
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - int(quota.sum())]] += 1
    return quota


def _quota(counts: np.ndarray, n: int, floor: int) -> np.ndarray:
    """Rows per class in proportion, each raised to ``min(count, floor)`` with rows from
    the class with the most to spare (``n`` must cover those minimums)."""
    quota = _proportional(counts, n)
    need = np.minimum(counts, floor)
    for i in np.flatnonzero(quota < need):
        while quota[i] < need[i]:
            quota[int(np.argmax(quota - need))] -= 1
            quota[i] += 1
    return quota


def class_floor_error(
    y: np.ndarray, n: int, floor: int, labels: Sequence[str] | None
) -> tuple[str, int] | None:
    """Why a stratified sample of ``n`` rows cannot keep ``min(count, floor)`` rows of every
    class (naming the class that would be shortest), and the least ``n`` that can; or None."""
    values, counts = np.unique(y, return_counts=True)
    need = np.minimum(counts, floor)
    if n >= need.sum():
        return None
    quota = _proportional(counts, n)
    worst = int(np.argmin(quota - need))
    name = labels[values[worst]] if labels else str(values[worst])
    why = f"keeps {quota[worst]} row(s) of class {name!r}, fewer than the {need[worst]} it needs"
    return why, int(need.sum())


def subsample(
    y: np.ndarray, n: int, stratify: bool, rng: np.random.Generator, floor: int = 0
) -> np.ndarray:
    """Sorted indices of ``n`` rows drawn without replacement, per class in proportion, each
    class keeping at least ``min(its rows, floor)``."""
    if n >= len(y):
        return np.arange(len(y))
    if not stratify:
        return np.sort(rng.choice(len(y), size=n, replace=False))
    labels, counts = np.unique(y, return_counts=True)
    quota = _quota(counts, n, floor)
    picks = [
        rng.choice(np.flatnonzero(y == label), size=int(q), replace=False)
        for label, q in zip(labels, quota, strict=True)
    ]
    return np.sort(np.concatenate(picks))


def cap_rows(raw: Raw, max_rows: int | None, seed: int, name: str, at_least: int = 0) -> Raw:
    """At most ``max_rows`` rows (stratified for classification, seeded), split-wise in
    proportion when the dataset has its own test split; ``at_least`` is the fewest rows the
    split after it takes, said in the advice when the classes' floors fail."""
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
    if strat and (short := class_floor_error(raw.y, k_main, MIN_CLASS_ROWS, raw.task.labels)):
        least = max(int(np.ceil(short[1] * (n_main + n_test) / n_main)), at_least)
        raise ValueError(
            f"{name}: data.max_rows={max_rows} {short[0]} (every class needs "
            f"{MIN_CLASS_ROWS} rows for train, validation and test); raise data.max_rows (to "
            f"{least} at the very least)"
        )
    keep = subsample(raw.y, k_main, strat, rng, MIN_CLASS_ROWS)
    out = replace(raw, X=take(raw.X, keep), y=raw.y[keep])
    if raw.has_test:
        keep_test = subsample(raw.y_test, max_rows - k_main, strat, rng)
        out = replace(out, X_test=take(raw.X_test, keep_test), y_test=raw.y_test[keep_test])
    return out


def fingerprint(name: str, parts: dict[str, tuple[object, np.ndarray]]) -> str:
    """Short hash of the dataset name and every split's features and targets (a table's
    column names and cells included)."""
    h = hashlib.sha256(name.encode())
    for split in sorted(parts):
        X, y = parts[split]
        h.update(split.encode())
        if isinstance(X, pd.DataFrame):
            h.update("\x00".join(map(str, X.columns)).encode())
            h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
        else:
            h.update(np.ascontiguousarray(X).tobytes())
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


MIN_SPLIT_ROWS = 5


def least_rows(n_classes: int, val_fraction: float, test_fraction: float) -> int:
    """The fewest rows a stratified three-way split of ``n_classes`` classes takes: every
    split (sized as scikit-learn's ``train_test_split`` sizes them) needs a row per class."""
    size = val_fraction / (1.0 - test_fraction)  # of the rest, as ``split`` asks for it
    # below this the smaller split cannot hold a row per class
    n = max(n_classes, int((n_classes - 1) / min(test_fraction, val_fraction)))
    while True:
        test = math.ceil(test_fraction * n)
        val = math.ceil(size * (n - test))
        if min(test, val, n - test - val) >= n_classes:
            return n
        n += 1


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
        test = np.arange(len(raw.y_test))
    else:
        rest, test = train_test_split(
            idx, test_size=test_fraction, random_state=seed, stratify=strat
        )
        strat_rest = raw.y[rest] if strat is not None else None
        train, val = train_test_split(
            rest,
            test_size=val_fraction / (1.0 - test_fraction),
            random_state=seed,
            stratify=strat_rest,
        )
    if strat is not None:
        train, val, test = _a_row_of_each_class(raw.y, train, val, None if raw.has_test else test)
        if raw.has_test:
            test = np.arange(len(raw.y_test))
    sizes = {"training": len(train), "validation": len(val), "test": len(test)}
    if strat is None and min(sizes.values()) < MIN_SPLIT_ROWS:  # classes are checked apart
        raise ValueError(
            f"{', '.join(f'{n} {k}' for k, n in sizes.items())} rows, and each split needs "
            f"at least {MIN_SPLIT_ROWS}: a larger table, or other data.val_fraction and "
            "data.test_fraction"
        )
    return train, val, test


def _a_row_of_each_class(
    y: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The splits with a row of every class of enough rows in each (``test``: None when the
    dataset brings its own). A stratified split rounds a class of 3 rows to 2/0/1 at times:
    a row of it moves from the split that has most of it, in exchange for a row of the class
    the receiving split has most of, so that every split keeps its size."""
    parts = [np.array(train), np.array(val)] + ([] if test is None else [np.array(test)])
    classes, counts = np.unique(y, return_counts=True)
    for c in classes[counts >= len(parts)]:
        for i in range(len(parts)):
            if (y[parts[i]] == c).any():
                continue
            held = [int((y[part] == c).sum()) for part in parts]
            j = int(np.argmax(held))
            if held[j] < 2:
                continue
            give = int(np.flatnonzero(y[parts[j]] == c)[-1])
            have, have_counts = np.unique(y[parts[i]], return_counts=True)
            spare = [k for k in np.argsort(-have_counts, kind="stable") if have_counts[k] > 1]
            if not spare:
                continue
            take_back = int(np.flatnonzero(y[parts[i]] == have[spare[0]])[-1])
            parts[i][take_back], parts[j][give] = parts[j][give], parts[i][take_back]
    if test is None:
        return parts[0], parts[1], None
    return parts[0], parts[1], parts[2]


def assign_folds(
    y: np.ndarray,
    k: int,
    classification: bool,
    seed: int,
    labels: tuple[str, ...] | None = None,
) -> np.ndarray:
    """The fold (0..k-1) of each row: shuffled with ``seed``, stratified by class; a class
    with fewer rows than folds fails in one line (naming it by ``labels`` when given)."""
    if classification:
        counts = np.bincount(y)
        present = np.flatnonzero(counts)
        smallest = present[np.argmin(counts[present])]
        if counts[smallest] < k:
            name = repr(labels[smallest]) if labels else str(smallest)
            raise ValueError(
                f"class {name} has {counts[smallest]} row(s) in the training and validation "
                f"splits, fewer than the {k} folds; lower runner.folds"
            )
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        if len(y) < 2 * k:
            raise ValueError(f"{len(y)} rows cannot fill {k} folds; lower runner.folds")
        splitter = KFold(k, shuffle=True, random_state=seed)
    folds = np.empty(len(y), dtype=np.int64)
    for i, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y)):
        folds[held] = i
    return folds


def bagged(data: Dataset, k: int, seed: int) -> Dataset:
    """``data`` for bagging over ``k`` folds: the training and validation rows pooled and
    assigned to folds, so each member's out-of-fold predictions cover every pooled row; the
    test rows stay untouched. The fingerprint names the folds too."""
    if isinstance(data.X_train, pd.DataFrame):
        X = pd.concat([data.X_train, data.X_val], ignore_index=True)
    else:
        X = np.concatenate([data.X_train, data.X_val])
    y = np.concatenate([data.y_train, data.y_val])
    folds = assign_folds(y, k, data.task.is_classification, seed, data.task.labels)
    digest = hashlib.sha256(f"{data.fingerprint}|folds={k}|".encode() + folds.tobytes())
    return replace(
        data,
        X_train=X,
        y_train=y,
        X_val=X,
        y_val=y,
        folds=folds,
        fingerprint=digest.hexdigest()[:16],
    )


def _row_keys(X: object, columns: Sequence[str] | None) -> np.ndarray:
    """A hash per row of ``X``: of the table's ``columns`` (named as text; numbers as float64,
    the rest as text, so 1 and 1.0 hash alike), or of the whole array row."""
    if isinstance(X, pd.DataFrame):
        named = {str(c): c for c in X.columns}
        cells = {}
        for name in columns or []:
            values = X[named[name]]
            numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(
                values
            )
            cells[name] = values.astype(np.float64) if numeric else values.astype(str)
        return pd.util.hash_pandas_object(pd.DataFrame(cells), index=False).to_numpy()
    rows = np.ascontiguousarray(X).reshape(len(X), -1)
    return pd.util.hash_array(
        rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    )


def held_out_of(stage: Dataset, final: Dataset) -> tuple[Dataset, int]:
    """A stage's dataset without the rows (found by their features) that the final members
    are validated and tested on: a stage's member, the base of a transfer member, would
    otherwise have learnt them (a stage on all of digits' classes and a final task on two
    draws other splits), and the final validation and test scores would flatter it. Also how
    many rows were taken out. Tables are matched on their shared columns when the two differ
    by at most their targets; features of another shape, other columns or of objects are
    left alone. ValueError when no training or validation row would be left."""
    tables = [isinstance(X, pd.DataFrame) for X in (stage.X_train, final.X_val)]
    if all(tables):
        ours, theirs = (set(map(str, X.columns)) for X in (stage.X_train, final.X_val))
        columns: list[str] | None = sorted(ours & theirs)
        if not columns or len(ours ^ theirs) > 2:  # each may hold the other's target
            return stage, 0
    elif any(tables) or np.asarray(stage.X_train).dtype == object:
        return stage, 0
    else:
        columns = None
        if np.shape(stage.X_train)[1:] != np.shape(final.X_val)[1:]:
            return stage, 0
    seen = np.concatenate([_row_keys(final.X_val, columns), _row_keys(final.X_test, columns)])
    keep_train = ~np.isin(_row_keys(stage.X_train, columns), seen)
    keep_val = ~np.isin(_row_keys(stage.X_val, columns), seen)
    removed = int((~keep_train).sum() + (~keep_val).sum())
    if not removed:
        return stage, 0
    if not keep_train.any() or not keep_val.any():
        split = "training" if not keep_train.any() else "validation"
        raise ValueError(
            f"every {split} row of the stage is one the experiment validates or tests on; "
            "give the stage data of its own"
        )
    train, val = np.flatnonzero(keep_train), np.flatnonzero(keep_val)
    parts = {
        "train": (take(stage.X_train, train), stage.y_train[train]),
        "val": (take(stage.X_val, val), stage.y_val[val]),
        "test": (stage.X_test, stage.y_test),
    }
    out = replace(
        stage,
        X_train=parts["train"][0],
        y_train=parts["train"][1],
        X_val=parts["val"][0],
        y_val=parts["val"][1],
        fingerprint=fingerprint(stage.name, parts),
    )
    return out, removed
