"""SIGTERM (what Kubernetes, cron timeouts and `ray job stop` send) stops a sweep the way
Ctrl+C does: Tune stops every trial and saves its state, open runs end KILLED with the reason,
and the process exits 143 (SIGINT: 130). Ray's own driver handler would abort instead."""

from __future__ import annotations

import signal
import threading
from typing import Any

_received: list[int] = []
_stopped: list[bool] = []  # a stop signal reached Tune while it ran (its handler took it)


def _on_sigterm(signum: int, frame: Any) -> None:
    _received.append(signum)
    handler = signal.getsignal(signal.SIGINT)  # Tune's graceful stop while trials run
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def install() -> None:
    """Handle SIGTERM like SIGINT from now on (call it after ray.init, which sets its own);
    only the main thread can set handlers."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


_why: list[str] = []  # a stop the runner asked for itself, and why


def stop_for(why: str) -> None:
    """Stop the sweep as SIGTERM does, for ``why`` (the runs it ends are tagged with it):
    from any thread, e.g. the lease's when another driver took the sweep over."""
    import os

    _why.append(why)
    os.kill(os.getpid(), signal.SIGTERM)


def stopped_by_runner() -> bool:
    """Whether the runner asked for the stop itself (``stop_for``), not the user."""
    return bool(_why)


def reason() -> str:
    """Why the process is stopping, for the runs it ends KILLED."""
    if _why:
        return _why[-1]
    return "stopped by SIGTERM" if _received else "stopped by SIGINT (Ctrl+C)"


def exit_code() -> int:
    """143 after SIGTERM, 130 after SIGINT: 128 + the signal's number, as shells report it."""
    return 128 + (signal.SIGTERM if _received else signal.SIGINT)


def note_sigterm() -> None:
    """A SIGTERM reached another handler (Ray's, while it started): exit as after ours."""
    _received.append(signal.SIGTERM)


def note_tune_stopped() -> None:
    """Tune took a SIGINT (or a SIGTERM passed on as one) while it ran: the sweep stops
    after that Tune run instead of starting the next one."""
    _stopped.append(True)


def stop_requested() -> bool:
    """Whether Ctrl+C or SIGTERM came since the process started."""
    return bool(_stopped or _received)


def raise_if_stopped() -> None:
    """Raise KeyboardInterrupt if SIGTERM came: its handler's own raise is lost when the
    signal lands in a weakref callback or a finaliser, which Python runs and then ignores."""
    if _received:
        raise KeyboardInterrupt


def clear_tune_stopped() -> None:
    """Forget a stop Tune took in an earlier sweep of this process."""
    _stopped.clear()
