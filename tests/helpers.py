"""Test helpers: run the real CLI in a working directory and read what it wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"  # offline dataset copies (../shared/data)
# the infrastructure is under test, not the zoo: one Keras and two scikit-learn members
INFRA_MEMBERS = ("~members.selu", "~members.convnet", "~members.resnet")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TESTS = ROOT / "tests"
# the toy model kind of tests/toy_kind.py, registered from outside models/
TOY_KIND = (f"hydra.searchpath=[file://{TESTS / 'conf'}]", "runner.model_modules=[toy_kind]")


def run_ensembles_cli(cwd: Path, *words: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m ensembles <words>`` (re-ensemble tracked members) in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "ensembles", *words],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(
    cwd: Path, *overrides: str, timeout: float = 600, pythonpath: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m runner <overrides>`` in ``cwd``, with a clean MLflow environment;
    ``pythonpath`` is put first on the module path (e.g. for a model kind of the tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONUNBUFFERED"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH")) if p
        )
    return subprocess.run(
        [sys.executable, "-m", "runner", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _as_from_a_terminal() -> None:
    """In the started process: Ctrl+C and SIGTERM as a terminal's command has them. A test
    run started in the background by a shell without job control inherits SIGINT ignored,
    and the signal tests would then test nothing of the runner's own."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_cli(
    cwd: Path,
    *overrides: str,
    until: str,
    env: dict[str, str] | None = None,
    own_group: bool = False,
) -> subprocess.Popen:
    """``python -m runner <overrides>`` started in ``cwd`` with a clean MLflow environment
    (plus ``env``), returned once it printed a line containing ``until`` (e.g. a member
    "started": its run exists and it trains). The caller stops or waits for it. With
    ``own_group`` it leads a process group of its own (as under ``timeout`` or systemd)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "runner", *overrides],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_from_a_terminal,
        start_new_session=own_group,
    )
    for line in proc.stdout:
        if until in line:
            break
    return proc


def stop_cli(
    proc: subprocess.Popen, sig: int, after: float = 0.0, timeout: float = 120
) -> tuple[str, str]:
    """Send ``sig`` to a command ``start_cli`` started (``after`` seconds from now) and wait
    for it to end; (stdout, stderr) of the rest of its output. Killed if still alive."""
    try:
        time.sleep(after)
        proc.send_signal(sig)
        return proc.communicate(timeout=timeout)
    finally:
        proc.kill()


def read_summary(out_dir: Path) -> dict:
    """The run's summary.json."""
    return json.loads((out_dir / "summary.json").read_text())


def serve_elsewhere(
    tmp_path: Path, db: str, script: str, *args: str
) -> subprocess.CompletedProcess:
    """Run ``script`` (Python that loads and uses a logged model) in a fresh process, from a
    new directory, with only the tracking URI ``db`` set: as a user on another machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = db
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def sweep_runs(store: str | Any, sweep_id: str, experiment: str = "quickstart") -> list:
    """Every MLflow run of one sweep (parent, members, folds, ensemble) in ``store`` (a
    tracking URI or a client); none while the experiment does not exist yet."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store) if isinstance(store, str) else store
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs(
        [found.experiment_id], f"tags.`runner.sweep_id` = '{sweep_id}'", max_results=5000
    )
