"""The benchmark scripts run end to end on a tiny setting (their numbers live in the README)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT


def test_ensemble_fit_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "fit.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ensemble_fit.py"),
            "--members",
            "3",
            "--rows",
            "200",
            "--classes",
            "3",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    assert {r["method"] for r in results} == {"mean", "weighted", "greedy", "stacking"}
    assert all(r["fit_seconds"] >= 0 for r in results)


@pytest.mark.slow
def test_quickstart_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "qs.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "quickstart.py"),
            "--json",
            str(out),
            "training.epochs=1",
            "~members.convnet",
            "~members.resnet",
            "~members.selu",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["runs"][0]["wall_seconds"] > 0
    assert 0 <= result["min_ensemble_test_accuracy"] <= 1
