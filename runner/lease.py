"""One live driver per sweep id, across machines: the driver holds a lease on its sweep.

The lease is a small JSON file beside the sweep's Tune folder in the shared storage (host,
pid, a token and the last heartbeat), renewed every ``heartbeat`` seconds by a thread; the
run tree copies each heartbeat onto the parent run. A second invocation of a live sweep
stops at once with one line naming the holder. A lease whose heartbeat is older than the
timeout, or whose holder process is gone on this very host, is taken over, so a crashed
driver never blocks the next night. Imports neither MLflow nor Ray.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HEARTBEAT_SECONDS = 10.0

log = logging.getLogger(__name__)


class LeaseHeld(RuntimeError):
    """Another live driver holds the sweep; one line for the user."""


def describe(holder: dict[str, Any], now: float | None = None) -> str:
    """``host HOST pid PID, last heartbeat N s ago``."""
    age = (now or time.time()) - float(holder.get("heartbeat", 0))
    return f"host {holder.get('host')} pid {holder.get('pid')}, last heartbeat {age:.0f}s ago"


def _alive_here(holder: dict[str, Any]) -> bool | None:
    """Whether the holder's process lives, when it ran on this host (None: cannot tell)."""
    if holder.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def is_stale(holder: dict[str, Any], timeout: float, now: float | None = None) -> bool:
    """A lease nobody renews: its heartbeat is older than ``timeout``, or its holder's
    process is gone on this host."""
    if _alive_here(holder) is False:
        return True
    return (now or time.time()) - float(holder.get("heartbeat", 0)) > timeout


class Lease:
    """The lease on one sweep, held while the driver runs it (``acquire`` ... ``release``)."""

    def __init__(self, path: Path | str, sweep_id: str, timeout: float) -> None:
        # a bucket's URI (s3://, gs://, file://): the lease is an object there, read and
        # written through pyarrow's file systems as Tune's own state is
        self._fs: Any = None
        if isinstance(path, str) and "://" in path:
            import pyarrow.fs

            self._fs, self._fs_path = pyarrow.fs.FileSystem.from_uri(path)
        self.path = Path(path) if self._fs is None else path
        self.sweep_id = sweep_id
        self.timeout = timeout
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "token": secrets.token_hex(8)}
        self.took_over: dict[str, Any] | None = None
        self.lost: dict[str, Any] | None = None  # the driver that took this lease over
        self.on_lost: Callable[[dict[str, Any]], None] | None = None  # told when it happens
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_heartbeat: Callable[[dict[str, Any]], None] | None = None

    def _read(self) -> dict[str, Any] | None:
        try:
            if self._fs is not None:
                with self._fs.open_input_stream(self._fs_path) as stream:
                    return json.loads(stream.read().decode())
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _write(self) -> dict[str, Any]:
        record = {**self.me, "sweep_id": self.sweep_id, "heartbeat": time.time()}
        if self._fs is not None:  # an object store's put replaces the object whole
            with self._fs.open_output_stream(self._fs_path) as stream:
                stream.write(json.dumps(record).encode())
            return record
        tmp = self.path.with_name(f".{self.path.name}.{self.me['token']}")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.path)  # atomic: readers see the old lease or the new one
        return record

    def _create(self) -> bool:
        """Create the lease empty if there is none: False if there is one (a bucket cannot
        create exclusively: the read-back after writing settles a race there)."""
        if self._fs is not None:
            import pyarrow.fs

            parent = self._fs_path.rsplit("/", 1)[0]
            self._fs.create_dir(parent, recursive=True)
            return self._fs.get_file_info(self._fs_path).type == pyarrow.fs.FileType.NotFound
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _remove(self) -> None:
        if self._fs is not None:
            with contextlib.suppress(OSError):
                self._fs.delete_file(self._fs_path)
            return
        self.path.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Take the lease, or raise LeaseHeld naming the live holder."""
        if not self._create():
            holder = self._read()
            if holder is None and self._fs is not None:  # there, but not read: not free
                raise LeaseHeld(
                    f"sweep {self.sweep_id}: its lease at {self.path} exists but could not "
                    "be read; try again, or delete it if no driver runs the sweep"
                )
            if holder is not None and holder.get("token") != self.me["token"]:
                if not is_stale(holder, self.timeout):
                    raise LeaseHeld(
                        f"sweep {self.sweep_id} is running in another driver ({describe(holder)}); "
                        f"wait for it, or stop it: a lease older than {self.timeout:g}s is "
                        "taken over"
                    ) from None
                self.took_over = holder
        self._write()
        # two takers of one stale lease: the last writer wins, the other sees it
        time.sleep(0.05 if self._fs is None else 1.0)
        if (self._read() or {}).get("token") != self.me["token"]:
            holder = self._read() or {}
            raise LeaseHeld(
                f"sweep {self.sweep_id} was just taken by another driver ({describe(holder)})"
            )
        self._thread = threading.Thread(target=self._beat, name="runner-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        """Renew the file every beat, whatever fails: a write that fails (a storage hiccup)
        is tried again at the next beat, and the run tree's copy of the heartbeat (a
        tracking server round trip, which can hang for minutes) runs in a thread of its own,
        so neither lets the lease grow stale under a live driver."""
        copier: threading.Thread | None = None
        while not self._stop.wait(min(HEARTBEAT_SECONDS, self.timeout / 3)):
            holder = self._read()
            if holder is not None and holder.get("token") != self.me["token"]:
                self.lost = holder  # presumed dead: never write over the new holder
                log.warning(
                    "sweep %s: another driver took this sweep's lease over (%s), taking "
                    "this one for dead (no heartbeat within %gs): this one stops",
                    self.sweep_id,
                    describe(holder),
                    self.timeout,
                )
                if self.on_lost is not None:
                    with contextlib.suppress(Exception):
                        self.on_lost(holder)
                return
            try:
                record = self._write()
            except OSError as err:
                log.warning("sweep %s: lease heartbeat not written (%s)", self.sweep_id, err)
                continue
            if self.on_heartbeat is not None and (copier is None or not copier.is_alive()):
                copier = threading.Thread(
                    target=self._copy, args=(record,), name="runner-lease-copy", daemon=True
                )
                copier.start()

    def _copy(self, record: dict[str, Any]) -> None:
        """The run tree's copy of a heartbeat: best effort, the file is the lease."""
        with contextlib.suppress(Exception):
            assert self.on_heartbeat is not None
            self.on_heartbeat(record)

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self._read()
        if holder is not None and holder.get("token") == self.me["token"]:
            self._remove()
