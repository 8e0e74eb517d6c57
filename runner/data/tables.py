"""Any CSV (``.tsv``: tab-separated) or Parquet table with a target column."""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.base import Task
from models.tabular import (
    DECIMAL_COMMA_ATTR,
    DECIMAL_COMMA_NUMBER,
    MIN_ID_ROWS,
    NUMERIC_TEXT_SHARE,
    THOUSANDS_DOTS_ATTR,
    numbers_from_text,
)
from runner.data.split import MIN_CLASS_ROWS
from runner.data.types import DataSpec, Raw, one_line, resolve

MAX_CLASSES_INFERRED = 20  # an integer target with at most this many values (and < 5%) ...
MAX_CLASS_SHARE = 0.05  # ... of the rows is inferred to be a class label
PARQUET_SUFFIXES = (".parquet", ".pq")


def _columns_list(columns: Sequence[object], limit: int = 30) -> str:
    """Comma-separated column names, cut after ``limit``."""
    names = [str(c) for c in columns]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


SEPARATORS = (",", ";", "\t", "|")  # ties go to the first
SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}  # data.sep's words
# 12,5 or 1.234,56 (a dot between thousands): how numbers read where a comma is the decimal
DECIMAL_COMMA = rf"^\s*{DECIMAL_COMMA_NUMBER}\s*$"  # the pattern served members read
# 36.6, .5, 1e-3 or 66,911.68: how numbers read where a dot is the decimal
DECIMAL_DOT = r"^\s*[+-]?(\d+|\d{1,3}(,\d{3})+)?(\.\d+)?([eE][+-]?\d+)?\s*$"


def _is_tsv(path: Path) -> bool:
    return ".tsv" in [s.lower() for s in path.suffixes]


def _separator(path: Path) -> str:
    """A CSV's field separator: a tab for ``.tsv``, else whichever of ``SEPARATORS`` splits
    the header line into the most names, quotes respected (a comma on a tie)."""
    if _is_tsv(path):
        return "\t"
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header = f.readline().rstrip("\r\n")
    return max(SEPARATORS, key=lambda sep: len(next(csv.reader([header], delimiter=sep))))


def _separator_hint(spec: DataSpec, used: str | None, target: str, columns: Sequence[str]) -> str:
    """A hint to pass ``data.sep`` when the target is inside a column name read from the
    header of a CSV: the file is separated by something else than ``used``."""
    if used is None:
        return ""
    for sep in SEPARATORS:
        pieces = (n.split(sep) for n in columns if sep in n)
        if sep != used and any(target in [p.strip() for p in names] for names in pieces):
            if spec.sep is not None:  # the one given does not split this header
                return (
                    f" (data.sep={spec.sep!r} did not split the header, which seems separated "
                    f"by {sep!r}: pass data.sep={SEP_NAMES[sep]}, or drop data.sep to find it)"
                )
            return f" (if the file is separated by {sep!r}, pass data.sep={SEP_NAMES[sep]})"
    return ""


def _text(values: pd.Series) -> pd.Series | None:
    """The present cells of a text column, as str; None for a column of another dtype."""
    if values.dtype != object and not pd.api.types.is_string_dtype(values.dtype):
        return None
    return values.dropna().astype(str)


