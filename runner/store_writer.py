"""The member runs' MLflow writes, in order, off Tune's event loop: against a tracking server
each member run is several round trips that Tune's loop would otherwise wait for, trial
after trial.

One thread performs the writes in the order they were submitted (``background``), or each
is performed at once in the caller's thread (a SQLite store: its writes are the driver's own
CPU, which a thread only contends for). The store's first failure stops the writing; it is
kept for the caller to raise where Tune can save its state first. What was submitted but
never written is not lost: a finished trial whose member run never reached MLflow is logged
from Tune's checkpoint on resume.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from runner.errors import store_error

log = logging.getLogger(__name__)

WRITER_THREAD = "runner-mlflow-writer"
BACKLOG = 1000  # writes waiting at most: past it, Tune's loop waits for the store (memory bound)


def background_by_default(uri: str) -> bool:
    """Whether writes to ``uri`` go through a thread unless configured: yes for stores across
    a network (a tracking server, a database server), no for a SQLite or local file store."""
    from urllib.parse import urlparse

    if uri.startswith("databricks"):  # "databricks" or "databricks://PROFILE"
        return True
    return urlparse(uri).scheme.split("+")[0].lower() not in ("sqlite", "file", "")


class StoreWriter:
    """Performs submitted writes in order, in a thread or at once; keeps the first failure."""

    def __init__(self, background: bool, backlog: int = BACKLOG) -> None:
        self.background = background
        self.backlog = backlog
        self.failure: BaseException | None = None
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._unfinished = 0  # submitted, not yet written (or dropped)
        self._idle = threading.Condition()
        self._dropping = False

    # Tune pickles its callbacks, which hold this writer: a copy starts with no thread
    def __getstate__(self) -> dict[str, Any]:
        return {"background": self.background, "backlog": self.backlog}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["background"], state["backlog"])  # type: ignore[misc]

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Perform ``write(*args)`` after every write submitted before it. At once (not in a
        thread), a failure that is not the store's is raised to the caller, as any bug. With
        ``backlog`` writes waiting, waits until the thread has done one: a store slower than
        the trials holds Tune back instead of piling up writes in the driver's memory."""
        if self.failure is not None or self._dropping:
            return
        if not self.background:
            self._perform(write, args, raise_bugs=True)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=WRITER_THREAD, daemon=True)
            self._thread.start()
        with self._idle:
            self._idle.wait_for(self._has_room)
            if self.failure is not None or self._dropping:
                return
            self._unfinished += 1
        self._queue.put((write, args))

    def _has_room(self) -> bool:
        return self._unfinished < self.backlog or self.failure is not None or self._dropping

    def _perform(self, write: Callable[..., Any], args: tuple[Any, ...], raise_bugs: bool) -> None:
        """One write. The store's failure stops the writing; any other error is the write's
        own (a bug, a checkpoint that cannot be read): raised at once, or in the thread
        logged with its traceback while the other writes go on."""
        try:
            write(*args)
        except Exception as err:
            if store_error(err) is not None:
                self.failure = err
            elif raise_bugs:
                raise
            else:
                log.error("writing a member run failed: %s", err, exc_info=err)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if self.failure is None and not self._dropping:
                    self._perform(*item, raise_bugs=False)
            except BaseException as err:  # the thread must not die with writes waiting on it
                self.failure = err
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()

    def flush(self) -> None:
        """Wait until every write submitted so far is done; raise the first failure."""
        if self._thread is not None:
            with self._idle:
                self._idle.wait_for(lambda: self._unfinished == 0)
        if self.failure is not None:
            raise self.failure

    def drop(self, timeout: float = 10.0) -> None:
        """Give up the writes not started (the sweep is stopping); wait up to ``timeout``
        seconds for the one under way, so that nothing writes after this unless a write
        hangs. A given-up trial that finished is logged from Tune's checkpoint on resume."""
        self._dropping = True
        if self._thread is not None:
            with self._idle:
                self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread once it has written what it holds (flushed, or dropped: then it
        is left after ``timeout`` seconds if a write still hangs)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(None if not self._dropping else timeout)
            self._thread = None
