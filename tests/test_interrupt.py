"""Ctrl+C mid-sweep leaves nothing RUNNING in MLflow and exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mlflow.tracking import MlflowClient


def test_sigint_mid_sweep_marks_open_runs_killed(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "runner",
            "+experiment=quickstart",
            f"tracking.uri={db}",
            "training.epochs=200",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if "started" in line:  # a member run exists and its trial is training
                break
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    statuses = {r.data.tags["runner.role"] + ":" + r.info.status for r in runs}
    assert "sweep:KILLED" in statuses
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    assert not [r for r in runs if r.data.tags["runner.role"] == "ensemble"]
