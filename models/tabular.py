"""Raw table rows -> the numeric matrix a member learns from, fitted on training rows only.

A ``TablePrep`` is part of the member that fitted it: saved beside its model and applied
again when it is served, so a served member takes the rows a user has (missing values,
unseen categories, columns in any order, extra columns) and never crashes on them.

What it does, per column of the training rows:

- numbers: the median fills missing values; a 0/1 missing indicator follows a column that
  had missing values in training; text that is at least 90% numbers ("1,234.5", "$12.50")
  is numbers, its other cells ("?", "unknown") missing;
- booleans: 0/1, missing as a number (filled and flagged like numbers);
- datetimes (datetime dtype, date objects, or text that is 95% dates, named months too, the
  rest missing): year, month, day, weekday, hour
  and days since 1970, as numbers;
- categories (text, pandas categories) with at most ``max_onehot`` values: missing is a
  category of its own; values seen fewer than ``min_count`` times in training, and values
  never seen there, share one bucket; one-hot columns (``encoding="onehot"``: linear models,
  neighbours, neural nets; when no training row fell in the bucket, an unseen or missing
  value is all zeros, as no weight was learnt for it) or one integer code per column
  (``encoding="ordinal"``: trees);
- text with more distinct values: for trees, one code per value seen ``min_count`` times or
  more (up to ``MAX_CODES``, covering half the rows), for other members (and for trees when
  the values are too many or too rare to code) target encoding when the target is given
  (each value's mean target, or class shares, shrunk towards the overall mean for rare
  values; the training rows' own encoded from folds that do not hold them, so a member
  cannot read its target back; unseen values get the overall mean), else frequency encoding
  (the share of training rows holding the value; unseen values get 0), with a note;
- dropped, with a note: columns that are constant or empty in training, and ID-like columns
  (text distinct on every row; whole numbers distinct on every row that count 1, 2, 3, ...
  or sit in a column named like an ID: id, user_id, PassengerId, index, Unnamed: 0).

A served model reads what it cannot parse (text in a numeric column, a date that is no date)
as missing; ``unreadable`` says which cells those are, for the served model to warn about.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.base import InputSpec

ENCODINGS = ("onehot", "ordinal")
# the most values a text column is coded by for trees (ordinal encoding): past it, or when
# values seen ``min_count`` times cover under half the rows, the values' mean target (their
# shares of the rows when fitted without the target)
MAX_CODES = 1000
TARGET_FOLDS = 5  # the folds whose other rows encode a training row's wide text column
MISSING = "__missing__"
RARE = "__rare__"
DATE_PARTS = ("year", "month", "day", "weekday", "hour", "days")
DATE_TEXT = r"\d{4}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
# a date with its month named and a year: 19-Aug-2022, Aug 19, 2022, 19 August 2022
MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
NAMED_MONTH_DATE = rf"(?i)\b{MONTH}\b.*\d{{4}}|\d{{1,2}}[-/ ]{MONTH}[-/ ]\d{{2}}\b"
# a date with its year last (05.03.2024, 3/5/24): day or month first, decided per column
YEAR_LAST = re.compile(r"^\s*(\d{1,2})([-/.])(\d{1,2})\2\d{2,4}\b")
MIN_ID_ROWS = 20  # fewer training rows than this: distinct values are no sign of an ID
ID_SHARE = 0.98  # an ID: distinct on this share of rows at least (a table repeats a few rows)
# a number as text: sign (before or after a currency symbol: -$5, $-5), thousands commas,
# decimals, exponent, a currency symbol or percent sign after it (12.5% reads as 12.5)
NUMBER_TEXT = re.compile(
    r"^(?P<sign>[+-]?)[$€£¥]?\s*(?P<inner>[+-]?)"
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*[$€£¥%]?$"
)
# a number written with a decimal comma and dots between thousands: -1.234,5 or 12,75 (not
# 0.500 or 1.25: a decimal dot), maybe with an exponent (7,7e-06, as pandas writes small
# numbers with decimal=",") or a percent sign (8,6 %); not with a currency symbol, whose
# comma may be either mark ($84,361 is thousands, 1,599 € a price per litre)
DECIMAL_COMMA_NUMBER = r"[+-]?(?:\d+|[1-9]\d{0,2}(?:\.\d{3})+)(?:,\d+)?(?:[eE][+-]?\d+)?(?:\s*%)?"
DECIMAL_COMMA_TEXT = re.compile(rf"^{DECIMAL_COMMA_NUMBER}$")
DECIMAL_COMMA_ATTR = "decimal_comma"  # DataFrame.attrs key: columns read with a decimal comma
THOUSANDS_DOTS_ATTR = "thousands_dots"  # ... of them, whole numbers written 17.027 for 17027
DATE_TEXT_SHARE = 0.95  # text columns with this share of dates are dates; the rest missing
NUMERIC_TEXT_SHARE = 0.9  # text columns with this share of numbers are numbers; the rest missing


def _named_like_an_id(name: str) -> bool:
    """Whether a column's name says it numbers rows (id, ID, user_id, PassengerId,
    CustomerID, Unnamed: 0, index)."""
    name = name.strip()
    low = name.lower()
    names = ("id", "index", "row", "rowid", "rownames", "row_names", "unnamed: 0")
    if low in names or low.endswith(("_id", " id", "-id", ".id")):
        return True
    return re.search(r"[a-z0-9](Id|ID)$", name) is not None  # camel case: PassengerId


def is_table(X: Any) -> bool:
    """Whether ``X`` holds raw table rows (a DataFrame) rather than a numeric matrix."""
    return isinstance(X, pd.DataFrame)


def _is_text(values: pd.Series) -> bool:
    dtype = values.dtype
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _as_dates(values: pd.Series) -> pd.Series | None:
    """``values`` as datetimes when they are, or when (nearly) all their text parses as dates."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return _to_dates(values)
    if not pd.api.types.is_object_dtype(values.dtype) and not pd.api.types.is_string_dtype(
        values.dtype
    ):
        return None
    present = values.dropna()
    if present.empty:
        return None
    head = present.head(50)
    if all(isinstance(v, datetime.date) for v in head):  # Parquet's DATE (date32) cells
        return _to_dates(values)
    if not all(isinstance(v, str) for v in head):
        return None
    sample = present.head(200)
    # dates have a year: 2024-03-05, 05/03/2024, 5.3.24, 19-Aug-2022 (not 3/5 or 1.5); a
    # few other cells ("unknown", "n/a") are missing dates
    dated = sample.str.contains(DATE_TEXT, regex=True) | sample.str.contains(
        NAMED_MONTH_DATE, regex=True
    )
    if dated.mean() < DATE_TEXT_SHARE:
        return None
    parsed = pd.to_datetime(sample.where(dated), utc=True, errors="coerce", format="mixed")
    if parsed.notna().mean() < DATE_TEXT_SHARE:
        return None
    return _to_dates(values, day_first(values))


