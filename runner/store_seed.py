"""A new SQLite tracking store starts as a copy of an empty MLflow database.

MLflow builds a new SQLite file by running every one of its schema migrations: about a second
of CPU for each sweep started in a new folder (and for each test that makes one). The empty,
migrated database is built once per MLflow version in the user's cache and copied from then
on; MLflow adds its Default experiment when it first opens the copy, as it does for a file it
built. Any failure here leaves the file for MLflow to build as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """Where the empty database is kept: ``$XDG_CACHE_HOME/runner`` or ``~/.cache/runner``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "runner"


def sqlite_path(uri: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URI; None for other stores and URIs with
    options (those are MLflow's alone)."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    path = uri[len("sqlite:///") :]
    return Path(path) if path and path != ":memory:" else None


def seed(uri: str) -> bool:
    """Create the SQLite file of ``uri`` as a copy of the empty database when it does not
    exist yet; True if this call created it. A file another process creates meanwhile is
    left alone, and so is a path with a write-ahead log left from a deleted file (SQLite
    would replay that log into the copy)."""
    target = sqlite_path(uri)
    if target is None or target.exists() or not target.parent.is_dir():
        return False
    if any(target.with_name(target.name + end).exists() for end in ("-wal", "-shm", "-journal")):
        return False
    with contextlib.suppress(Exception):
        empty = _empty_database()
        partial = target.with_name(f".{target.name}.{os.getpid()}.seed")
        try:
            shutil.copyfile(empty, partial)
            os.link(partial, target)  # never replaces a file that appeared meanwhile
            return True
        finally:
            partial.unlink(missing_ok=True)
    return False


def _empty_database() -> Path:
    """The cached empty database of the installed MLflow, built on first use."""
    import mlflow

    path = cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        built = Path(work, "empty.db")
        _build(built, Path(work, "artifacts"))
        os.replace(built, path)  # atomic: readers see no file or a whole one
    return path


def _build(path: Path, artifacts: Path) -> None:
    """Let MLflow create and migrate ``path``, then remove the Default experiment it adds
    (its artifact location names this folder), in the default journal mode."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", str(artifacts))
    store.engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DELETE FROM experiments")
        db.commit()
        db.execute("PRAGMA journal_mode=DELETE")
