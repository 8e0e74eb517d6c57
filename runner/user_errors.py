"""The errors ``python -m runner`` says in one line rather than as a traceback, also when
they come back from a sweep run on a Ray Client head."""

from __future__ import annotations

from runner.cluster import ClusterError
from runner.errors import (
    ResumeError,
    StoreFailed,
    SweepAlreadyFinished,
    SweepFailed,
    SweepInterrupted,
)
from runner.lease import LeaseHeld
from runner.spec import SpecError

SAID_IN_ONE_LINE: tuple[type[BaseException], ...] = (
    ClusterError,
    LeaseHeld,
    ResumeError,
    SpecError,
    StoreFailed,
    SweepAlreadyFinished,
    SweepFailed,
    SweepInterrupted,
)