def _year_last_parts(values: pd.Series) -> pd.DataFrame:
    """The day-or-month numbers and separator of the column's dates with the year last."""
    if not (pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values)):
        return pd.DataFrame()
    return values.dropna().astype(str).str.extract(YEAR_LAST).dropna()


def day_first(values: pd.Series) -> bool:
    """Whether the column's dates with the year last put the day first: a first number
    above 12 says so, a second one says not; when neither does (every day is 1-12), dates
    written with dots (05.03.2024) are day first, with slashes or dashes month first."""
    parts = _year_last_parts(values)
    if parts.empty:
        return False
    first, second = parts[0].astype(int), parts[2].astype(int)
    if (first > 12).any() or (second > 12).any():
        return bool((first > 12).any())
    return bool((parts[1] == ".").mean() > 0.5)


def _to_dates(values: pd.Series, dayfirst: bool = False) -> pd.Series:
    """Any cells as datetimes with a timezone (their own, else UTC); what does not parse is
    missing. Dates with a zone keep it, so that their parts are its local day and hour.
    Dates with the year last read day first with ``dayfirst`` (``day_first``), the same for
    every cell of the column. Whole numbers written as a date (20070913, or a year) read as
    that date; other numbers are times since 1970 in the unit their size says
    (``_epoch_unit``)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.to_datetime(values, utc=True, errors="coerce")
    cells = values.astype(object)
    numbers = cells.map(_is_number).to_numpy(dtype=bool)
    text = cells.where(~numbers)
    dates = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    if dayfirst:  # only where the year is last: ISO dates (2024-03-05) stay as they are
        year_last = text.map(lambda v: isinstance(v, str) and YEAR_LAST.match(v) is not None)
        year_last = year_last.to_numpy(dtype=bool)
        if year_last.any():
            read = pd.to_datetime(
                text[year_last], utc=True, errors="coerce", format="mixed", dayfirst=True
            )
            dates = dates.astype(read.dtype)
            dates[year_last] = read
    if numbers.any():
        dates = dates.dt.as_unit("us")  # one unit for both parts, years 1970 +- 290,000
        written = _numbers_as_written(cells, numbers)  # 20070913 and 2007, as text reads them
        if written.notna().any():
            dates[written.notna().to_numpy()] = written.dropna().dt.as_unit("us")
            numbers = numbers & written.isna().to_numpy()
    if numbers.any():
        at = np.flatnonzero(numbers)
        since = cells.iloc[at].astype(np.float64).to_numpy()
        units = np.array([_epoch_unit(abs(x)) for x in since])
        for unit in np.unique(units):
            picked = units == unit
            read = pd.to_datetime(since[picked], unit=str(unit), utc=True, errors="coerce")
            dates.iloc[at[picked]] = read.as_unit("us")
    return dates


def _numbers_as_written(cells: pd.Series, numbers: np.ndarray) -> pd.Series:
    """Whole numbers that read as a date written without separators: yyyymmdd (20070913)
    or a year (1000 to 2999), as the same digits in text are read; NaT for the others (times
    since 1970). A JSON request or a CSV of such dates alone makes the column numbers."""
    out = pd.Series(pd.NaT, index=cells.index, dtype="datetime64[us, UTC]")
    for i in np.flatnonzero(numbers):
        value = float(cells.iloc[i])
        if not value.is_integer():
            continue
        n = int(value)
        if 1000 <= n <= 2999:
            out.iloc[i] = pd.Timestamp(year=n, month=1, day=1, tz="UTC")
        elif 10000101 <= n <= 29991231:
            read = pd.to_datetime(str(n), format="%Y%m%d", errors="coerce", utc=True)
            if read is not pd.NaT:
                out.iloc[i] = read
    return out


def _is_number(value: Any) -> bool:
    """A finite int or float cell (not a boolean) of float64's range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int past float64's range (JSON may hold one)
        return False


