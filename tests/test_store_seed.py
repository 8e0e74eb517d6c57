"""A new SQLite store starts as a copy of the cached empty MLflow database (real MLflow)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from runner import store_seed


def _schema(path: Path) -> tuple[set[tuple[str, ...]], list[tuple]]:
    """Tables, indexes and the migration head; a statement's lines in any order (MLflow's
    own builds order a table's constraints differently from one build to the next)."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
        statements = {
            tuple(sorted(line.strip().rstrip(",") for line in sql.splitlines())) for (sql,) in rows
        }
        return statements, db.execute("SELECT * FROM alembic_version").fetchall()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache" / "runner"


def test_a_seeded_store_is_the_store_mlflow_builds(tmp_path: Path, cache: Path) -> None:
    assert store_seed.seed("sqlite:///first.db")
    assert (cache / f"mlflow-{mlflow.__version__}-empty.db").is_file()
    assert store_seed.seed(f"sqlite:///{tmp_path}/second.db")  # from the cache, absolute path
    assert not store_seed.seed("sqlite:///second.db")  # exists now: left alone

    built = MlflowClient("sqlite:///built.db")  # MLflow's own, migrations and all
    seeded = MlflowClient("sqlite:///second.db")
    assert _schema(tmp_path / "second.db") == _schema(tmp_path / "built.db")
    default = seeded.get_experiment("0")
    assert (default.name, default.artifact_location) == (
        "Default",
        built.get_experiment("0").artifact_location,
    )
    experiment = seeded.create_experiment("sweeps")
    assert experiment == built.create_experiment("sweeps")
    run = seeded.create_run(experiment)
    seeded.log_metric(run.info.run_id, "accuracy", 0.5)
    seeded.set_terminated(run.info.run_id)
    assert seeded.get_run(run.info.run_id).data.metrics == {"accuracy": 0.5}
    assert not list(tmp_path.glob(".*.seed"))  # no copy left behind


def test_seed_leaves_other_files_and_stores_to_mlflow(tmp_path: Path, cache: Path) -> None:
    kept = tmp_path / "kept.db"
    kept.write_bytes(b"not touched")
    assert not store_seed.seed("sqlite:///kept.db")
    assert kept.read_bytes() == b"not touched"
    (tmp_path / "deleted.db-wal").write_bytes(b"left from a deleted file")
    for uri in (
        "sqlite:///deleted.db",  # SQLite would replay that log into a copy
        "sqlite:///opts.db?timeout=5",  # options: MLflow's business
        "sqlite:///missing/folder/runs.db",  # MLflow reports the folder
        "postgresql://user@localhost/mlflow",
        "file:./mlruns",
    ):
        assert not store_seed.seed(uri), uri
    assert not cache.exists()  # nothing built for them


def test_an_unusable_cache_leaves_the_store_to_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert not store_seed.seed("sqlite:///runs.db")
    assert not (tmp_path / "runs.db").exists()
    assert MlflowClient("sqlite:///runs.db").get_experiment("0").name == "Default"
