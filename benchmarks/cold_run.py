"""Run `python -m runner ...` cold, as a new user would: a fresh directory (fresh MLflow
store, fresh Ray), the command's whole wall time, and its summary.json."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the benchmark reads runs back from MLflow; a progress bar per download is noise (the runs
# themselves get an environment without MLFLOW_* variables)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _fresh_directory(label: str, keep: Path | None) -> contextlib.AbstractContextManager[str]:
    """A temporary directory, or ``keep`` (new or empty) to look into after the run."""
    if keep is None:
        return tempfile.TemporaryDirectory(prefix=f"{label}-")
    keep.mkdir(parents=True, exist_ok=True)
    if any(keep.iterdir()):
        raise SystemExit(f"--keep {keep} is not empty: a cold run needs a fresh directory")
    return contextlib.nullcontext(str(keep))


def cold_run(overrides: list[str], label: str, keep: Path | None = None) -> tuple[float, dict]:
    """(wall seconds, summary) of one run; exits with the command's stderr if it fails."""
    with _fresh_directory(label, keep) as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "runner", *overrides],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
        (summary,) = Path(tmp).glob("outputs/*/*/summary.json")  # Hydra's default run dir
        return wall, json.loads(summary.read_text())


def store_uri(folder: Path, summary: dict) -> str:
    """The MLflow store a cold run in ``folder`` wrote to (a relative SQLite path resolved
    against the run's directory)."""
    uri = summary["tracking_uri"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return uri.replace("sqlite:///", f"sqlite:///{folder}/", 1)
    return uri
