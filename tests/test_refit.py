"""Refit on all rows (runner.refit=true): after a bagged member's folds, one more fit on every
pooled row, as long as its folds trained (their best epochs or trees), serves instead of the
K fold models; the ensemble keeps the weights it learned out of fold."""

from __future__ import annotations

import json
import signal
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from test_bagging import SERVE, table_file
from test_spec import spec_of

import models
from helpers import (
    INFRA_MEMBERS,
    TESTS,
    TOY_KIND,
    read_summary,
    run_cli,
    run_ensembles_cli,
    serve_elsewhere,
    start_cli,
    stop_cli,
)
from models.base import InputSpec, Task
from models.boosters import STOP_ROUNDS
from models.training import TrainingOptions
from runner.contracts import CUT_SHORT, MEMBER, PARENT, REENSEMBLE, ROLE, SWEEP
from runner.spec import SpecError

REGRESSION = Task("regression")


def noisy_rows(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, X[:, 0] * 2 + np.sin(X[:, 1] * 3) + rng.normal(scale=0.5, size=n)


@pytest.mark.parametrize(
    "name, rounds",
    [("lightgbm", "n_estimators"), ("xgboost", "n_estimators"), ("catboost", "iterations")],
)
def test_a_booster_refit_grows_exactly_the_trees_its_early_stopped_fit_kept(name, rounds):
    """Refitted on the same rows with the refit settings, the booster is the early-stopped
    one: same predictions (an off-by-one in the library's count of the best round would
    show), and it no longer asks for held-out rows."""
    X, y = noisy_rows()
    entry = models.get(name)
    hparams = {rounds: 3000, "learning_rate": 0.3, STOP_ROUNDS: 10}
    spec, options = InputSpec(n_features=5), TrainingOptions()
    train, held = (X[:200], y[:200]), (X[200:], y[200:])
    stopped = entry.train(spec, REGRESSION, hparams, train, held, options, seed=3)
    assert 0 < stopped.info["best_iteration"] < 3000 - 10
    refit, training = entry.refit_params(hparams, options.as_params(), [stopped.info])
    assert STOP_ROUNDS not in refit and training == options.as_params()
    again = entry.train(spec, REGRESSION, refit, train, train, options, seed=3)
    np.testing.assert_allclose(
        again.member.predict(held[0], REGRESSION),
        stopped.member.predict(held[0], REGRESSION),
        rtol=1e-6,
        atol=1e-6,
    )


def test_a_booster_refit_takes_the_mean_of_its_folds_and_leaves_other_settings():
    entry = models.get("xgboost")
    hparams = {"n_estimators": 5000, "max_depth": 4, STOP_ROUNDS: 100}
    fits = [{"best_iteration": 99}, {"best_iteration": 140}, {"best_iteration": 160}]
    refit, _ = entry.refit_params(hparams, {}, fits)
    assert refit == {"n_estimators": 134, "max_depth": 4}  # mean 133 + 1 (0-based rounds)
    assert entry.refit_params({"n_estimators": 50}, {}, fits)[0] == {"n_estimators": 50}


def test_kinds_without_a_stopping_rule_refit_as_they_are():
    hparams = {"n_estimators": 200}
    assert models.get("extra_trees").refit_params(hparams, {"epochs": 5}, [{}]) == (
        hparams,
        {"epochs": 5},
    )


def test_a_keras_member_records_its_best_epoch_and_refits_for_the_folds_mean():
    X, y = noisy_rows(400)
    entry = models.get("mlp")
    options = TrainingOptions(epochs=60, batch_size=32, learning_rate=0.05, early_stopping=2)
    hparams = {"depth": 2, "width": 64}
    trained = entry.train(
        InputSpec(n_features=5),
        REGRESSION,
        hparams,
        (X[:100], y[:100]),
        (X[100:], y[100:]),
        options,
        seed=0,
    )
    losses = trained.history["val_loss"]
    assert trained.info["restored"], "a tiny training set should overfit and stop early"
    assert trained.info["best_epoch"] == int(np.argmin(losses)) + 1 < trained.epochs_run
    _, training = entry.refit_params(
        hparams, options.as_params(), [{"best_epoch": 7, "epochs_run": 9}, {"best_epoch": 10}]
    )
    assert training["epochs"] == 8 and training["early_stopping"] == 0  # round(8.5) -> 8
    _, unchanged = entry.refit_params(hparams, {"epochs": 30, "early_stopping": 0}, [{}])
    assert unchanged == {"epochs": 30, "early_stopping": 0}


def test_a_keras_member_that_never_stops_early_records_the_epoch_keras_restored():
    """Keras restores the best epoch at the end of every fit with early stopping on, also
    when patience never ran out: the record names that epoch, not the last one."""
    X, y = noisy_rows(400)
    entry = models.get("mlp")
    options = TrainingOptions(epochs=12, batch_size=32, learning_rate=0.05, early_stopping=50)
    trained = entry.train(
        InputSpec(n_features=5),
        REGRESSION,
        {"depth": 2, "width": 64},
        (X[:100], y[:100]),
        (X[100:], y[100:]),
        options,
        seed=0,
    )
    losses = trained.history["val_loss"]
    assert trained.epochs_run == 12
    best = int(np.argmin(losses)) + 1
    assert best < 12, "the fixed seed makes an early epoch the best"
    assert (trained.info["best_epoch"], trained.info["restored"]) == (best, True)
    held = trained.member.model.evaluate(
        X[100:], trained.member.target.forward(y[100:]), verbose=0
    )[0]
    assert held == pytest.approx(losses[best - 1], rel=1e-4)


def test_a_training_in_phases_keeps_the_best_epoch_of_its_last_phase():
    """Transfer learning fits twice; each fit restores its own best epoch, so the weights
    are the last phase's best, even when an epoch of the first phase scored better."""
    from models.keras_kind import kept_weights

    options = TrainingOptions(epochs=6, early_stopping=10)
    history = {"val_loss": [0.9, 0.2, 0.5, 0.4, 0.3, 0.35], "phase": [1, 1, 1, 2, 2, 2]}
    assert kept_weights(None, history, options) == {"best_epoch": 5, "restored": True}
    history["val_loss"][-1] = 0.1
    assert kept_weights(None, history, options) == {"best_epoch": 6, "restored": False}
    off = replace(options, early_stopping=0)
    assert kept_weights(None, history, off) == {"best_epoch": 6, "restored": False}


def test_a_keras_refit_trains_its_folds_epochs_on_their_schedule_span():
    """Folds of 60 epochs on a cosine schedule kept 8 epochs: the refit trains 8 epochs at
    the rates the folds had then, not a cosine squeezed into 8 epochs (ending near 0)."""
    X, y = noisy_rows(200)
    entry = models.get("mlp")
    fold = TrainingOptions(
        epochs=60, learning_rate=0.01, early_stopping=2, schedule={"name": "warmup_cosine"}
    )
    _, training = entry.refit_params({}, fold.as_params(), [{"best_epoch": 8}])
    refit = TrainingOptions.from_params(training)
    assert (refit.epochs, refit.schedule_epochs, refit.early_stopping) == (8, 60, 0)
    trained = entry.train(
        InputSpec(n_features=5), REGRESSION, {"depth": 1, "width": 8}, (X, y), (X, y), refit, seed=0
    )
    rates = trained.history["lr"]
    assert len(rates) == 8
    assert rates[-1] > 0.95 * 0.01  # cosine over 60 epochs: 0.5 * (1 + cos(pi * 7 / 59))
    with pytest.raises(ValueError, match="schedule_epochs"):
        TrainingOptions(schedule_epochs=0)


def test_refit_needs_bagging_and_a_boolean():
    with pytest.raises(SpecError, match=r"^runner.refit: refits a bagged member .* runner.folds=0"):
        spec_of("runner.refit=true")
    with pytest.raises(SpecError, match=r"^runner.refit: must be true or false, got 'maybe'"):
        spec_of("runner.folds=3", "runner.refit=maybe")
    assert spec_of("runner.folds=3", "runner.refit=true").refit


@pytest.mark.slow
def test_a_refit_sweep_nests_refits_in_their_members_and_serves_them(tmp_path):
    """Each bagged member fits once more on all pooled rows, as a run nested in its member's;
    the booster grows the trees its folds kept on average; the ensemble keeps its out-of-fold
    weights, and the model it serves (in a fresh process, on raw rows) is the refits'."""
    path = table_file(tmp_path)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=tabular",
        f"data.path={path}",
        "data.target=label",
        "runner.folds=3",
        "runner.refit=true",
        "ensemble=weighted",
        "training.epochs=3",
        *(f"~members.{m}" for m in ("xgboost", "catboost", "hgb", "extra_trees", "knn")),
        *(f"~members.{m}" for m in ("wide_deep", "selu")),
        "members.lightgbm.hparams.n_estimators=400",
        "members.lightgbm.hparams.learning_rate=0.3",
        "members.lightgbm.hparams.early_stopping_rounds=10",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refit on all rows (served)" in done.stdout
    summary = read_summary(tmp_path / "out")
    members = {m["name"]: m for m in summary["members"]}
    assert sorted(members) == ["lightgbm", "linear", "mlp"]
    assert all(m["refit"]["status"] == "FINISHED" for m in members.values())
    client = MlflowClient(db)
    runs = client.search_runs(
        [summary["experiment_id"]], f"tags.`{SWEEP}` = '{summary['sweep_id']}'"
    )
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    by_role: dict[str, list] = {}
    for r in runs:
        by_role.setdefault(r.data.tags[ROLE], []).append(r)
    assert len(by_role["fold"]) == 9 and len(by_role["refit"]) == 3
    member_runs = {r.data.tags[MEMBER]: r.info.run_id for r in by_role["member"]}
    for refit in by_role["refit"]:
        name = refit.data.tags[MEMBER].removesuffix("/refit")
        assert refit.data.tags[PARENT] == member_runs[name]
        assert "final_train_log_loss" in refit.data.metrics  # no held-out rows to call val
        # nor its epochs' scores of its own rows (the Keras member's curves)
        assert not [k for k in refit.data.metrics if k.startswith("val_")], refit.data.metrics
        if name == "mlp":
            curve = client.get_metric_history(refit.info.run_id, "train_loss")
            assert [m.step for m in curve] == list(range(1, len(curve) + 1)) and curve
        assert members[name]["refit"]["run_id"] == refit.info.run_id

    def info(run_id: str, where: str) -> dict:
        local = client.download_artifacts(run_id, "member.json", str(tmp_path / where))
        return json.loads(open(local).read())

    folds = [r for r in by_role["fold"] if r.data.tags[PARENT] == member_runs["lightgbm"]]
    kept = [info(r.info.run_id, r.info.run_id)["best_iteration"] for r in folds]
    assert all(0 < k < 390 for k in kept), kept  # early stopping cut each fold short
    refit_run = members["lightgbm"]["refit"]["run_id"]
    hparams = info(refit_run, "refit")["hparams"]
    assert hparams["n_estimators"] == max(1, round(float(np.mean(kept))))
    assert "early_stopping_rounds" not in hparams

    ens = summary["ensemble"]
    refit = ens["refit"]
    assert refit["fell_back"] == [] and set(refit["member_runs"]) == set(ens["weights"])
    # prediction time per 1000 rows: a bag's is its folds' summed, the served ensemble's its
    # weighted members' (refits) summed
    assert "prediction time: the served members take" in done.stdout
    for member in by_role["member"]:
        name = member.data.tags[MEMBER]
        folds = [f for f in by_role["fold"] if f.data.tags[PARENT] == member.info.run_id]
        summed = sum(f.data.metrics["final_predict_ms_per_1000"] for f in folds)
        assert members[name]["predict_ms_per_1000"] == pytest.approx(summed)
        assert member.data.metrics["final_predict_ms_per_1000"] == pytest.approx(summed)
        # the CPU its workers spent: each fold's, and the bag's their sum
        cpu = [f.data.metrics["train_cpu_seconds"] for f in folds]
        assert all(c > 0 for c in cpu)
        assert members[name]["train_cpu_seconds"] == pytest.approx(sum(cpu))
        assert member.data.metrics["train_cpu_seconds"] == pytest.approx(sum(cpu))
    served = [members[n]["refit"]["predict_ms_per_1000"] for n, w in ens["weights"].items() if w]
    assert all(t > 0 for t in served)
    assert ens["predict_ms_per_1000"] == pytest.approx(sum(served))
    served = serve_elsewhere(tmp_path, db, SERVE, ens["model_uri"], path)
    assert served.returncode == 0, served.stderr[-3000:]
    pred = np.array(json.loads(served.stdout.strip().splitlines()[-1]))
    local = client.download_artifacts(ens["run_id"], "refit_predictions.npz", str(tmp_path / "r"))
    with np.load(local) as npz:
        refit_test = npz["test"]
    local = client.download_artifacts(ens["run_id"], "predictions.npz", str(tmp_path / "b"))
    with np.load(local) as npz:
        bagged_test = npz["test"]
    assert np.abs(refit_test - bagged_test).max() > 1e-3  # the two models differ
    np.testing.assert_allclose(pred[2:], refit_test[2:], rtol=1e-4, atol=1e-5)
    assert ens["refit"]["test_metric"] == pytest.approx(
        client.get_run(ens["run_id"]).data.metrics["refit_test_accuracy"]
    )

    # re-ensembling the sweep's members with another method serves the same refits, and a
    # latency budget counts what the refits take to predict, not their bags
    again = run_ensembles_cli(
        tmp_path,
        f"experiment={summary['experiment']}",
        "method=greedy",
        "max_latency_ms=100000",
        f"tracking_uri={db}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    (rerun,) = client.search_runs([summary["experiment_id"]], f"tags.`{REENSEMBLE}` = 'true'")
    weighted = [k for k, v in rerun.data.metrics.items() if k.startswith("weight.") and v > 0]
    assert f"served with {len(weighted)} member(s) refitted on all rows" in again.stdout
    refit_ms = {n: members[n]["refit"]["predict_ms_per_1000"] for n in members}
    budget_ms = sum(refit_ms[k.removeprefix("weight.")] for k in weighted)
    assert rerun.data.metrics["budget.cost"] == pytest.approx(budget_ms)
    board = client.download_artifacts(rerun.info.run_id, "leaderboard.txt", str(tmp_path / "lb"))
    with open(board) as handle:  # each served refit's score beside its bag's
        (line,) = [line for line in handle.read().splitlines() if "refit on all rows" in line]
    assert line.startswith("refit on all rows (served): test accuracy") and "weights ()" not in line
    local = client.download_artifacts(rerun.info.run_id, "refit.json", str(tmp_path / "again"))
    refit_runs = {
        r.data.tags[MEMBER].removesuffix("/refit"): r.info.run_id for r in by_role["refit"]
    }
    with open(local) as handle:
        served_runs = json.load(handle)["member_runs"]
    assert served_runs and all(served_runs[n] == refit_runs[n] for n in served_runs)
    local = client.download_artifacts(
        rerun.info.run_id, "refit_predictions.npz", str(tmp_path / "a")
    )
    with np.load(local) as npz:
        refit_test = npz["test"]
    served = serve_elsewhere(tmp_path, db, SERVE, f"runs:/{rerun.info.run_id}/model", path)
    assert served.returncode == 0, served.stderr[-3000:]
    pred = np.array(json.loads(served.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(pred[2:], refit_test[2:], rtol=1e-4, atol=1e-5)
    # with a coverage target: the bagged members' curve, the served refits' coverage beside
    covered = run_ensembles_cli(
        tmp_path,
        f"experiment={summary['experiment']}",
        "method=mean",
        "coverage=0.8",
        "log_model=false",
        f"tracking_uri={db}",
    )
    assert covered.returncode == 0, covered.stderr[-3000:]
    (run,) = client.search_runs(
        [summary["experiment_id"]], "tags.`runner.reensemble` = 'true' and params.method = 'mean'"
    )
    assert 0 <= run.data.metrics["refit_test_conformal_coverage"] <= 1
    assert "coverage.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # a refit the time limit cut short (tagged so by the sweep) is not served, as in the sweep:
    # its bag is (the command served a 1-epoch refit in place of a whole bag)
    cut = sorted(served_runs)[0]
    client.set_tag(refit_runs[cut], CUT_SHORT, "1")
    again = run_ensembles_cli(
        tmp_path,
        f"experiment={summary['experiment']}",
        "method=mean",
        "log_model=false",
        f"tracking_uri={db}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    (said,) = [line for line in again.stdout.splitlines() if "without a refit: " in line]
    assert cut in said.split("without a refit: ")[1].strip().split(", ")


@pytest.mark.slow
def test_a_refit_sweep_stopped_mid_refit_resumes_without_a_second_refit_run(workdir):
    """SIGTERM once the first refit finished: the rerun keeps that refit (same run), trains
    the missing ones, and each member ends with one FINISHED refit nested in its run."""
    db = f"sqlite:///{workdir}/mlflow.db"
    args = [
        "+experiment=quickstart",
        *INFRA_MEMBERS,
        f"tracking.uri={db}",
        "runner.sweep_id=refit-term",
        "runner.folds=2",
        "runner.refit=true",
        "training.epochs=30",
    ]
    proc = start_cli(workdir, *args, until="logistic/refit finished")
    _, stderr = stop_cli(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-2000:]
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    first = {
        r.data.tags[MEMBER]: r.info.run_id
        for r in client.search_runs([experiment])
        if r.data.tags[ROLE] == "refit" and r.info.status == "FINISHED"
    }
    assert "logistic/refit" in first
    done = run_cli(workdir, *args, "hydra.run.dir=out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_summary(workdir / "out")["ensemble"]["refit"]["fell_back"] == []
    runs = client.search_runs([experiment])
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    members = {r.data.tags[MEMBER]: r.info.run_id for r in runs if r.data.tags[ROLE] == "member"}
    refits = Counter(
        (r.data.tags[PARENT], r.data.tags[MEMBER])
        for r in runs
        if r.data.tags[ROLE] == "refit" and r.info.status == "FINISHED"
    )
    assert set(refits) == {(members[n], f"{n}/refit") for n in ("logistic", "mlp", "svm")}
    assert set(refits.values()) == {1}
    kept = {
        r.data.tags[MEMBER]: r.info.run_id
        for r in runs
        if r.data.tags[ROLE] == "refit" and r.info.status == "FINISHED"
    }
    assert all(kept[label] == run_id for label, run_id in first.items())


def test_a_sweep_none_of_whose_refits_finished_serves_and_reports_its_bags(workdir):
    """Every refit failed (or the time limit skipped them): the leaderboard still had an
    'ensemble, refit (served)' row, coverage 'served with refits' and refit_test_* metrics,
    while the served model held the bags."""
    db = f"sqlite:///{workdir}/mlflow.db"
    members = [f"~members.{m}" for m in ("mlp", "selu", "convnet", "resnet", "logistic", "svm")]
    toys = []
    for name, temperature in (("near", 1.0), ("far", 5.0)):
        toys += [
            f"+model@members.{name}=toy",
            f"++members.{name}.hparams.temperature={temperature}",
        ]
        # the folds fit 120 rows each, a refit all 240: only the refits fail
        toys.append(f"++members.{name}.hparams.max_rows=200")
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        *TOY_KIND,
        *members,
        *toys,
        "data.max_rows=300",
        "runner.folds=2",
        "runner.refit=true",
        "ensemble.coverage=0.8",
        "ensemble.n_boot=10",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
        pythonpath=TESTS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    assert all(m["refit"]["status"] == "FAILED" for m in summary["members"]), summary["members"]
    ens = summary["ensemble"]
    assert "refit" not in ens, ens.get("refit")
    assert "refit (served)" not in done.stdout and "served with refits" not in done.stdout
    run = MlflowClient(db).get_run(ens["run_id"])
    assert not [k for k in run.data.metrics if k.startswith("refit_")], run.data.metrics


def test_a_refit_cut_short_by_the_time_limit_is_not_served_its_bag_is():
    """A refit stopped after 1 of its 40 epochs replaced its fully trained bag in the served
    model, and the served ensemble scored worse."""
    from runner.runtree import MemberRecord
    from runner.sweep import served_refits

    def refit(name: str, status: str, **fit) -> MemberRecord:
        return MemberRecord(name=name, model="mlp", run_id=f"{name}-refit", status=status, fit=fit)

    refits = {
        "whole": refit("whole", "FINISHED"),
        "cut": refit("cut", "FINISHED", stopped_at_deadline=True, epochs_run=1),
        "trees": refit("trees", "FINISHED", stopped_at_deadline=True, rounds_run=50),
        "skipped": refit("skipped", "SKIPPED"),
        "gone": refit("gone", "FINISHED"),  # its member did not finish
    }
    runs = {name: f"{name}-bag" for name in ("whole", "cut", "trees", "skipped")}
    assert served_refits(refits, runs) == {"whole": "whole-refit"}
