"""The benchmark scripts run end to end on a tiny setting (their numbers live in the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT


def run_benchmark(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``python benchmarks/SCRIPT args...``, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ensemble_fit_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "fit.json"
    done = run_benchmark(
        "ensemble_fit.py",
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
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    assert {r["method"] for r in results} == {"mean", "weighted", "greedy", "stacking"}
    assert all(r["fit_seconds"] >= 0 for r in results)


@pytest.mark.slow
def test_quickstart_benchmark_times_the_readme_command(readme_quickstart):
    result = readme_quickstart.benchmark
    (run,) = result["runs"]
    assert run["wall_seconds"] >= readme_quickstart.summary["wall_seconds"] > 0
    assert result["median_wall_seconds"] == run["wall_seconds"]
    assert run["ensemble_test_accuracy"] == readme_quickstart.summary["ensemble"]["test_metric"]
    assert result["min_ensemble_test_accuracy"] == run["ensemble_test_accuracy"]
    assert set(run["members"]) == {m["name"] for m in readme_quickstart.summary["members"]}
    best = readme_quickstart.summary["ensemble"]["best_member"]  # on validation, not test
    assert run["best_member"] == best
    assert run["best_member_test_accuracy"] == run["members"][best]
    assert run["best_test_accuracy_in_hindsight"] == max(run["members"].values())
    assert "cores" in result["machine"]


def test_quickstart_benchmark_keeps_only_one_run(tmp_path):
    done = run_benchmark("quickstart.py", "--repeats", "2", "--keep", str(tmp_path), timeout=60)
    assert done.returncode == 2 and "--keep needs --repeats 1" in done.stderr


@pytest.mark.slow
def test_quality_benchmark_runs_tiny(tmp_path):
    """The quality script's digits benchmark, on scikit-learn members only at smoke size."""
    out = tmp_path / "quality.json"
    given = tmp_path / "overrides.txt"
    given.write_text("~members.convnet\n\n~members.resnet\n")  # one per line, blanks skipped
    done = run_benchmark(
        "quality.py",
        "--only",
        "digits",
        "--json",
        str(out),
        "--overrides-file",
        str(given),
        "smoke=true",
        "~members.mlp",
        "~members.selu",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    digits = result["results"]["digits"]
    assert digits["experiment"] == "quickstart" and digits["metric"] == "accuracy"
    assert set(digits["members_test"]) == {"logistic", "svm"}
    assert digits["best_member"] in digits["members_test"]
    assert 0 <= digits["ensemble_test"] <= 1 and isinstance(digits["beats_best_member"], bool)
    assert digits["wall_seconds"] > 0 and "cores" in result["machine"]
    assert digits["member_cpu_seconds"] > 0 and digits["member_seconds"] > 0
    assert "digits: ensemble (weighted) test accuracy" in done.stdout


@pytest.mark.slow
def test_overhead_benchmark_times_all_three_ways_tiny(tmp_path):
    out = tmp_path / "overhead.json"
    done = run_benchmark(
        "overhead.py", "--members", "3", "--epochs", "1", "--json", str(out), timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    ways = result["ways"]
    assert set(ways) == {"a", "b", "c"}
    assert all(w["wall_seconds"] > 0 for w in ways.values())
    assert len({w["fingerprint"] for w in ways.values()}) == 1  # the same split everywhere
    for w in ways.values():
        assert [t["name"] for t in sorted(w["trials"], key=lambda t: t["name"])] == [
            "convnet",
            "logistic",
            "mlp",
        ]
        assert all(
            t["fit_seconds"] > 0 and t["wall_seconds"] >= t["fit_seconds"] for t in w["trials"]
        )
        assert w["median_overhead_s"] >= 0
    assert set(result["ratios"]) == {"c/a", "c/b"}
    assert all(r > 0 for r in result["ratios"].values())
    assert ways["c"]["phases"]["span_trials"] > 0


@pytest.mark.slow
def test_scale_benchmark_runs_both_ways_and_plots_tiny(tmp_path):
    out, plot = tmp_path / "scale.json", tmp_path / "scale.png"
    done = run_benchmark(
        "scale.py",
        *("--sizes", "3,6", "--json", str(out), "--plot", str(plot)),
        *("--", "ensemble.candidates=4"),  # passed to the runner: prunes 6 candidates, not 3
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["ways"]) == {"tune", "runner"}
    small, large = result["ways"]["runner"]
    assert small["ensemble_pruned"] is None and large["ensemble_pruned"]["of"] == 6
    for rows in result["ways"].values():
        assert [r["trials"] for r in rows] == [3, 6]  # every sampled trial ran
        for r in rows:
            parts = r["before_first_trial_s"] + r["trials_phase_s"] + r["after_last_trial_s"]
            assert r["wall_seconds"] == pytest.approx(parts, abs=0.5)
            assert r["peak_driver_rss_mb"] > 0
            # every process's CPU over the trials phase: some, and at most all cores' worth
            assert r["trials_phase_cpu_per_trial_ms"] > 0
            assert 0 < r["trials_phase_busy_cores"] <= (os.cpu_count() or 1) + 0.05
    assert all(r["members_with_weight"] >= 1 for r in result["ways"]["runner"])
    for r in result["ways"]["runner"]:  # the runner's record of its memory, seen from outside
        reported = r["driver_reported"]
        assert reported["trials"] == r["trials"]
        assert 0.5 * r["peak_driver_rss_mb"] < reported["peak_rss_mb"] <= r["peak_driver_rss_mb"]
        assert reported["rss_start_mb"] > 0 and "rss_growth_kb_per_trial" in reported
    assert set(result["checks"]["met"]) == {
        "wall_runner/tune",
        "after_last_trial_s",
        "rss_largest/smallest",
    }
    assert plot.stat().st_size > 0


@pytest.mark.slow
def test_server_writes_benchmark_runs_both_settings_against_a_server_tiny(tmp_path):
    out = tmp_path / "writes.json"
    done = run_benchmark(
        "server_writes.py", "--trials", "4", "--repeats", "1", "--json", str(out), timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["background_writes"] for r in result["runs"]] == [False, True]
    assert all(r["trials"] == 4 and r["ensemble_test_accuracy"] > 0.5 for r in result["runs"])
    assert result["wall_seconds_thread/in_loop"] > 0


@pytest.mark.slow
def test_overhead_benchmark_reports_driver_memory_tiny(tmp_path):
    out = tmp_path / "memory.json"
    done = run_benchmark(
        "overhead.py", "--memory", "--sizes", "2,4", "--json", str(out), timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["members"] for r in result["memory"]] == [2, 4]
    assert all(r["finished"] == r["members"] for r in result["memory"])
    assert all(r["peak_driver_rss_mb"] > 0 for r in result["memory"])
    assert result["peak_ratio"] > 0


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT.parent / "shared" / "data" / "penguins").exists(), reason="no penguins table"
)
def test_tabular_benchmark_compares_the_runner_with_default_boosters_tiny(tmp_path):
    """The penguins table on two splits, two folds and their refits, two members that need no
    TensorFlow."""
    out = tmp_path / "tabular.json"
    dropped = ("xgboost", "catboost", "hgb", "extra_trees", "knn", "mlp", "wide_deep", "selu")
    done = run_benchmark(
        "tabular.py",
        "--only",
        "penguins",
        "--folds",
        "2",
        "--refit",
        "--seeds",
        "0",
        "1",
        "--json",
        str(out),
        *(f"~members.{m}" for m in dropped),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    penguins = result["results"]["penguins"]
    assert penguins["metric"] == "accuracy" and penguins["rows"]["folds"] == 2
    assert set(penguins["runner"]["members_test"]) == {"lightgbm", "linear"}
    assert set(penguins["baselines"]) == {"LightGBM", "XGBoost", "CatBoost", "HistGradientBoosting"}
    for scores in [penguins["runner"], *penguins["baselines"].values()]:
        assert 0 <= scores["accuracy"] <= 1 and scores["log_loss"] > 0
        assert scores["wall_seconds"] >= 0 and scores["cpu_seconds"] >= 0
    assert (
        "| penguins (seed 0) | runner (tabular, 2 folds" in done.stdout
        and "baselines on" in done.stdout
    )
    refit = penguins["runner"]["refit"]
    assert 0 <= refit["accuracy"] <= 1 and set(refit["members_test"]) == {"lightgbm", "linear"}
    assert refit["predict_ms"]["refit"] > 0 and refit["predict_ms"]["bagged"] > 0
    assert "refit on all rows (served)" in done.stdout
    assert "cores" in result["machine"]
    splits, summary = penguins["splits"], penguins["over_seeds"]
    assert [s["seed"] for s in splits] == [0, 1] and summary["seeds"] == [0, 1]
    assert splits[0]["fingerprint"] != splits[1]["fingerprint"]
    accuracy = summary["metrics"]["accuracy"]
    assert accuracy["runner"]["mean"] == pytest.approx(
        np.mean([s["runner"]["accuracy"] for s in splits]), abs=1e-4
    )
    for base in penguins["baselines"]:
        record = accuracy[base]
        assert record["won"] + record["tied"] + record["lost"] == 2
    assert "over 2 splits" in done.stdout and "| penguins, log_loss |" in done.stdout
    header = "| table, metric | runner | " + " | ".join(penguins["baselines"]) + " | record |"
    assert header in done.stdout


def test_beyond_benchmark_measures_conformal_coverage_tiny(tmp_path):
    """Digits, one split, the quickstart's scikit-learn members and a 3-epoch MLP (the student)."""
    out = tmp_path / "beyond.json"
    done = run_benchmark(
        "beyond.py",
        "--only",
        "digits",
        "--splits",
        "1",
        "--json",
        str(out),
        *(f"~members.{m}" for m in ("selu", "convnet", "resnet")),
        "training.epochs=3",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    (run,) = result["results"]["digits"]
    assert set(run["levels"]) == {"0.8", "0.9", "0.95"}
    for level, scores in run["levels"].items():
        assert abs(scores["ensemble"]["coverage"] - float(level)) < 0.1
        assert scores["ensemble"]["mean_set_size"] >= 0.5
        assert scores["best_member"]["name"] in ("logistic", "svm", "mlp")
        assert scores["test_rows"] == 360 and scores["calibration_rows"] == 360
    assert "| digits | 0.90 |" in done.stdout
    b = run["budget"]
    assert b["max_latency_ms"] == pytest.approx(b["full"]["ms_per_1000"] / 3)
    assert set(b["full"]["members"]) <= {"logistic", "svm", "mlp"}
    if "error" in b["budgeted"]:  # no member alone fits a third of all
        assert b["budgeted"]["error"].startswith("no member fits max_latency_ms=")
    else:
        assert b["budgeted"]["ms_per_1000"] <= b["max_latency_ms"]
        seen = b["hindsight"]  # the best affordable subset on test beats the selection's
        assert seen["ms_per_1000"] <= b["max_latency_ms"]
        assert seen["test"] >= b["budgeted"]["test"]
    assert "| digits | 1 | accuracy |" in done.stdout
    st = run["student"]
    assert st["name"] == "mlp/student" and st["speedup"] > 0
    assert 0 < st["student"]["test_metric"] <= 1 and st["student"]["model_bytes"] > 0
    assert "| digits | 1 | mlp/student " in done.stdout


@pytest.mark.skipif(
    not (ROOT.parent / "shared" / "data" / "california_housing").exists(),
    reason="no California housing file",
)
def test_conformal_folds_benchmark_compares_the_spreads_tiny():
    done = run_benchmark("conformal_folds.py", "--splits", "1", "--rows", "200", timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| spread")]
    assert len(rows) == 2 and all(line.count("(") == 3 for line in rows)
    assert "of the folds' mean" in done.stdout and "fold by fold" in done.stdout
    refits = [line for line in done.stdout.splitlines() if line.startswith("| refits")]
    assert len(refits) == 3 and all(line.count("(") == 3 for line in refits)
