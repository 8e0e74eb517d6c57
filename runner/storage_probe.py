"""Tune's storage as a URI (``s3://``, ``gs://``, ...) is a dependency that can fail: probe it
before Ray starts, in bounded time, and say in one line what is wrong: a file system pyarrow
does not know, one that does not answer, or a path that is a file.

Imports neither MLflow nor Ray.
"""

from __future__ import annotations

import threading
from typing import Any


class StorageUnavailable(RuntimeError):
    """Tune's storage cannot be used as configured; one line for the user."""


def probe_storage(uri: str, timeout: float) -> None:
    """Raise StorageUnavailable if pyarrow cannot resolve ``uri`` or its file system does
    not tell within ``timeout`` seconds what is at the path."""
    import pyarrow.fs

    from runner.store_probe import redact_uri

    where = f"runner.storage_path {redact_uri(uri)}"
    answer: dict[str, Any] = {}

    def look() -> None:  # resolving s3:// asks the network for the bucket's region too
        try:
            fs, path = pyarrow.fs.FileSystem.from_uri(uri)
            answer["info"] = fs.get_file_info(path)
        except Exception as err:  # ArrowInvalid (unknown scheme), OSError (network, rights)
            answer["error"] = err

    looking = threading.Thread(target=look, name="runner-storage-probe", daemon=True)
    looking.start()
    looking.join(timeout)
    if looking.is_alive():
        raise StorageUnavailable(f"{where}: no answer within {timeout:g} s")
    if "error" in answer:
        raise StorageUnavailable(f"{where}: {_first_line(answer['error'])}")
    if answer["info"].type == pyarrow.fs.FileType.File:
        raise StorageUnavailable(f"{where}: is a file, not a folder")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