def _decimal_commas(
    frame: pd.DataFrame, given: bool
) -> tuple[list[str], list[str], dict[str, pd.Series], list[str]]:
    """Text columns that are numbers written with a decimal comma (as in files separated by
    semicolons), turned into numbers in place: their names, those of them whose every comma
    has exactly three digits after it (1,234: thousands, if the comma was a guess), and the
    cells read as missing per column. A column whose cells are nearly all such numbers is
    read with the others ("36.6" typed by hand, "-", "k.A.") missing, as its members read
    served rows, unless the numbers hold dots and one of the others is a dot decimal (1.250
    beside 0.875: those dots may be decimals). ``given``: data.decimal=comma, so a column of
    numbers with dots between thousands only (1.000) is one too. Last, the converted columns
    that wrote a dot between thousands."""
    converted, ambiguous, unread, dotted = [], [], {}, []
    for col in frame.columns:
        present = _text(frame[col])
        if present is None or present.empty:
            continue
        if not present.str.contains("," if not given else "[,.]").any():
            continue
        numbers = present.str.fullmatch(DECIMAL_COMMA)
        odd = present[~numbers]
        # a dot decimal among numbers read with dots between thousands (1.250 and 0.875):
        # those dots may be decimals too
        dot_decimal = (odd.str.contains(r"\d") & odd.str.fullmatch(DECIMAL_DOT)).any()
        dots_unsure = dot_decimal and present[numbers].str.contains(".", regex=False).any()
        if not odd.empty and (numbers.mean() < NUMERIC_TEXT_SHARE or dots_unsure):
            continue
        commas = present[numbers & present.str.contains(",", regex=False)]
        if not given and commas.empty:  # its only commas are in cells that are no number
            continue
        bare = commas.str.replace(r"[%\s]", "", regex=True)
        if not given and bare.str.fullmatch(r"[+-]?\d{1,3},\d{3}").all():
            ambiguous.append(str(col))
        text = frame[col].astype("string").mask(frame.index.isin(odd.index))
        read = numbers_from_text(text.astype(object), decimal=",")
        frame[col] = pd.Series(read.to_numpy(dtype=np.float64), index=frame.index)
        converted.append(str(col))
        if present[numbers].str.contains(".", regex=False).any():
            dotted.append(str(col))
        if not odd.empty:
            unread[str(col)] = odd
    return converted, ambiguous, unread, dotted


THOUSANDS_DOTS = r"^\s*[+-]?[1-9]\d{0,2}(\.\d{3})+\s*$"  # 17.027, 1.234.567


def _thousands_dots(path: Path, sep: str, frame: pd.DataFrame) -> list[str]:
    """The columns pandas read as numbers with a decimal dot (17.027) in a file that writes
    its decimals with commas, whose every dot groups thousands: read again as whole numbers
    in place (17027), their names returned."""
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    if not floats:
        return []
    text = pd.read_csv(path, sep=sep, dtype=str, usecols=lambda c: c in set(floats))
    grouped = []
    for col in floats:
        dotted = text[col].dropna()
        dotted = dotted[dotted.str.contains(".", regex=False)]
        if dotted.empty or not dotted.str.fullmatch(THOUSANDS_DOTS).all():
            continue
        whole = text[col].str.replace(".", "", regex=False)
        frame[col] = pd.to_numeric(whole, errors="coerce").astype(np.float64).to_numpy()
        grouped.append(str(col))
    return grouped


