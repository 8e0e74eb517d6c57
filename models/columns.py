"""A frame's named features in the order a model reads them, whatever order they come in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any


class ColumnMismatch(ValueError):
    """A frame whose columns are names but not the features': some named twice or missing.
    Callers word it for their user (a notebook's frame, a served request)."""

    def __init__(self, twice: list[str], missing: list[str]) -> None:
        super().__init__(f"features named twice {twice}, missing {missing}")
        self.twice = twice
        self.missing = missing


def by_name(frame: Any, names: Sequence[str]) -> Any:
    """``frame``'s columns ``names``, in that order, when its columns are names (others
    ignored); ``frame`` as it is when its columns are positions (numbers, or "0", "1", ...
    as JSON gives them), or there are no names to read by. ColumnMismatch when a feature
    is missing or named twice."""
    columns = list(frame.columns)
    if (
        not names
        or not all(isinstance(c, str) for c in columns)
        or columns == [str(k) for k in range(len(columns))]
    ):
        return frame
    given = Counter(columns)
    twice = sorted(n for n in set(names) if given[n] > 1)
    missing = [n for n in names if n not in given]
    if twice or missing:
        raise ColumnMismatch(twice, missing)
    return frame[list(names)]
