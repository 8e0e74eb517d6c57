"""Keras-free checks shared by the training options: each failure is a one-line ValueError
naming the field, the value received and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from models.base import check_choice


def is_number(value: Any) -> bool:
    """True for ints and floats (NumPy's too), False for bools and everything else."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a finite float > 0, else raise ValueError."""
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_optional_positive(name: str, value: Any) -> float | None:
    """Return None, or ``value`` as a finite float > 0; else raise ValueError."""
    if value is None:
        return None
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0 or null, got {value!r}")
    return float(value)


def check_unit(name: str, value: Any, *, open_low: bool = False, open_high: bool = True) -> float:
    """Return ``value`` as a float in the unit interval with the given open ends."""
    ok = is_number(value) and (value > 0 if open_low else value >= 0)
    ok = ok and (value < 1 if open_high else value <= 1)
    if not ok:
        interval = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a finite float >= 0, else raise ValueError."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise ValueError (no truthy strings or ints)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def split_named(name: str, value: Any, allowed: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """Split a plain name or a mapping ``{name: ..., **kwargs}`` into (name, kwargs)."""
    allowed = list(allowed)
    if isinstance(value, Mapping):
        if "name" not in value:
            raise ValueError(
                f"{name} as a mapping needs a 'name' (one of {allowed}), got {dict(value)!r}"
            )
        kwargs = {k: v for k, v in value.items() if k != "name"}
        for key in kwargs:
            if not isinstance(key, str):
                raise ValueError(f"{name} option names must be strings, got {key!r}")
        return check_choice(name, value["name"], allowed), kwargs
    if not isinstance(value, str):
        raise ValueError(
            f"{name} must be a name (one of {allowed}) or a mapping with 'name', got {value!r}"
        )
    return check_choice(name, value, allowed), {}


def check_option_names(what: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise ValueError for the first key of ``given`` not in ``allowed``, listing them."""
    allowed = sorted(allowed)
    for key in given:
        if key not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            raise ValueError(f"{what} has no option {key!r}; allowed: {listed}")
