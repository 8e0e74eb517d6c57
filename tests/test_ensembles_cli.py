"""``python -m ensembles``: re-ensembling from a real MLflow store, and its one-line errors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from test_ensembles import informative_and_noise

from helpers import run_ensembles_cli

run = run_ensembles_cli


def make_store(tmp: Path, member_status: dict[str, str], nan: set[str] = frozenset()) -> str:
    """An experiment 'exp' with one sweep whose members hold synthetic predictions."""
    db = f"sqlite:///{tmp}/store.db"
    client = MlflowClient(db)
    exp = client.create_experiment("exp")
    tags = {"runner.experiment": "exp", "runner.sweep_id": "s1"}
    parent = client.create_run(exp, run_name="sweep", tags={**tags, "runner.role": "sweep"})
    P, y = informative_and_noise(n=120, seed=1, noisy=len(member_status) - 1)
    Pt, yt = informative_and_noise(n=120, seed=2, noisy=len(member_status) - 1)
    for i, (name, status) in enumerate(member_status.items()):
        run = client.create_run(
            exp,
            run_name=name,
            tags={
                **tags,
                "runner.role": "member",
                "runner.member": name,
                "mlflow.parentRunId": parent.info.run_id,
            },
        )
        folder = tmp / name
        folder.mkdir()
        val = np.full_like(P[i], np.nan) if name in nan else P[i]
        np.savez(
            folder / "predictions.npz",
            val=val,
            test=Pt[i],
            y_val=y,
            y_test=yt,
            fingerprint=np.array("fp1"),
        )
        (folder / "member.json").write_text(json.dumps({"n_features": 4}))
        client.log_artifacts(run.info.run_id, str(folder))
        client.set_terminated(run.info.run_id, status)
    client.set_terminated(parent.info.run_id, "FINISHED")
    return db


def another_sweep(
    client: MlflowClient,
    folder: Path,
    name: str,
    pred: np.ndarray,
    y: np.ndarray,
    fingerprint: str,
    start: int | None = None,
) -> None:
    """A finished sweep ``s2`` of experiment ``exp`` with one finished member ``name`` whose
    validation and test predictions are ``pred`` of ``y`` on split ``fingerprint``."""
    exp = client.get_experiment_by_name("exp").experiment_id
    tags = {"runner.experiment": "exp", "runner.sweep_id": "s2"}
    parent = client.create_run(exp, run_name="sweep2", tags={**tags, "runner.role": "sweep"})
    member_tags = {
        **tags,
        "runner.role": "member",
        "runner.member": name,
        "mlflow.parentRunId": parent.info.run_id,  # as the runner nests every member
    }
    other = client.create_run(exp, run_name=name, start_time=start, tags=member_tags)
    folder.mkdir()
    np.savez(
        folder / "predictions.npz",
        val=pred,
        test=pred,
        y_val=y,
        y_test=y,
        fingerprint=np.array(fingerprint),
    )
    (folder / "member.json").write_text(json.dumps({"n_features": 4}))
    client.log_artifacts(other.info.run_id, str(folder))
    client.set_terminated(other.info.run_id, "FINISHED")
    client.set_terminated(parent.info.run_id, "FINISHED")


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_bad_method_fails_before_touching_mlflow(tmp_path):
    line = one_error_line(run(tmp_path, "experiment=x", "method=boosting"))
    assert "unknown ensemble method 'boosting'; known: greedy, mean, stacking, weighted" in line
    assert not (tmp_path / "mlflow.db").exists()
    line = one_error_line(run(tmp_path, "experiment=x", "method=greedy", "n_steps=-1"))
    assert "n_steps must be an integer >= 1, got -1" in line
    assert "experiment=NAME is required" in one_error_line(run(tmp_path, "method=mean"))
    line = one_error_line(run(tmp_path, "experiment=x", "cv_folds=abc"))
    assert "cv_folds must be an integer >= 2, got 'abc'" in line
    line = one_error_line(run(tmp_path, "experiment=x", "log_model=false", "register_as=y"))
    assert "register_as 'y' registers the logged model, and log_model=false logs none" in line


@pytest.mark.parametrize(
    "word, said",
    [
        ("log_model=no", "log_model must be true or false, got 'no'"),  # was read as true
        ("calibrate=no", "calibrate must be true or false, got 'no'"),
        ("refit=maybe", "refit must be true or false, got 'maybe'"),
        ("register_as=my model/v1", "register_as 'my model/v1' must match ^[A-Za-z0-9]"),
        ("sweeps=", "sweeps must be latest, all or sweep ids, got ''"),
        # refused as unknown at once, not as "does not score classification" after the store
        ("metric=roc_auc", "unknown metric 'roc_auc'; known: accuracy, log_loss, rmse, mae"),
        ("n_boot=2", "n_boot must be an integer >= 10, got 2"),  # as ensemble.n_boot
        ("sweeps=,", "sweeps must be latest, all or sweep ids, got ','"),
        # the runner's spellings: they were taken for the method's parameters
        ("tracking.uri=sqlite:///m.db", "tracking.uri=: this command spells it tracking_uri="),
        ("runner.seed=1", "runner.seed=: this command spells it seed="),
        ("ensemble.method=greedy", "ensemble.method=: this command spells it method="),
        (  # MLflow's traceback about its file store
            "tracking_uri=/some/where/mlflow.db",
            "tracking_uri: unknown scheme '' in '/some/where/mlflow.db'; allowed: sqlite",
        ),
    ],
)
def test_bad_options_are_refused_before_the_store_is_touched(word, said):
    from runner.reensemble import UsageError, parse

    with pytest.raises(UsageError, match=re.escape(said)):
        parse(["experiment=x", word])


def test_the_runners_spelling_of_the_store_is_refused_without_its_password():
    from runner.reensemble import UsageError, parse

    with pytest.raises(UsageError) as refused:
        parse(["experiment=x", "tracking.uri=http://alice:S3cret@h:5000"])
    assert "tracking_uri=" in str(refused.value) and "S3cret" not in str(refused.value)


@pytest.mark.parametrize("method", ["weighted", "greedy", "stacking", "mean"])
def test_the_command_fits_a_method_with_the_parameters_a_sweep_gives_it(method):
    from test_spec import spec_of

    from runner.reensemble import parse

    swept = spec_of(f"ensemble={method}").ensemble
    assert parse(["experiment=x", f"method={method}"]).params == swept.params
    if method == "weighted":  # l2 defaults to the sweep's 0.1; a budget option stays apart
        assert swept.params["l2"] == 0.1
        args = parse(["experiment=x", "l2=0", "max_members=2", "param.max_members=5"])
        assert args.params == {"l2": 0, "max_members": 5} and args.max_members == 2
        # the same setting whether written l2=0 or l2=0.0: one settings hash, not two runs
        assert type(args.params["l2"]) is float and type(args.params["max_members"]) is int
        again = parse(["experiment=x", "l2=0.0", "param.max_members=5"])
        assert json.dumps(again.params, sort_keys=True) == json.dumps(args.params, sort_keys=True)
        swept = spec_of("ensemble=weighted", "ensemble.params.l2=0").ensemble  # a sweep alike
        assert type(swept.params["l2"]) is float


def test_a_dead_tracking_server_fails_in_one_line_at_once(tmp_path):
    from helpers import free_port

    started = time.perf_counter()
    done = run(tmp_path, "experiment=x", f"tracking_uri=http://127.0.0.1:{free_port()}")
    line = one_error_line(done)
    assert "tracking_uri http://127.0.0.1:" in line and "is unreachable within 10s" in line
    assert time.perf_counter() - started < 60  # MLflow's own retries took minutes


def test_a_store_that_does_not_exist_is_said_and_not_created(tmp_path):
    db = f"sqlite:///{tmp_path}/typo/mlflow.db"
    line = one_error_line(run(tmp_path, "experiment=exp", f"tracking_uri={db}"))
    assert line == (
        f"error: tracking_uri {db}: no MLflow store there (no such file); point it at the "
        "store the sweeps wrote"
    )
    assert not (tmp_path / "typo").exists()


def test_unknown_experiment_and_no_finished_members_are_clear(tmp_path):
    db = make_store(tmp_path, {"a": "FAILED", "b": "KILLED"})
    line = one_error_line(run(tmp_path, "experiment=nope", f"tracking_uri={db}"))
    assert "no experiment 'nope' in the store; experiments: exp" in line
    # +experiment=team/nested logged to the MLflow experiment team.nested: read as that
    line = one_error_line(run(tmp_path, "experiment=team/nested", f"tracking_uri={db}"))
    assert "no experiment 'team.nested' in the store" in line
    line = one_error_line(run(tmp_path, "experiment=exp", f"tracking_uri={db}"))
    assert "experiment 'exp' has no finished members in sweeps s1" in line


def test_a_deleted_experiment_is_said_with_how_to_restore_it(tmp_path):
    from mlflow.tracking import MlflowClient

    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED"})
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("exp").experiment_id
    client.delete_experiment(experiment)
    line = one_error_line(run(tmp_path, "experiment=exp", f"tracking_uri={db}"))
    assert line == (
        f"error: experiment 'exp' (id {experiment}) is deleted; restore it (mlflow experiments "
        f"restore --experiment-id {experiment})"
    )


def test_members_of_a_parent_run_deleted_in_mlflow_are_left_out(tmp_path):
    """A sweep's parent deleted in the UI and its sweep id run again: the old members (not
    deleted with it) had been ensembled beside the new ones, each name twice."""
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    client = MlflowClient(db)
    exp = client.get_experiment_by_name("exp").experiment_id
    (old,) = client.search_runs([exp], "tags.`runner.role` = 'sweep'")
    client.delete_run(old.info.run_id)
    tags = {"runner.experiment": "exp", "runner.sweep_id": "s1", "runner.role": "sweep"}
    new = client.create_run(exp, run_name="sweep", tags=tags)
    client.set_terminated(new.info.run_id, "FINISHED")
    for member in client.search_runs([exp], "tags.`runner.role` = 'member'"):
        if member.data.tags["runner.member"] != "c":  # a and b trained again under the new one
            client.set_tag(member.info.run_id, "mlflow.parentRunId", new.info.run_id)
    done = run(tmp_path, "experiment=exp", f"tracking_uri={db}", "method=mean", "log_model=false")
    assert done.returncode == 0, done.stderr
    (ens,) = client.search_runs([exp], "tags.`runner.role` = 'ensemble'")
    assert ens.data.tags["runner.members"] == "a,b"


def test_fewer_than_two_usable_members_is_clear(tmp_path):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED"}, nan={"b"})
    line = one_error_line(run(tmp_path, "experiment=exp", f"tracking_uri={db}"))
    assert "need at least two usable members to ensemble, got 1 (a)" in line


def test_a_member_with_bad_predictions_is_left_out_and_the_rest_ensembled(tmp_path):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"}, nan={"c"})
    done = run(tmp_path, "experiment=exp", f"tracking_uri={db}", "method=mean", "log_model=false")
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert said.count("left out") == 1, said
    assert "member c left out of the ensemble: predictions contain NaN or infinite" in said
    client = MlflowClient(db)
    (ens,) = client.search_runs(
        [client.get_experiment_by_name("exp").experiment_id], "tags.`runner.role` = 'ensemble'"
    )
    assert ens.info.status == "FINISHED"
    assert ens.data.tags["runner.members"] == "a,b"
    assert ens.data.metrics["weight.a"] == ens.data.metrics["weight.b"] == 0.5


def test_ensembling_again_with_the_same_settings_adds_nothing_and_new_settings_add_a_run(
    tmp_path,
):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    words = ("experiment=exp", f"tracking_uri={db}", "method=greedy", "log_model=false")
    first = run(tmp_path, *words, "n_steps=10")
    assert first.returncode == 0, first.stderr
    again = run(tmp_path, *words, "n_steps=10")
    assert again.returncode == 0, again.stderr
    assert "already combines these members with these settings; nothing new" in again.stdout
    changed = run(tmp_path, *words, "n_steps=5")
    assert changed.returncode == 0, changed.stderr
    client = MlflowClient(db)
    runs = client.search_runs(
        [client.get_experiment_by_name("exp").experiment_id], "tags.`runner.role` = 'ensemble'"
    )
    assert len(runs) == 2  # one per distinct setting
    settings = sorted(
        json.loads(r.data.tags["runner.ensemble_settings"])["params"]["n_steps"] for r in runs
    )
    assert settings == [5, 10]


def test_a_coverage_its_validation_rows_cannot_reach_is_refused_in_one_line(tmp_path):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED"})
    done = run(tmp_path, "experiment=exp", f"tracking_uri={db}", "coverage=0.995")
    assert one_error_line(done) == (
        "error: coverage=0.995 needs at least 199 calibration rows for finite intervals (or "
        "prediction sets short of every class); the validation rows are 120: lower the "
        "coverage, or give validation more rows"
    )
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("exp").experiment_id
    assert not client.search_runs([experiment], "tags.`runner.role` = 'ensemble'")


def test_an_ensemble_run_of_the_command_holds_the_leaderboards_a_sweep_logs(tmp_path):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    done = run(tmp_path, "experiment=exp", f"tracking_uri={db}", "method=greedy", "log_model=false")
    assert done.returncode == 0, done.stderr
    client = MlflowClient(db)
    (ens,) = client.search_runs(
        [client.get_experiment_by_name("exp").experiment_id], "tags.`runner.role` = 'ensemble'"
    )
    files = {f.path for f in client.list_artifacts(ens.info.run_id)}
    assert {"leaderboard.txt", "leaderboard.md", "leaderboard.html"} <= files
    board = Path(client.download_artifacts(ens.info.run_id, "leaderboard.txt", str(tmp_path)))
    lines = board.read_text().splitlines()
    assert lines[0].split()[:5] == ["member", "model", "status", "val", "accuracy"]
    assert lines[2].startswith("ensemble (greedy)")
    assert sorted(line.split()[0] for line in lines[3:6]) == ["a", "b", "c"]
    # on the run before it ended: a failure while logging them leaves it FAILED, not FINISHED
    stored = Path(ens.info.artifact_uri.removeprefix("file://")) / "leaderboard.html"
    assert ens.info.status == "FINISHED"
    assert math.floor(stored.stat().st_mtime * 1000) <= ens.info.end_time


def test_all_sweeps_whose_other_split_is_left_out_find_the_one_sweeps_ensemble(tmp_path):
    """sweeps=all, where another sweep's members hold another data split, combines one
    sweep's members: the same ensemble as that sweep's own, so nothing new is logged."""
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    client = MlflowClient(db)
    exp = client.get_experiment_by_name("exp").experiment_id
    P, y = informative_and_noise(n=80, seed=3, noisy=0)
    another_sweep(client, tmp_path / "other", "a", P[0], y, "fp2")
    words = ("experiment=exp", f"tracking_uri={db}", "method=mean", "log_model=false")
    first = run(tmp_path, *words, "sweeps=s1")
    assert first.returncode == 0, first.stderr
    again = run(tmp_path, *words, "sweeps=all")
    assert again.returncode == 0, again.stderr
    assert (
        "already combines these members with these settings; nothing new to log (1 member(s) "
        "of another data split left out)"
    ) in again.stdout
    runs = client.search_runs([exp], "tags.`runner.role` = 'ensemble'")
    assert len(runs) == 1 and runs[0].data.tags["runner.members"] == "a,b,c"


def test_sweeps_all_over_a_regression_and_a_classification_sweep_ensembles_the_chosen_one(
    tmp_path,
):
    """Every +experiment=tabular table lands in one MLflow experiment: with a regression
    sweep's member beside a classification sweep's, sweeps=all refused every metric (the task
    was read from whichever member came first, not from the split it ensembles)."""
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    values = np.linspace(0.0, 1.0, 30)
    # the older sweep's member: collected first
    another_sweep(MlflowClient(db), tmp_path / "other", "r", values, values, "fp-r", start=1)
    done = run(tmp_path, "experiment=exp", f"tracking_uri={db}", "log_model=false", "sweeps=all")
    assert done.returncode == 0, done.stderr
    assert "val accuracy" in done.stdout


def test_re_ensembling_a_sweep_judges_it_by_the_sweeps_own_metric(tmp_path):
    """A sweep run with metric=log_loss is re-ensembled by log loss unless told otherwise
    (it was judged by accuracy, and so did not find the sweep's own ensemble run)."""
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    client = MlflowClient(db)
    exp = client.get_experiment_by_name("exp").experiment_id
    own = client.create_run(
        exp,
        run_name="ensemble",
        tags={
            "runner.experiment": "exp",
            "runner.sweep_id": "s1",
            "runner.role": "ensemble",
            "runner.ensemble_settings": json.dumps({"method": "weighted", "metric": "log_loss"}),
        },
    )
    client.set_terminated(own.info.run_id, "FINISHED")
    words = ("experiment=exp", f"tracking_uri={db}", "log_model=false")
    done = run(tmp_path, *words)
    assert done.returncode == 0, done.stderr
    assert "val log_loss" in done.stdout
    told = run(tmp_path, *words, "metric=accuracy")
    assert told.returncode == 0, told.stderr
    assert "val accuracy" in told.stdout


def test_latest_means_the_latest_finished_sweep(tmp_path):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED"})
    client = MlflowClient(db)
    exp = client.get_experiment_by_name("exp").experiment_id
    client.create_run(  # a newer sweep, still running: latest must not pick it
        exp, run_name="sweep2", tags={"runner.role": "sweep", "runner.sweep_id": "s2"}
    )
    done = run(tmp_path, "experiment=exp", f"tracking_uri={db}", "method=mean", "log_model=false")
    assert done.returncode == 0, done.stderr
    (ens,) = client.search_runs([exp], "tags.`runner.role` = 'ensemble'")
    assert ens.data.tags["runner.source_sweeps"] == "s1"


def test_re_ensembling_with_a_coverage_target_reports_and_logs_it(tmp_path):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    words = ("experiment=exp", f"tracking_uri={db}", "log_model=false")
    line = one_error_line(run(tmp_path, *words, "coverage=1.2"))
    assert "coverage must be null or a number in (0, 1), got 1.2" in line
    done = run(tmp_path, *words, "coverage=0.8")
    assert done.returncode == 0, done.stderr
    assert "conformal prediction sets for 80% coverage (calibrated on 120" in done.stdout
    client = MlflowClient(db)
    (ens,) = client.search_runs(
        [client.get_experiment_by_name("exp").experiment_id], "tags.`runner.role` = 'ensemble'"
    )
    assert 0.6 < ens.data.metrics["conformal.test_coverage"] <= 1.0
    assert json.loads(ens.data.tags["runner.ensemble_settings"])["coverage"] == 0.8


def test_re_ensembling_many_members_ensembles_the_best_candidates_and_says_so(tmp_path):
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    words = ("experiment=exp", f"tracking_uri={db}", "log_model=false", "method=mean")
    line = one_error_line(run(tmp_path, *words, "candidates=0"))
    assert "candidates must be an integer >= 2 or None, got 0" in line
    assert "max_candidates" not in line  # named as the user typed it
    done = run(tmp_path, *words, "candidates=2")
    assert done.returncode == 0, done.stderr
    assert "ensembled the 2 best of 3 members on validation" in done.stdout
    assert "candidates=null ensembles all" in done.stdout
    assert "ensemble.candidates" not in done.stdout  # the runner's option, not this command's
    client = MlflowClient(db)
    (ens,) = client.search_runs(
        [client.get_experiment_by_name("exp").experiment_id], "tags.`runner.role` = 'ensemble'"
    )
    weights = {k for k in ens.data.metrics if k.startswith("weight.")}
    assert len(weights) == 2
    assert json.loads(ens.data.tags["runner.ensemble_settings"])["candidates"] == 2


def test_a_killed_command_leaves_its_ensemble_run_killed_not_running(tmp_path):
    """SIGKILL runs no cleanup: the sentinel the command started ends its open run."""
    import sys

    db = make_store(tmp_path, {f"m{i}": "FINISHED" for i in range(24)})
    client = MlflowClient(db)
    exp = client.get_experiment_by_name("exp").experiment_id
    for steps in (10, 11, 12):  # a run that finished before it was stopped: again, anew
        words = ("experiment=exp", f"tracking_uri={db}", "method=greedy", "log_model=false")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ensembles", *words, f"n_steps={steps}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        query = f"tags.`runner.role` = 'ensemble' and params.n_steps = '{steps}'"
        try:
            deadline = time.time() + 120
            while not (runs := client.search_runs([exp], query)):
                assert proc.poll() is None and time.time() < deadline, "no ensemble run"
                time.sleep(0.02)
            proc.kill()  # dead, it holds no lock on the store: its run's status stays put
            proc.wait(timeout=30)
            (run,) = runs
            if client.get_run(run.info.run_id).info.status != "FINISHED":
                break
        finally:
            proc.kill()
            proc.wait(timeout=30)
    else:
        pytest.fail("every run finished before the command could be killed")
    deadline = time.time() + 60
    while (found := client.get_run(run.info.run_id)).info.status == "RUNNING":
        assert time.time() < deadline, "the run was left RUNNING"
        time.sleep(0.5)
    assert found.info.status == "KILLED", found.info.status
    assert found.data.tags["runner.error"].startswith("python -m ensembles (pid ")
    assert "ended without closing this run: killed; run it again" in found.data.tags["runner.error"]


def found_as_the_sweeps_own(
    tmp_path: Path, *settings: str
) -> tuple[MlflowClient, str, tuple[str, ...]]:
    """An ensemble of ``settings`` logged, then tagged as a sweep logs its own: re-ensembling
    without the settings finds it (the store's client, its experiment id and the words)."""
    db = make_store(tmp_path, {"a": "FINISHED", "b": "FINISHED", "c": "FINISHED"})
    words = ("experiment=exp", f"tracking_uri={db}", "method=greedy", "log_model=false")
    made = run(tmp_path, *words, *settings)
    assert made.returncode == 0, made.stderr
    client = MlflowClient(db)
    exp = client.get_experiment_by_name("exp").experiment_id
    (own,) = client.search_runs([exp], "tags.`runner.role` = 'ensemble'")
    client.delete_tag(own.info.run_id, "runner.reensemble")  # now as the sweep logs its own
    again = run(tmp_path, *words)
    assert again.returncode == 0, again.stderr
    assert f"ensemble run {own.info.run_id} already combines these members" in again.stdout
    return client, exp, words


def test_the_sweeps_own_seed_folds_and_resamples_are_the_defaults(tmp_path):
    """A sweep of runner.seed=1 (or other ensemble.cv_folds, n_boot): re-ensembling it the
    sweep's way logged a second ensemble, with other honest numbers, under seed 0."""
    client, exp, words = found_as_the_sweeps_own(tmp_path, "seed=1", "cv_folds=3", "n_boot=200")
    other = run(tmp_path, *words, "seed=2")  # said outright: another ensemble
    assert other.returncode == 0, other.stderr
    assert len(client.search_runs([exp], "tags.`runner.role` = 'ensemble'")) == 2


def test_the_sweeps_coverage_and_budget_are_the_defaults_and_null_turns_them_off(tmp_path):
    """A sweep that served prediction sets within a member budget, re-ensembled the sweep's
    way: the command dropped the sets and the budget (the served model's output changed) and
    logged a second ensemble run. ``coverage=null`` says outright: no sets."""
    settings = ("coverage=0.8", "max_members=2", "calibrate=false")
    client, exp, words = found_as_the_sweeps_own(tmp_path, *settings)
    off = run(tmp_path, *words, "coverage=null")
    assert off.returncode == 0, off.stderr
    assert "conformal" not in off.stdout
    runs = client.search_runs([exp], "tags.`runner.role` = 'ensemble'", order_by=["start_time"])
    assert len(runs) == 2
    settings = json.loads(runs[-1].data.tags["runner.ensemble_settings"])
    assert "coverage" not in settings and settings["max_members"] == 2
    assert settings["calibrate"] is False
    # a budget given anew replaces the sweep's whole budget (null: none), max_members too
    budget = run(tmp_path, *words, "max_latency_ms=null")
    assert budget.returncode == 0, budget.stderr
    runs = client.search_runs([exp], "tags.`runner.role` = 'ensemble'", order_by=["start_time"])
    settings = json.loads(runs[-1].data.tags["runner.ensemble_settings"])
    assert "max_latency_ms" not in settings and "max_members" not in settings
    assert settings["coverage"] == 0.8  # still the sweep's


def test_sweeps_of_several_splits_ensemble_the_split_most_members_ran_on_the_newest_on_a_tie():
    """Two weekly sweeps of ten members each: sweeps=all re-ensembled last week's."""
    from ensembles.stage import MemberPredictions
    from runner.reensemble import chosen_split

    def ran_on(*splits: str) -> list[MemberPredictions]:
        empty = np.zeros(3)
        return [MemberPredictions(f"m{i}", empty, empty, fp) for i, fp in enumerate(splits)]

    assert chosen_split(ran_on("week1", "week1", "week2", "week2")) == "week2"
    assert chosen_split(ran_on("week1", "week1", "week1", "week2", "week2")) == "week1"
    assert chosen_split(ran_on("week2", "week1")) == "week1"


def test_names_and_ids_are_read_as_typed():
    """register_as=2024_01 was registered as 202401 (and 1e3 as 1000.0): names and ids are
    text, not numbers."""
    from runner.reensemble import parse

    args = parse(["experiment=2024_01", "register_as=1e3", "fingerprint=0123", "sweeps=7"])
    assert (args.experiment, args.register_as, args.fingerprint, args.sweeps) == (
        "2024_01",
        "1e3",
        "0123",
        "7",
    )
    assert parse(["experiment=x", "register_as=null"]).register_as is None