def _epoch_unit(size: float) -> str:
    """The unit of a time since 1970 by its size: a date between 1973 and 5138 reads as
    seconds (1.7e9 today), milliseconds (pandas' JSON writes 1.7e12), microseconds or
    nanoseconds (pandas' own 1.7e18)."""
    for unit, below in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if size < below:
            return unit
    return "ns"


def _zone_name(dates: pd.Series) -> str | None:
    """The dates' time zone by a name that reads back (Europe/Paris, UTC+01:00), or None
    (taken as UTC) for a zone object known by no such name."""
    tz = dates.dt.tz
    for name in (getattr(tz, "key", None), getattr(tz, "zone", None), str(tz)):
        if isinstance(name, str):
            try:
                pd.Timestamp(0, tz=name)
            except Exception:  # pytz, zoneinfo and dateutil each raise their own errors
                continue
            return name
    return None


def _in_zone(values: pd.Series, tz: str) -> pd.Series:
    """Served dates without a zone of their own (naive datetimes, date cells, text such as
    "2020-12-31 23:30") read as times in ``tz``, the training dates' zone; dates with one
    keep it, and what is no date stays as it is (``_to_dates`` reads it). A time the clocks
    skipped moves forward, one they repeated reads as standard time."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.tz_localize(
            tz, ambiguous=np.zeros(len(values), dtype=bool), nonexistent="shift_forward"
        )

    def zoned(cell: Any) -> Any:
        if not isinstance(cell, (str, datetime.date)) or _is_number(cell):
            return cell
        try:
            stamp = pd.Timestamp(cell)
        except (ValueError, TypeError, OverflowError):
            return cell
        if stamp is pd.NaT or stamp.tzinfo is not None:
            return stamp
        try:
            return stamp.tz_localize(tz, ambiguous=False, nonexistent="shift_forward")
        except (ValueError, TypeError):
            return cell

    return values.astype(object).map(zoned)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _date_parts(dates: pd.Series) -> np.ndarray:
    """(n, 6) float64: year, month, day, weekday, hour, days since 1970 (NaN where missing)."""
    parts = [
        dates.dt.year,
        dates.dt.month,
        dates.dt.day,
        dates.dt.day_of_week,
        dates.dt.hour,
        # the epoch in the dates' own unit: in nanoseconds, 9999-12-31 would not fit
        (dates - pd.Timestamp(0, tz="UTC").as_unit(dates.dt.unit)).dt.total_seconds() / 86400.0,
    ]
    return np.column_stack([p.to_numpy(dtype=np.float64, na_value=np.nan) for p in parts])


def _text_key(value: Any) -> str:
    """The category a cell belongs to, as text (missing cells have their own, and so have
    empty or blank text, as JSON clients send a missing value)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, str) and not value.strip():
        return MISSING
    try:
        if pd.isna(value):
            return MISSING
    except (TypeError, ValueError):
        pass
    return str(value)


def _as_known(key: str, known: Mapping[str, Any]) -> str:
    """``key``, or the spelling the training rows used: without stray spaces ('Adelie' for a
    served 'Adelie '), or of the same number ('41' for a served 41.0, '1.0' for a served 1),
    so that hand-typed cells and codes served as numbers find their category; text standing
    for a missing value ('n/a') that is no category of its own is the missing one."""
    if key in known:
        return key
    if key.strip() != key and key.strip() in known:
        return key.strip()
    if _says_missing(key):  # "n/a", "NaN": missing, as a missing cell (not a rare category)
        return MISSING
    try:
        number = float(key)
    except ValueError:
        return key
    for other in (str(int(number)) if number.is_integer() else None, str(number)):
        if other is not None and other in known:
            return other
    return key