def _whole_with_dots(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Of ``columns`` (read with a decimal comma and written with dots between thousands),
    those holding whole numbers only: served as numbers read with a decimal dot, their
    17.027 is 17027 misread (``Column.misread_dots``)."""
    out = []
    for col in columns:
        values = frame[col].dropna().to_numpy(dtype=np.float64)
        if values.size and (values == np.round(values)).all():
            out.append(col)
    return out


def _target_name(target: Any, columns: Sequence[str]) -> str:
    """``data.target`` as a column name: Hydra reads ``data.target=true`` as a boolean, whose
    column may be spelled true, True or TRUE."""
    name = str(target)
    if isinstance(target, bool):
        spelled = [t for t in (name, name.lower(), name.upper()) if t in columns]
        return spelled[0] if spelled else name.lower()
    return name


def _decimal_is_comma(spec: DataSpec, sep: str | None) -> bool:
    """Whether numbers read with a decimal comma: data.decimal, or else a CSV (``.tsv``
    too) not separated by commas."""
    if spec.decimal is not None:
        return spec.decimal == ","
    return sep is not None and sep != ","


def _numeric_target(
    values: pd.Series, column: str, spec: DataSpec, sep: str | None
) -> tuple[pd.Series, tuple[str, ...]]:
    """A text target of numbers ("10.5", "66,911.68", "$12.50", a few placeholders) read as
    numbers, with a note (``_plain_numbers``); one of numbers with the other decimal mark
    fails in one line naming the data.decimal that reads it. Labels
    (data.task=classification) stay as they are."""
    present = _text(values)
    if present is None or present.empty or spec.task == "classification":
        return values, ()
    commas = _decimal_is_comma(spec, sep)
    if not commas:
        read = _plain_numbers(values, present, column, spec)
        if read is not None:
            return read
    if not present.str.contains(r"\d").all():  # a placeholder ("-", " "): not numbers
        return values, ()
    if commas and not present.str.fullmatch(DECIMAL_COMMA).all():
        read = _currency_with_decimal_comma(values)
        if read is not None:
            example = present.iloc[0]
            note = f"target {column!r} read as amounts with a decimal comma, such as {example!r}"
            return read, (note,)
    # only text that holds the other mark is read or refused here: codes such as '1', '2'
    # stay labels as they were
    other_mark = present[present.str.contains("." if commas else ",", regex=False)]
    if other_mark.empty:
        return values, ()
    example = other_mark.iloc[0]
    mark, other = ("comma", "dot") if commas else ("dot", "comma")
    if present.str.fullmatch(DECIMAL_COMMA if not commas else DECIMAL_DOT).all():
        raise ValueError(
            f"csv: target column {column!r} holds numbers written with a decimal {other} "
            f"(e.g. {example!r}), read here with a decimal {mark}: pass data.decimal={other} "
            "(or data.task=classification if they are labels)"
        )
    return values, ()


def _plain_numbers(
    values: pd.Series, present: pd.Series, column: str, spec: DataSpec
) -> tuple[pd.Series, tuple[str, ...]] | None:
    """A text target of numbers ("10.018", as a Parquet string column holds them) read as
    numbers, and one that is mostly numbers with a few placeholders ("?") too, those cells
    missing (their rows are dropped), with a note; None when it is not one. Few whole numbers
    ("1", "2") stay labels unless ``data.task=regression``; with it, a target that is not
    mostly numbers fails in one line naming a cell."""
    read = numbers_from_text(values)
    unread = present[read[present.index].isna()]
    regression = spec.task == "regression"
    codes = present.str.fullmatch(r"\s*[+-]?\d+\s*").all()
    if codes and present.str.strip().nunique() <= MAX_CLASSES_INFERRED and not regression:
        return None
    shown = ", ".join(repr(str(v)) for v in unread.value_counts().index[:3])
    if len(unread) > (1 - NUMERIC_TEXT_SHARE) * len(present):
        if regression and len(unread) < len(present):
            raise ValueError(
                f"csv: target column {column!r} holds text that is no number in "
                f"{len(unread)} of {len(present)} rows ({shown}); data.task=regression needs "
                "numbers"
            )
        return None
    if len(unread) and not regression and infer_task(read.dropna()) != "regression":
        return None  # a few class codes and some text: all labels ("0", "1", "3+")
    grouped = present[present.str.contains(",", regex=False)]
    if unread.empty and len(grouped) and present.str.fullmatch(DECIMAL_DOT).all():
        note = f"target {column!r} read as numbers with commas between thousands "
        note += f"({grouped.iloc[0]!r})"
    elif unread.empty:
        note = f"target {column!r} read as numbers from text such as {present.iloc[0]!r}"
    else:
        note = f"target {column!r} read as numbers; {len(unread)} row(s) whose target is no "
        note += f"number ({shown}) are dropped"
    return read, (note,)


CURRENCY = re.compile(r"^\s*([+-]?)\s*[$€£¥]\s*|\s*[$€£¥]\s*$")
COMMA_NOT_THOUSANDS = re.compile(r",(?:\d{1,2}|\d{4,})$")  # ",23": a decimal comma


def _currency_with_decimal_comma(values: pd.Series) -> pd.Series | None:
    """A target of amounts with a currency sign in a file with decimal commas ("$607,23",
    "-12,5 €") as numbers, or None when it is not one. Only when a cell's comma cannot
    separate thousands (not three digits after it): a feature's "$84,361" may be either."""
    text = values.dropna().astype(str).str.strip()
    if not text.str.contains(r"[$€£¥]", regex=True).any():
        return None
    bare = text.str.replace(CURRENCY, r"\1", regex=True)
    if (
        not bare.str.fullmatch(DECIMAL_COMMA).all()
        or not bare.str.contains(COMMA_NOT_THOUSANDS).any()
    ):
        return None
    out = pd.Series(np.nan, index=values.index, dtype=np.float64)
    out[text.index] = pd.to_numeric(
        bare.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    )
    return out


def _check_dot_decimals(frame: pd.DataFrame, path: Path) -> None:
    """With data.decimal=comma, a text column holding a number written with a decimal dot
    (36.6, 66,911.68) fails in one line: it is no number there, and no thousands either."""
    for col in frame.columns:
        present = _text(frame[col])
        if present is None:
            continue
        dotted = present[
            present.str.contains(".", regex=False)
            & present.str.fullmatch(DECIMAL_DOT)
            & ~present.str.fullmatch(DECIMAL_COMMA)
        ]
        if not dotted.empty:
            raise ValueError(
                f"csv: data.decimal=comma, but column {col!r} of {path.name} holds "
                f"{dotted.iloc[0]!r}, a number with a decimal dot; pass data.decimal=dot "
                "(or null) for this file"
            )


def _check_duplicate_names(path: Path, sep: str) -> None:
    """A CSV header that names a column twice fails in one line naming the names (pandas
    would rename the second 'label' to 'label.1', a copy of the target among the features)."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str).iloc[0].dropna()
    counts = header.value_counts(sort=False)
    twice = [str(name) for name, n in counts.items() if n > 1]
    if twice:
        raise ValueError(
            f"csv: {path.name} has more than one column named "
            f"{' and '.join(map(repr, twice))}; rename or drop the copies"
        )


def _parquet_columns(
    path: Path, frame: pd.DataFrame, target: str | None
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """A Parquet table's decimal columns as floats, and its list, struct and map columns
    dropped with a note (no member encodes them); such a target fails in one line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    notes: tuple[str, ...] = ()
    for field in pq.read_schema(path):
        if field.name not in frame.columns:
            continue  # a stored index
        if pa.types.is_decimal(field.type):
            frame[field.name] = frame[field.name].astype(np.float64)
        elif pa.types.is_nested(field.type):
            what = f"column {field.name!r} of {path.name} holds {field.type} values"
            if field.name == target:
                raise ValueError(f"csv: target {what}, not one value per row")
            frame = frame.drop(columns=[field.name])
            notes += (f"{what}, not one value per row: dropped",)
    return frame, notes


def _read_table(spec: DataSpec) -> tuple[Path, pd.DataFrame, tuple[str, ...], str | None]:
    """The CSV or Parquet file ``spec.path`` names, as a DataFrame, notes on how it was read
    (a separator other than a comma found in the header, decimal commas) and its separator
    (None for Parquet)."""
    if spec.path is None:
        raise ValueError("csv: data.path is required, got null; pass data.path=FILE.csv")
    path = resolve(spec.path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"csv: data.path={spec.path!r} {what} (resolved to {path})")
    if path.suffix.lower() in (".npz", ".npy"):
        raise ValueError(
            f"csv: {path.name} is a NumPy file, not a table; data=images reads images and "
            "their labels from an .npz (x and y)"
        )
    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".ods"):
        raise ValueError(
            f"csv: {path.name} is a spreadsheet; save it as CSV (UTF-8) or Parquet and pass that"
        )
    notes: tuple[str, ...] = ()
    sep = None
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        else:
            sep = spec.sep or _separator(path)
            # no thousands="." here: pandas would read 36.6 as 366 and 10.0.0.1 as 10001
            frame = pd.read_csv(path, sep=sep, decimal=spec.decimal or ".")
            if spec.sep is None and sep != "," and not _is_tsv(path):
                notes += (f"{path.name} read as separated by {sep!r} (from its header)",)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"csv: {path} is not UTF-8 text ({err.reason}: {err.object[err.start : err.end]!r}); "
            "save it as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"csv: {path} is empty (no header, no rows)") from None
    except Exception as err:  # pandas and pyarrow raise many types
        raise ValueError(f"csv: cannot read {path}: {one_line(err)}") from None
    if frame.empty:
        raise ValueError(f"csv: {path} has no data rows")
    if sep is None:
        names = [str(c) for c in frame.columns]
        target = None if spec.target is None else _target_name(spec.target, names)
        frame, parquet_notes = _parquet_columns(path, frame, target)
        notes += parquet_notes
    if sep is not None:
        _check_duplicate_names(path, sep)
    if _decimal_is_comma(spec, sep):
        converted, ambiguous, unread, dotted = _decimal_commas(frame, spec.decimal == ",")
        grouped = []
        if converted and spec.decimal is None:  # the file writes 12,5: its 17.027 is 17027
            grouped = _thousands_dots(path, sep, frame)
            if grouped:
                notes += (
                    f"dots between thousands (17.027 = 17027) read in column(s) "
                    f"{', '.join(grouped)}, as the file writes decimal commas",
                )
        # members read served rows the same way: these, and with data.decimal=comma the
        # columns pandas read as floats with it
        parsed = [
            str(c)
            for c in frame.columns
            if spec.decimal == "," and sep is not None and pd.api.types.is_float_dtype(frame[c])
        ]
        frame.attrs[DECIMAL_COMMA_ATTR] = list(dict.fromkeys([*converted, *grouped, *parsed]))
        frame.attrs[THOUSANDS_DOTS_ATTR] = grouped + _whole_with_dots(frame, dotted)
        if converted:
            notes += (f"decimal commas read as numbers in column(s) {', '.join(converted)}",)
            for col, cells in unread.items():
                shown = ", ".join(repr(v) for v in cells.value_counts().index[:3])
                notes += (
                    f"column {col!r}: {len(cells)} cell(s) not written with a decimal comma "
                    f"({shown}) read as missing",
                )
            if ambiguous:  # a guessed decimal comma, and 1,234 on every comma: thousands?
                notes += (
                    f"every comma in column(s) {', '.join(ambiguous)} has three digits after "
                    "it (1,234): if those are thousands, pass data.decimal=dot",
                )
    if spec.decimal == "," and sep is not None:
        _check_dot_decimals(frame, path)
    return path, frame, notes, sep


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


