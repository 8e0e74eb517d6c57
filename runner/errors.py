"""How a sweep can end short of a leaderboard; each message is one line for the user.

Kept apart from the modules that raise them so the command line can catch them without
importing MLflow or Ray Tune.
"""

from __future__ import annotations


class SweepFailed(RuntimeError):
    """No member finished, so there is nothing to ensemble."""


class SweepInterrupted(KeyboardInterrupt):
    """Tune stopped early (Ctrl+C, SIGTERM) with members unfinished."""


class SweepAlreadyFinished(RuntimeError):
    """The sweep id names a sweep that already finished: nothing to do."""


class ResumeError(ValueError):
    """A sweep cannot be resumed as asked; the message says why in one line."""
