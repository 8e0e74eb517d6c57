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


class StoreFailed(RuntimeError):
    """The MLflow store failed for good mid-sweep; what finished is kept in Tune's storage and
    a resume logs it (one line for the user)."""


STORE_ERROR_MODULES = ("mlflow", "requests", "urllib3", "sqlalchemy", "psycopg2", "sqlite3")


def store_error(err: BaseException) -> BaseException | None:
    """``err``, or the exception it was raised from, that came from the tracking store's
    client stack (MLflow, HTTP, the SQL driver); None if none did."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if type(err).__module__.split(".")[0] in STORE_ERROR_MODULES:
            return err
        err = err.__cause__ or err.__context__
    return None