def infer_task(target: pd.Series) -> str:
    """'classification' for a non-numeric target, one with two values (0/1 on a table of any
    size), or an integer one with few distinct values; else 'regression'."""
    if not _is_numeric(target):
        return "classification"
    n_values = target.nunique()
    if n_values == 2:
        return "classification"
    few = n_values <= MAX_CLASSES_INFERRED and n_values < MAX_CLASS_SHARE * len(target)
    return "classification" if few and _is_integral(target) else "regression"


def _labels(target: pd.Series, column: str) -> tuple[pd.Series, tuple[str, ...]]:
    """Class values as their labels will read: whole numbers as integers ('1', not '1.0',
    when a missing target made the column floats), text without stray spaces ('yes ' is
    'yes', said when that merges two)."""
    if _is_numeric(target) and _is_integral(target):
        return target.astype(np.int64), ()
    present = _text(target)
    if present is None:
        return target, ()
    stripped = target.where(target.isna(), target.astype(str).str.strip())
    if stripped.nunique() == target.nunique():
        return stripped, ()
    spaced = sorted({v for v in present if v != v.strip()})[:3]
    shown = ", ".join(f"{v!r} is {v.strip()!r}" for v in spaced)
    return stripped, (f"target {column!r}: labels read without stray spaces ({shown})",)


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
    labels = tuple(str(v) for v in values)
    return codes.astype(np.int64), Task("classification", n_classes=len(values), labels=labels)


