"""Shared fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import ROOT, read_summary, run_cli

SHARED_RUNS = ("smoke_run", "readme_quickstart")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests reading one session-scoped run go to the same test process (``-n 2 --dist
    loadgroup``): each process would otherwise make its own copy of that run."""
    for item in items:
        for name in SHARED_RUNS:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory, as a new user's."""
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def _run_in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own directory: MLflow's default artifact root (./mlruns),
    Hydra's outputs and Tune's storage never land in the repository."""
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)  # a developer's own: not ours


@dataclass(frozen=True)
class SmokeRun:
    """A finished ``python -m runner +experiment=NAME smoke=true`` and where it wrote."""

    done: subprocess.CompletedProcess
    workdir: Path
    db: str
    summary: dict


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SmokeRun]:
    """``smoke_run(experiment, *overrides)``: a smoke run of the experiment in a fresh working
    directory with its own SQLite store, made once per session for the same arguments; a full
    sweep costs tens of seconds, and several tests read the same one."""
    runs: dict[tuple[str, ...], SmokeRun] = {}

    def run(experiment: str, *overrides: str) -> SmokeRun:
        key = (experiment, *overrides)
        if key not in runs:
            workdir = tmp_path_factory.mktemp(f"smoke-{experiment}")
            db = f"sqlite:///{workdir}/mlflow.db"
            done = run_cli(
                workdir,
                f"+experiment={experiment}",
                "smoke=true",
                *overrides,
                f"tracking.uri={db}",
                "hydra.run.dir=out",
            )
            assert done.returncode == 0, done.stderr[-3000:]
            runs[key] = SmokeRun(done, workdir, db, read_summary(workdir / "out"))
        return runs[key]

    return run


@dataclass(frozen=True)
class QuickstartRun:
    """The README's quickstart command, run once by ``benchmarks/quickstart.py --keep``."""

    workdir: Path
    summary: dict
    benchmark: dict


@pytest.fixture(scope="session")
def readme_quickstart(tmp_path_factory: pytest.TempPathFactory) -> QuickstartRun:
    """``python -m runner +experiment=quickstart`` in a fresh directory, as a new user types
    it (default store, default epochs), timed by the benchmark script; the README test, the
    end-to-end test and the benchmark's own test all read this one run."""
    root = tmp_path_factory.mktemp("readme-quickstart")
    workdir, result = root / "work", root / "benchmark.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "quickstart.py"),
            "--keep",
            str(workdir),
            "--json",
            str(result),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (summary_path,) = workdir.glob("outputs/*/*/summary.json")
    return QuickstartRun(workdir, read_summary(summary_path.parent), json.loads(result.read_text()))