@dataclass
class Column:
    """How one raw column becomes features; ``kind`` is numeric, date, category, frequency or
    target."""

    name: str
    kind: str
    fill: list[float] = field(default_factory=list)  # per numeric part: the training median
    indicator: bool = False
    categories: list[str] = field(default_factory=list)  # category: kept values, in code order
    frequencies: dict[str, float] = field(default_factory=dict)  # frequency encoding
    # target encoding: each value's encoding (a mean target, or a share per class) and the
    # overall one, which unseen values get
    targets: dict[str, list[float]] = field(default_factory=dict)
    prior: list[float] = field(default_factory=list)
    tz: str | None = None  # date: the training rows' time zone, in which served dates are read
    formatted: bool = False  # numeric: planned from text such as "1,234" or "$12.50"
    decimal: str = "."  # numeric: "," when the file wrote its numbers "1.234,5"
    dayfirst: bool = False  # date: dates with the year last read day first (05.03.2024)
    # date: the training rows held dates with the year last, which decided ``dayfirst``; if
    # not (ISO dates), served dates with the year last are read by their own evidence
    year_last: bool = True
    # numeric, read with a decimal comma: every training value whole (a dot grouped thousands)
    whole: bool = False
    # numeric: booleans (True, "false") read as 1/0, for a column of only 0s and 1s in the
    # training rows; in any other (a year) they are no number, so missing
    bools: bool = True
    # category: whether any training row fell in the rare bucket; if none did, a one-hot
    # member never learnt its weights, so an unseen or missing value gets no category at all
    # (saved preps that lack the field keep the bucket)
    rare_seen: bool = True

    def served_dayfirst(self, values: pd.Series) -> bool:
        """How served dates with the year last read: as the training rows' did, or, when
        those had none (ISO dates), by the served cells' own evidence (a first number above
        12; else dots day first), the same for every cell of the request."""
        return self.dayfirst if self.year_last else day_first(values)

    def misread_dots(self, numbers: np.ndarray, cells: pd.Series | None = None) -> np.ndarray:
        """Cells served as numbers (all of them, or those of ``cells`` that are not text) with
        a fraction in a column of whole numbers written with dots between thousands: 17.027
        from a file read with a decimal dot, which is 17027 to this column; none for any
        other column."""
        numbers = np.asarray(numbers, dtype=np.float64)
        if not (self.whole and self.decimal == ","):
            return np.zeros(numbers.shape, dtype=bool)
        stored = True if cells is None else _stored(cells)
        with np.errstate(invalid="ignore"):
            # 17.027 or 46.24 ("46.240"): below 1000, at most three decimals, as one dot
            # between thousands read as a decimal dot makes them (1.234.567 reads as text)
            thousands = numbers * 1000
            fraction = np.isfinite(numbers) & (numbers != np.round(numbers))
            three = np.isclose(thousands, np.round(thousands), rtol=0, atol=1e-6)
            return stored & fraction & three & (np.abs(numbers) < 1000)

    def width(self, encoding: str) -> int:
        """How many features this column gives."""
        if self.kind == "numeric":
            return 1 + self.indicator
        if self.kind == "date":
            return len(DATE_PARTS) + self.indicator
        if self.kind == "category":
            return len(self.categories) if encoding == "onehot" else 1
        if self.kind == "target":
            return len(self.prior)
        return 1

    def names(self, encoding: str) -> list[str]:
        """The features' names (``column=value`` for one-hot columns)."""
        flag = [f"{self.name}:missing"] if self.indicator else []
        if self.kind == "numeric":
            return [self.name, *flag]
        if self.kind == "date":
            return [f"{self.name}:{p}" for p in DATE_PARTS] + flag
        if self.kind == "category" and encoding == "onehot":
            return [f"{self.name}={c}" for c in self.categories]
        if self.kind == "target" and len(self.prior) > 1:
            return [f"{self.name}:target{k}" for k in range(len(self.prior))]
        return [self.name]