def _closest(name: str, columns: Sequence[str]) -> str:
    """`` (closest: a, b)`` naming the columns most like ``name``, or nothing."""
    lowered = {c.lower(): c for c in columns}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
    return f" (closest: {', '.join(repr(lowered[c]) for c in close)})" if close else ""


def _check_limits(spec: DataSpec, frame: pd.DataFrame, path: Path) -> None:
    """More rows or columns than ``data.row_limit``/``data.column_limit`` fail in one line;
    a table subsampled to the row limit or fewer (``data.max_rows``) passes."""
    rows, cols = frame.shape
    kept = spec.max_rows if isinstance(spec.max_rows, int) and spec.max_rows >= 1 else rows
    if spec.row_limit is not None and min(rows, kept) > spec.row_limit:
        raise ValueError(
            f"csv: {path.name} has {rows} rows, more than data.row_limit={spec.row_limit}; "
            f"raise the limit or subsample with data.max_rows (at most {spec.row_limit})"
        )
    if spec.column_limit is not None and cols > spec.column_limit:
        raise ValueError(
            f"csv: {path.name} has {cols} columns, more than "
            f"data.column_limit={spec.column_limit}; raise the limit or drop columns"
        )


def load_table(spec: DataSpec) -> Raw:
    """Any CSV (``.tsv``: tab-separated) or Parquet (``.parquet``/``.pq``) file, as raw rows.

    ``data.target`` names the target column; ``data.task`` is 'classification', 'regression'
    or null to infer it (a non-numeric target, one with two values, or an integer one with
    <= 20 distinct values that are < 5% of the rows, is a class label; otherwise
    regression). A CSV is read with the separator that splits its header into the most
    names (comma, semicolon, tab or bar); when not a comma, decimal commas are numbers.
    Rows with a missing target are dropped and counted in the notes; a text target of
    numbers with commas between thousands is read as numbers. The feature columns
    stay as they are (a DataFrame): each member fits its own encoding on its training rows
    (``models.tabular``), so missing values, categories and dates are handled where they are
    served. Class labels
    are encoded 0..k-1 in sorted order of their values (``data.classes`` uses these ids).
    Fails in one line on an empty table, a missing target column (naming the closest ones),
    a one-class target, an all-empty column, a header naming a column twice, or more rows or
    columns than the limits.
    """
    path, frame, read_notes, sep = _read_table(spec)
    columns = [str(c) for c in frame.columns]
    if spec.target is None:
        raise ValueError(
            f"csv: data.target is required, got null; columns of {path.name}: "
            f"{_columns_list(columns)}"
        )
    target = _target_name(spec.target, columns)
    notes_on_target: tuple[str, ...] = ()
    spaced = [c for c in columns if c.strip() == target.strip()]
    if target not in columns and len(spaced) == 1:  # a header cell "Churn " for Churn
        notes_on_target = (f"target {target!r} is the column {spaced[0]!r} (spaces in the header)",)
        target = spaced[0]
    if target not in columns:
        hint = _separator_hint(spec, sep, target, columns)
        raise ValueError(
            f"csv: target column {target!r} is not in {path.name}{_closest(target, columns)}; "
            f"available columns: {_columns_list(columns)}{hint}"
        )
    frame.columns = columns
    if columns.count(target) > 1:
        raise ValueError(f"csv: {path.name} has more than one column named {target!r}")
    _check_limits(spec, frame, path)
    empty = [c for c in columns if c != target and frame[c].isna().all()]
    if empty:
        raise ValueError(
            f"csv: column(s) {', '.join(map(repr, empty))} of {path.name} hold no value at all; "
            "drop them"
        )
    counters = _row_numbers(frame.drop(columns=[target]))
    n_rows = len(frame)
    blank = frame[target].map(lambda v: isinstance(v, str) and not v.strip())
    frame = frame[frame[target].notna() & ~blank].reset_index(drop=True)
    notes = read_notes + notes_on_target
    if frame.empty:
        raise ValueError(f"csv: every row of {path.name} misses the target {target!r}")
    if len(frame) < n_rows:
        notes += (f"dropped {n_rows - len(frame)} of {n_rows} rows missing the target {target!r}",)
    features = frame.drop(columns=[target, *counters])
    notes += tuple(
        f"column {name!r} is dropped: it numbers the rows {lo}..{hi} (a row number, not a "
        "property of the row)"
        for name, (lo, hi) in counters.items()
    )
    if features.shape[1] == 0:
        counted = (
            f" (the row numbers in {', '.join(map(repr, counters))} are none)" if counters else ""
        )
        raise ValueError(
            f"csv: {path.name} has no feature columns besides the target {target!r}{counted}"
        )
    if spec.task is not None and spec.task not in ("classification", "regression"):
        raise ValueError(
            f"csv: data.task must be classification, regression or null, got {spec.task!r}"
        )
    frame[target], number_notes = _numeric_target(frame[target], target, spec, sep)
    notes += number_notes
    unread = frame[target].isna().to_numpy()
    if unread.any():  # placeholders in a target of numbers, said by its note
        frame = frame[~unread].reset_index(drop=True)
        features = features[~unread].reset_index(drop=True)
    kind = spec.task or infer_task(frame[target])
    if kind == "classification":
        frame[target], label_notes = _labels(frame[target], target)
        notes += label_notes
    y, task = _encode_target(frame[target], kind, target)
    if spec.task is None:
        what = f"{task.n_classes} classes" if task.is_classification else "numbers"
        if task.is_classification and spec.classes is not None:  # kept after the loader
            what += f", of which data.classes keeps {len(spec.classes)}"
        notes += (
            f"task {kind} inferred from the target {target!r} ({what}); "
            "data.task=classification or data.task=regression chooses it",
        )
    if task.is_classification:
        # counted on the codes: a categorical target's unused categories are no class
        counts = np.bincount(y, minlength=task.n_classes)
        kept = _kept_ids(spec.classes, task.n_classes)  # data.classes drops the others later
        if kept:
            counts = np.where(np.isin(np.arange(task.n_classes), kept), counts, MIN_CLASS_ROWS)
        if counts.min() < MIN_CLASS_ROWS:
            inferred = (
                f"; the task was inferred as classification from {task.n_classes} whole-number "
                "values: data.task=regression reads them as numbers (counts)"
                if spec.task is None
                and task.n_classes > 2
                and pd.api.types.is_numeric_dtype(frame[target].dtype)
                and not pd.api.types.is_bool_dtype(frame[target].dtype)
                else ""
            )
            forced = (
                f"; the target has {task.n_classes} distinct values: data.task=regression reads "
                "them as numbers"
                if spec.task == "classification"
                and task.n_classes > MAX_CLASSES_INFERRED
                and pd.api.types.is_numeric_dtype(frame[target].dtype)
                else ""
            )
            way = (
                inferred or forced or "; drop its rows from the file or merge it into another class"
            )
            raise ValueError(
                f"csv: class {task.labels[int(counts.argmin())]!r} of target {target!r} has "
                f"{counts.min()} row(s); every class needs at least {MIN_CLASS_ROWS} "
                f"(train, validation and test rows){way}"
            )
    return Raw(X=features, y=y, task=task, feature_names=tuple(features.columns), notes=notes)


