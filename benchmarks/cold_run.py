"""Run `python -m runner ...` cold, as a new user would: a fresh directory (fresh MLflow
store, fresh Ray), the command's whole wall time, and its summary.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cold_run(overrides: list[str], label: str) -> tuple[float, dict]:
    """(wall seconds, summary) of one run; exits with the command's stderr if it fails."""
    with tempfile.TemporaryDirectory(prefix=f"{label}-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "runner", "hydra.run.dir=out", *overrides],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
        return wall, json.loads((Path(tmp) / "out" / "summary.json").read_text())
