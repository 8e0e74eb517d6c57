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


def store_error_said(cause: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of a store error, credentials masked before it is cut (a cut
    inside user:password@ would leave the password bare) and cut between words."""
    from runner.hydra_errors import redact_credentials

    first = redact_credentials((str(cause).strip().splitlines() or [""])[0])
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0] + " ..."
    return f"{type(cause).__name__}: {first}"