ROW_NUMBER_NAMES = re.compile(
    r"(?i)^\s*(s\.?\s*no\.?|sl\.?\s*no\.?|sr\.?\s*no\.?|no\.?|n°|#|unnamed: 0|idx|row"
    r"|(row)?(id|index|num(ber)?)|rownames?)\s*$"
)


def _names_rows(name: str) -> bool:
    """Whether a column's name says it numbers rows (No, S.No, Sl No, #, index, row_id)."""
    return ROW_NUMBER_NAMES.match(name.replace("_", "")) is not None


def _row_numbers(features: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """The columns named like a row number (No, S.No, #, id, index, row_id) that number the
    table's rows (whole numbers, one per row, counting up without a gap over the whole file,
    in any order), with their first and last number; a column named otherwise (age, rank, a
    year) is a feature however it counts. A member sees only its training rows, whose
    shuffled numbers have gaps, so this is decided here; a file sorted by its target would
    otherwise be read back from it."""
    out: dict[str, tuple[int, int]] = {}
    n = len(features)
    if n < MIN_ID_ROWS:
        return out
    for name in features.columns:
        if not _names_rows(str(name)):
            continue
        values = features[name]
        if not _is_numeric(values) or values.isna().any() or not _is_integral(values):
            continue
        numbers = values.to_numpy(dtype=np.float64)
        lo, hi = numbers.min(), numbers.max()
        if hi - lo == n - 1 and len(np.unique(numbers)) == n:
            out[str(name)] = (int(lo), int(hi))
    return out


def _kept_ids(classes: Any, n: int) -> list[int]:
    """The class ids of ``data.classes`` that name a class of ``n`` (the list is checked
    in full after the loader); none when it is not set."""
    if not classes:
        return []
    return [
        int(c)
        for c in classes
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < n
    ]