class TablePrep:
    """Fitted on training rows; ``transform`` turns any rows with those columns into float32."""

    def __init__(self, encoding: str = "onehot", max_onehot: int = 30, min_count: int = 5):
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {list(ENCODINGS)}, got {encoding!r}")
        self.encoding = encoding
        self.max_onehot = max_onehot
        self.min_count = min_count
        self.columns: list[Column] = []
        self.dropped: dict[str, str] = {}
        self.notes: dict[str, str] = {}  # how fitting read a column, worth telling (not saved)
        self._target: tuple[np.ndarray, bool] | None = None  # fit's (y, classification)
        self._crossfitted: dict[str, np.ndarray] = {}  # the training rows' target encodings

    # ------------------------------------------------------------------------------ fit

    def fit(self, frame: pd.DataFrame, y: Any = None, classification: bool = False) -> TablePrep:
        """Learn each column's treatment from the training rows ``frame``; with their target
        ``y`` (values; class ids 0..K-1 with ``classification=True``, else they are read as
        values; or a student's class probabilities), wide text columns are
        target-encoded for members that do not read codes. ``transform`` of the same rows
        then gives encodings that saw each row's own target: encode training rows with
        ``fit_transform``."""
        self.columns, self.dropped, self.notes, self._crossfitted = [], {}, {}, {}
        self._target = None if y is None else _encoding_target(y, classification, len(frame))
        n = len(frame)
        # the loader's record of columns it read with a decimal comma, so that served rows
        # written the same way ("1550,0") read as the same numbers
        comma = {str(c) for c in frame.attrs.get(DECIMAL_COMMA_ATTR, ())}
        grouped = {str(c) for c in frame.attrs.get(THOUSANDS_DOTS_ATTR, ())}
        for raw_name in frame.columns:
            name, values = str(raw_name), frame[raw_name]
            present = values.dropna()
            if present.empty:
                self.dropped[name] = "empty in the training rows"
                continue
            if present.nunique() <= 1 and not values.isna().any():
                self.dropped[name] = "constant in the training rows"
                continue
            column = self._plan(name, values, present, n)
            if column is not None and column.kind == "numeric" and name in comma:
                column.decimal = ","
                column.whole = name in grouped
            if column is not None and column.kind == "numeric":
                numbers = _numbers(present, column.formatted, column.decimal).dropna()
                column.bools = bool(numbers.isin((0.0, 1.0)).all())
            if column is not None:
                self.columns.append(column)
        self._target = None
        if not self.columns:
            raise ValueError(
                "no usable feature column: "
                + "; ".join(f"{k} ({v})" for k, v in self.dropped.items())
            )
        return self

    def fit_transform(
        self, frame: pd.DataFrame, y: Any = None, classification: bool = False
    ) -> np.ndarray:
        """``fit``, then the training rows' features; their target-encoded columns are those
        made from the folds that did not hold each row (cross-fitted), not the served ones."""
        self.fit(frame, y, classification)
        try:
            return self._transform(frame, self._crossfitted)
        finally:
            self._crossfitted = {}

    def _plan(self, name: str, values: pd.Series, present: pd.Series, n: int) -> Column | None:
        missing = bool(values.isna().any())
        if pd.api.types.is_bool_dtype(values.dtype) or (
            pd.api.types.is_object_dtype(values.dtype)
            and all(isinstance(v, (bool, np.bool_)) for v in present.head(200))
        ):
            numbers = present.astype(np.float64)
            return Column(name, "numeric", [float(numbers.median())], missing)
        distinct = present.nunique()
        # an ID's value on every row (duplicated rows repeat theirs)
        id_like = distinct >= ID_SHARE * n and n >= MIN_ID_ROWS and not missing
        if pd.api.types.is_numeric_dtype(values.dtype):
            numbers = pd.to_numeric(present, errors="coerce").astype(np.float64)
            whole = bool(np.all(numbers == np.round(numbers)))
            if whole and id_like:
                ordered = np.unique(numbers.to_numpy())
                # row numbers: 1, 2, 3, ... in these rows, or (a shuffled split keeps only
                # some of them) named like an ID
                if np.all(np.diff(ordered) == 1) or _named_like_an_id(name):
                    self.dropped[name] = "an ID (a distinct whole number on every row)"
                    return None
            finite = numbers[np.abs(numbers) <= FLOAT32_MAX]  # as members read them
            median = float(finite.median()) if len(finite) else 0.0
            return Column(name, "numeric", [median], missing)
        digits_id = distinct == n and n >= MIN_ID_ROWS and not missing  # checked below
        if _is_text(values) and not isinstance(values.dtype, pd.CategoricalDtype):
            column = self._numeric_text(name, present, missing, digits_id)
            if column is not None:
                return column
        dates = _as_dates(values)
        if dates is not None:
            parts = _date_parts(dates)
            fill = [float(np.nanmedian(c)) if np.isfinite(c).any() else 0.0 for c in parts.T]
            tz = _zone_name(dates) if isinstance(values.dtype, pd.DatetimeTZDtype) else None
            missing = bool(dates.isna().any())
            return Column(
                name,
                "date",
                fill,
                missing,
                tz=tz,
                dayfirst=day_first(values),
                year_last=not _year_last_parts(values).empty,
            )
        if not _is_text(values):
            self.dropped[name] = f"dtype {values.dtype} is not numbers, dates or text"
            return None
        keys = values.map(_text_key)
        if id_like:
            self.dropped[name] = "an ID (distinct text on every row)"
            return None
        counts = keys.value_counts()
        counts = counts[counts > 0]  # a categorical column's unused categories are no values
        kept = sorted(str(k) for k, c in counts.items() if c >= self.min_count)
        rare_seen = len(kept) < len(counts)
        if len(counts) <= self.max_onehot:
            return Column(name, "category", categories=[*kept, RARE], rare_seen=rare_seen)
        # one feature of codes splits as well on 500 values as on 5 (a state, a county): a
        # tree keeps their identity, which shares of rows lose when they are alike
        covered = counts[counts >= self.min_count].sum()
        coded = len(kept) <= MAX_CODES and covered >= len(keys) / 2
        encoded = None
        if self._target is not None and (self.encoding == "onehot" or not coded):
            encoded = self._target_encoded(name, keys)
        # how the target-encoded members read it: said alike by either encoding's prep
        reads_target = self._target is not None and (
            encoded is not None or (self.encoding == "ordinal" and coded)
        )
        shares = "their shares of the rows"
        trees = (
            f"one code per value seen {self.min_count} times or more"
            if coded
            else f"{'their mean target' if reads_target else shares} (too many values, or too "
            "rare, to code one by one)"
        )
        others = "their mean target" if reads_target else shares
        self.notes[name] = f"text of {len(counts)} values: {trees} for trees, {others} for others"
        if self.encoding == "ordinal" and coded:
            return Column(name, "category", categories=[*kept, RARE], rare_seen=rare_seen)
        if encoded is not None:
            return encoded
        share = (counts / len(keys)).astype(float)
        return Column(name, "frequency", frequencies={str(k): float(v) for k, v in share.items()})

    def _target_encoded(self, name: str, keys: pd.Series) -> Column | None:
        """A wide text column target-encoded by scikit-learn's TargetEncoder (its shrinkage
        of rare values towards the overall mean), the training rows' encodings, for
        ``fit_transform``, each from an encoder fitted on the folds that do not hold the row;
        None when the target cannot encode (a single class, or a class on one row)."""
        from sklearn.model_selection import KFold, StratifiedKFold
        from sklearn.preprocessing import TargetEncoder

        assert self._target is not None
        y, classification = self._target
        column = keys.to_numpy(dtype=object)[:, None]
        if classification:
            _, counts = np.unique(y, return_counts=True)
            if len(counts) < 2 or counts.min() < 2:
                return None
            kind = "binary" if len(counts) == 2 else "multiclass"
            n_folds = min(TARGET_FOLDS, int(counts.min()))
            folds = StratifiedKFold(n_folds, shuffle=True, random_state=0)
        else:
            if len(y) < 2 * TARGET_FOLDS:
                return None
            kind, folds = "continuous", KFold(TARGET_FOLDS, shuffle=True, random_state=0)

        def encoder() -> TargetEncoder:
            return TargetEncoder(target_type=kind)

        served = encoder().fit(column, y)
        width = len(np.atleast_1d(served.target_mean_))
        crossfitted = np.empty((len(y), width))
        for fit_rows, held in folds.split(column, y):
            part = encoder().fit(column[fit_rows], y[fit_rows])
            crossfitted[held] = part.transform(column[held]).reshape(len(held), width)
        self._crossfitted[name] = crossfitted
        values = [str(v) for v in served.categories_[0]]
        table = np.column_stack(served.encodings_)  # (values, 1 or a column per class)
        prior = [float(p) for p in np.atleast_1d(served.target_mean_)]
        targets = {v: [float(e) for e in row] for v, row in zip(values, table, strict=True)}
        return Column(name, "target", targets=targets, prior=prior)

    def _numeric_text(
        self, name: str, present: pd.Series, missing: bool, distinct: bool
    ) -> Column | None:
        """A text column of numbers ("1,234", "$12.50") with a few placeholders ("?",
        "unknown") as numbers, the placeholders missing; None when it is not one, or when
        ``distinct`` (a value per row) and all digits (codes such as '00100123': an ID)."""
        if _numbers(present.head(200), formatted=True).notna().mean() < NUMERIC_TEXT_SHARE:
            return None  # most text columns are not numbers: decided on a sample
        numbers = _numbers(present, formatted=True)
        read = numbers.notna()
        if read.sum() < 2 or read.mean() < NUMERIC_TEXT_SHARE:
            return None
        if distinct and present.astype(str).str.fullmatch(r"\s*\d+\s*").all():
            return None
        unread = present[~read]
        if len(unread):
            shown = ", ".join(repr(str(v)) for v in unread.value_counts().index[:3])
            self.notes[name] = (
                f"read as numbers; {len(unread)} cell(s) that are not ({shown}) are missing"
            )
        finite = numbers[np.abs(numbers) <= FLOAT32_MAX]  # as members read them
        median = float(finite.median()) if len(finite) else 0.0
        return Column(name, "numeric", [median], missing or bool(len(unread)), formatted=True)

    # ------------------------------------------------------------------------ transform

    @property
    def input_names(self) -> list[str]:
        """The raw columns it reads (those it dropped while fitting are not read)."""
        return [col.name for col in self.columns]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, features) float32 for raw rows; a column the training rows had and these
        rows lack is filled as missing, extra columns are ignored."""
        if not self.columns:  # a fitted prep has one at least
            raise RuntimeError("TablePrep is not fitted; call fit(frame) first")
        return self._transform(frame, {})

    def _transform(self, frame: pd.DataFrame, given: Mapping[str, np.ndarray]) -> np.ndarray:
        """``transform``, with the features of the columns ``given`` taken as they are."""
        frame = frame.rename(columns=str)
        n = len(frame)
        stored = self._stored_numbers(frame)
        blocks = []
        for col in self.columns:
            if col.name in stored:
                x = stored[col.name]
                x = np.where(col.misread_dots(x), np.nan, x)
                blocks.append(self._filled(col, x[:, None]))
                continue
            if col.name in given:
                blocks.append(given[col.name])
                continue
            values = frame[col.name] if col.name in frame.columns else pd.Series([None] * n)
            values = values.reset_index(drop=True)
            blocks.append(self._encode(col, values, n))
        out = np.hstack(blocks) if blocks else np.zeros((n, 0))
        return out.astype(np.float32, copy=False)

    def unreadable(
        self, frame: pd.DataFrame, checked: set[tuple] | None = None
    ) -> dict[str, tuple[int, str]]:
        """Per numeric or date column of ``frame``: how many cells hold something that is
        not a number (or a date), or a number past float32's range (inf), and one of them;
        ``transform`` reads such cells as missing, which a served model should say. Columns
        read the same way as one in ``checked`` (shared by the members of an ensemble) are
        not parsed again."""
        frame = frame.rename(columns=str)
        out: dict[str, tuple[int, str]] = {}
        checked = set() if checked is None else checked
        todo = [
            col
            for col in self.columns
            if col.kind in ("numeric", "date")
            and col.name in frame.columns
            and (col.name, col.kind, col.formatted, col.decimal, col.bools) not in checked
        ]
        checked.update((col.name, col.kind, col.formatted, col.decimal, col.bools) for col in todo)
        stored = self._stored_numbers(frame, {col.name for col in todo})
        if stored:  # numbers stored as numbers: infinite or past float32's range, all at once
            names = list(stored)
            block = np.column_stack([stored[name] for name in names])
            bad = ~np.isnan(block) & ~(np.abs(block) <= FLOAT32_MAX)
            by_name = {col.name: col for col in todo}
            for j, name in enumerate(names):
                bad[:, j] |= by_name[name].misread_dots(block[:, j])
            for j in np.flatnonzero(bad.any(axis=0)):
                rows = np.flatnonzero(bad[:, j])
                out[names[j]] = (len(rows), str(frame[names[j]].iloc[rows[0]]))
        for col in todo:
            if col.name in stored:
                continue
            values = frame[col.name].reset_index(drop=True)
            values = values.mask(values.map(_says_missing))  # "", "NaN": missing, as pandas reads
            if col.kind == "numeric":
                read = _numbers(values, col.formatted, col.decimal, col.bools)
                # text that is no number, and infinite or past float32's range (1e39, inf)
                bad = values.notna() & ~(read.abs() <= FLOAT32_MAX)
                bad |= col.misread_dots(read.to_numpy(np.float64, na_value=np.nan), values)
            else:
                bad = values.notna() & _to_dates(values, col.served_dayfirst(values)).isna()
            if bad.any():
                out[col.name] = (int(bad.sum()), str(values[bad].iloc[0]))
        return out

    def _stored_numbers(
        self, frame: pd.DataFrame, among: set[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The numeric columns (of ``among``, else all) that ``frame`` stores as numbers, not
        text or booleans, read in one conversion as float64 (missing: NaN): a served row of
        a wide table would otherwise pay pandas' overhead once per column."""
        dtypes = frame.dtypes
        names = [
            col.name
            for col in self.columns
            if col.kind == "numeric"
            and (among is None or col.name in among)
            and col.name in dtypes.index
            and not isinstance(dtypes[col.name], pd.Series)  # a duplicated column name
            and pd.api.types.is_numeric_dtype(dtypes[col.name])
            and not pd.api.types.is_bool_dtype(dtypes[col.name])
        ]
        if not names:
            return {}
        block = frame[names].to_numpy(dtype=np.float64, na_value=np.nan)
        return {name: block[:, j] for j, name in enumerate(names)}

    @staticmethod
    def _filled(col: Column, parts: np.ndarray) -> np.ndarray:
        """A numeric or date column's parts with missing, infinite and past-float32 cells (which
        would become inf in the members' float32 rows) filled, and its missing flag."""
        bad = ~(np.abs(parts) <= FLOAT32_MAX)  # NaN and inf too
        filled = np.where(bad, np.asarray(col.fill)[None, :], parts)
        flags = [bad.any(axis=1, keepdims=True).astype(np.float64)] if col.indicator else []
        return np.hstack([filled, *flags])

    def _encode(self, col: Column, values: pd.Series, n: int) -> np.ndarray:
        if col.kind in ("numeric", "date"):
            if col.kind == "date":
                # the parts in the training rows' zone (UTC for text or zone-free dates)
                zoned = values if col.tz is None else _in_zone(values, col.tz)
                dates = _to_dates(zoned, col.served_dayfirst(zoned))
                parts = _date_parts(dates.dt.tz_convert(col.tz or "UTC"))
            else:
                numbers = _numbers(values, col.formatted, col.decimal, col.bools)
                parts = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
                parts = np.where(col.misread_dots(parts, values), np.nan, parts)[:, None]
            return self._filled(col, parts)
        keys = values.map(_text_key)
        if col.kind == "frequency":
            freq = col.frequencies
            found = keys.map(lambda k: freq.get(_as_known(k, freq), 0.0))
            return found.to_numpy(np.float64)[:, None]
        if col.kind == "target":
            table = col.targets
            # a plain loop: mapping a categorical column would make categories of the lists
            rows = [table.get(_as_known(k, table), col.prior) for k in keys.astype(object)]
            return np.asarray(rows, dtype=np.float64).reshape(n, len(col.prior))
        index = {c: i for i, c in enumerate(col.categories)}
        rare = index[RARE]
        codes = keys.map(lambda k: index.get(_as_known(k, index), rare)).to_numpy(dtype=np.int64)
        if self.encoding == "ordinal":
            return codes[:, None].astype(np.float64)
        onehot = np.zeros((n, len(col.categories)))
        onehot[np.arange(n), codes] = 1.0
        if not col.rare_seen:
            onehot[:, rare] = 0.0
        return onehot

    # -------------------------------------------------------------------------- facts

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the features ``transform`` gives, in order."""
        return tuple(name for col in self.columns for name in col.names(self.encoding))

    def groups(self) -> dict[str, tuple[int, ...]]:
        """Feature positions by origin: ``categorical`` (one-hot or code columns of
        categories) and ``numeric`` (everything else)."""
        out: dict[str, list[int]] = {"categorical": [], "numeric": []}
        start = 0
        for col in self.columns:
            width = col.width(self.encoding)
            group = "categorical" if col.kind == "category" else "numeric"
            out[group].extend(range(start, start + width))
            start += width
        return {k: tuple(v) for k, v in out.items()}

    def input_spec(self, X: np.ndarray) -> InputSpec:
        """The encoded training matrix ``X`` described for ``build``: names, groups and the
        statistics Keras members standardise with inside their graph."""
        # a float32 sum of values near its largest (a sentinel 3e38) is inf, and the members'
        # standardisation NaN: such columns again in float64 (one column at a time, not a
        # float64 copy of the whole matrix); a variance past float32's range stops there
        mean, variance = X.mean(axis=0), X.var(axis=0)
        mean, variance = mean.astype(np.float64), variance.astype(np.float64)
        for j in np.flatnonzero(~(np.isfinite(mean) & np.isfinite(variance))):
            column = X[:, j].astype(np.float64)
            mean[j] = column.mean()
            variance[j] = column.var()
        variance = np.minimum(variance, FLOAT32_MAX)
        return InputSpec(
            n_features=X.shape[1],
            feature_names=self.feature_names,
            mean=mean,
            variance=np.where(variance > 0, variance, 1.0),
            groups=self.groups(),
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything fitted, as JSON-able data (how a member saves it: no pickle)."""
        return {
            "encoding": self.encoding,
            "max_onehot": self.max_onehot,
            "min_count": self.min_count,
            "dropped": dict(self.dropped),
            "columns": [vars(c) for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TablePrep:
        """The prep ``to_dict`` described."""
        prep = cls(data["encoding"], data["max_onehot"], data["min_count"])
        prep.dropped = dict(data["dropped"])
        prep.columns = [Column(**c) for c in data["columns"]]
        return prep


def _encoding_target(y: Any, classification: bool, rows: int) -> tuple[np.ndarray, bool]:
    """The target a wide text column is encoded by: values, or class ids (a student's class
    probabilities give their most likely class); ValueError if its rows are not the frame's."""
    y = np.asarray(y)
    if y.ndim == 2 and classification:
        y = y.argmax(axis=1)
    if y.ndim != 1 or len(y) != rows:
        raise ValueError(f"the target has shape {y.shape}, the frame {rows} rows")
    try:
        return (y.astype(np.int64) if classification else y.astype(np.float64)), classification
    except (TypeError, ValueError):
        first = next((v for v in y if not isinstance(v, (int, float, np.number))), y[0])
        first = first.item() if isinstance(first, np.generic) else first  # 'a', not np.str_
        raise ValueError(
            f"the target holds {first!r}: give class ids 0..K-1 with classification=True "
            "(as a LabelEncoder makes), or numbers for regression"
        ) from None


# text pandas reads as a missing value in a CSV (its default na_values, case aside)
MISSING_TEXT = frozenset({"", "nan", "-nan", "na", "n/a", "null", "none", "<na>", "#n/a"})


def _says_missing(value: Any) -> bool:
    """Whether a cell is text that stands for a missing value ("", "NaN", "N/A")."""
    return isinstance(value, str) and value.strip().lower() in MISSING_TEXT


def _stored(values: pd.Series) -> np.ndarray:
    """Which cells are numbers as stored (floats, integers), not text or booleans."""
    return values.map(
        lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
    ).to_numpy(dtype=bool)


def _number(value: Any, formatted: bool = False, decimal: str = ".", bools: bool = True) -> Any:
    """Booleans (also as text) to 0/1 so boolean columns read as numbers (missing where not
    ``bools``); with ``formatted`` also numbers written with thousands commas or a currency
    sign ("1,234.5", "$12.50") to floats, and with ``decimal=","`` numbers written "1.234,5";
    the rest unchanged."""
    if isinstance(value, (bool, np.bool_)):
        return float(value) if bools else np.nan
    if isinstance(value, (datetime.date, datetime.timedelta, np.datetime64, np.timedelta64)):
        return np.nan  # a date or duration is no number here (pandas reads it as nanoseconds)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("true", "false"):
        return float(text.lower() == "true") if bools else np.nan
    if decimal == ",":
        if not DECIMAL_COMMA_TEXT.match(text):
            return np.nan  # a decimal dot where numbers were written "0,5": missing
        text = text.replace(".", "").replace(",", ".")
    elif not formatted:
        return value
    match = NUMBER_TEXT.match(text)
    if match is None or (match["sign"] and match["inner"]):
        return value
    try:
        return float(match["sign"] + match["inner"] + match["digits"].replace(",", ""))
    except ValueError:  # no digit before the exponent ("e5"), or none at all ("$")
        return value


def _numbers(
    values: pd.Series, formatted: bool = False, decimal: str = ".", bools: bool = True
) -> pd.Series:
    """Cells as float64 numbers, as ``_number`` reads them; anything else is missing."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        # nullable Int64 / Float64 too: pandas 2 refuses astype(float64) with missing values
        return pd.Series(values.to_numpy(dtype=np.float64, na_value=np.nan), index=values.index)
    read = values.map(lambda v: _number(v, formatted, decimal, bools))
    return pd.to_numeric(read, errors="coerce").astype(np.float64)


def numbers_from_text(values: pd.Series, decimal: str = ".") -> pd.Series:
    """Cells read as a member reads a column of formatted numbers ("$1,234.50", "€12", or
    with ``decimal=","`` "1.234,50" and "8,6 %"), as float64; anything else is missing."""
    return _numbers(values, formatted=True, decimal=decimal)


@dataclass
class TargetScaler:
    """A regression target standardised (after ``log1p`` when ``log``) for the members that
    learn better on unit-scale targets; ``inverse`` maps their predictions back. A log
    target's predictions are kept within its training range widened by that range on each
    side (``low``, ``high``, in log units), since ``expm1`` of a linear member's extrapolation
    on a far-out row overflows to infinity ($5e122 from one income typed in dollars)."""

    mean: float = 0.0
    scale: float = 1.0
    log: bool = False
    low: float | None = None
    high: float | None = None

    @classmethod
    def fit(cls, y: np.ndarray, log: bool = False) -> TargetScaler:
        """Statistics of the training targets ``y``."""
        y = np.asarray(y, dtype=np.float64)
        if log and y.min() <= -1:
            raise ValueError(
                f"a log target needs values > -1, the training rows hold {y.min():.6g}"
            )
        z = np.log1p(y) if log else y
        std = float(z.std())
        if not log:
            return cls(float(z.mean()), std if std > 0 else 1.0)
        span = max(float(z.max() - z.min()), 1.0)
        low, high = float(z.min()) - span, float(z.max()) + span
        return cls(float(z.mean()), std if std > 0 else 1.0, True, low, high)

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Targets in the scale the member learns."""
        y = np.asarray(y, dtype=np.float64)
        return ((np.log1p(y) if self.log else y) - self.mean) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Member predictions back in the target's units."""
        y = np.asarray(z, dtype=np.float64) * self.scale + self.mean
        if not self.log:
            return y
        if self.low is not None and self.high is not None:
            y = np.clip(y, self.low, self.high)
        return np.expm1(y)
