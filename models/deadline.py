"""A deadline that fits without epochs (boosted trees) check between their rounds, so that a
sweep's time limit stops them too: set by whoever trains a member, read by the kind's fit."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Deadline:
    """Wall-clock time (``time.time()``) after which a fit stops at its next round;
    ``rounds`` is how many rounds (or a forest's trees: ``unit``) it had trained when it
    stopped one (None: it stopped none)."""

    at: float
    rounds: int | None = None
    unit: str = "rounds"

    def passed(self, rounds: int) -> bool:
        """Whether the deadline has passed (``rounds``: how far the fit is, for a clock of
        rounds instead of time)."""
        return time.time() >= self.at

    def reached(self, rounds: int, unit: str = "rounds", total: int | None = None) -> bool:
        """Whether a fit that trained ``rounds`` rounds (or trees) of ``total`` stops now,
        noting it; never after its last one, which ends the fit anyway (not cut short)."""
        if not self.passed(rounds) or (total is not None and rounds >= total):
            return False
        self.rounds, self.unit = rounds, unit
        return True


_CURRENT: ContextVar[Deadline | None] = ContextVar("training_deadline", default=None)


@contextlib.contextmanager
def training_deadline(at: float | Deadline | None) -> Iterator[Deadline | None]:
    """Fits inside stop at their next round once ``at`` (a time, or a ``Deadline`` of the
    caller's) passed; None: no deadline."""
    deadline = at if isinstance(at, Deadline) or at is None else Deadline(at)
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline of the fit running in this context, if any."""
    return _CURRENT.get()
