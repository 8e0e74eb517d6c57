"""runner.time_limit: the whole sweep's budget. A Keras member stops at the epoch end after
the deadline and is kept; members that would start after it are skipped and said so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_spec import spec_of

from helpers import read_summary, run_cli
from runner.contracts import SKIPPED, SWEEP
from runner.spec import SpecError


@pytest.mark.parametrize(
    "bad, shown", [("0", "0"), ("-5", "-5"), ("soon", "'soon'"), ("true", "True")]
)
def test_a_bad_time_limit_is_refused_naming_the_value(bad, shown):
    with pytest.raises(SpecError, match=rf"^runner.time_limit: must be .* > 0, got {shown}$"):
        spec_of(f"runner.time_limit={bad}")
    assert spec_of("runner.time_limit=90").time_limit == 90.0


@pytest.mark.slow
def test_members_that_cannot_start_in_time_are_skipped_and_the_running_one_stops(tmp_path):
    db = f"sqlite:///{tmp_path}/mlflow.db"
    limit = 60  # room for Ray and two fits on a machine the other test process shares
    done = run_cli(
        tmp_path,
        "+experiment=quickstart",
        # one at a time (each takes both CPUs), cheapest first under a time limit: logistic
        # and svm finish, mlp trains until the deadline, selu cannot start
        "~members.convnet",
        "~members.resnet",
        "training.epochs=100000",
        "resources.cpu=2",
        "cluster.num_cpus=2",
        f"runner.time_limit={limit}",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(tmp_path / "out")
    status = {m["name"]: m["status"] for m in summary["members"]}
    assert status == {
        "mlp": "FINISHED",
        "selu": "SKIPPED",
        "logistic": "FINISHED",
        "svm": "FINISHED",
    }, status
    assert summary["wall_seconds"] < limit + 30
    assert "skipped (runner.time_limit passed before they started): selu" in done.stdout
    assert "selu skipped: runner.time_limit had passed" in done.stdout + done.stderr
    client = MlflowClient(db)
    runs = client.search_runs(
        [summary["experiment_id"]], f"tags.`{SWEEP}` = '{summary['sweep_id']}'"
    )
    members = {r.data.tags.get("runner.member"): r for r in runs}
    assert members["selu"].info.status == "KILLED" and SKIPPED in members["selu"].data.tags
    mlp = members["mlp"]
    assert mlp.info.status == "FINISHED" and 1 <= mlp.data.metrics["fit_seconds"] < limit
    info = client.download_artifacts(mlp.info.run_id, "member.json", str(tmp_path))
    assert json.loads(Path(info).read_text())["stopped_at_deadline"] is True
    # cut short, said in the leaderboard, the summary and on the run; the rest trained out
    epochs = json.loads(Path(info).read_text())["epochs_run"]
    assert mlp.data.tags["runner.cut_short"] == str(epochs) and 1 <= epochs < 100000
    cut = {m["name"]: m.get("cut_short") for m in summary["members"]}
    assert cut == {"mlp": {"epochs_run": epochs}, "selu": None, "logistic": None, "svm": None}
    said = "cut short by runner.time_limit, kept with what they had trained: mlp ("
    assert said in done.stdout
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_a_sweep_whose_members_were_all_skipped_says_so_and_a_resume_trains_them(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    members = ("~members.selu", "~members.resnet", "~members.mlp", "~members.convnet")
    args = ("+experiment=quickstart", "smoke=true", *members, f"tracking.uri={db}")
    done = run_cli(workdir, *args, "runner.sweep_id=late", "runner.time_limit=1")
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: no member finished of 2: 2 skipped by runner.time_limit (their runs' "
        "runner.skipped tags)"
    ], done.stderr[-2000:]
    # a resume with more time trains the members that never started (a nightly job
    # resuming that sweep failed the same way every night)
    again = run_cli(workdir, *args, "runner.sweep_id=late", "runner.resume=force")
    assert again.returncode == 0, again.stderr[-2000:]
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    finished = sorted(r.data.tags.get("runner.role") for r in runs if r.info.status == "FINISHED")
    assert finished == ["ensemble", "member", "member", "sweep"], finished


@pytest.mark.slow
def test_a_sweep_left_one_member_by_the_time_limit_is_not_finished_and_a_resume_ensembles(
    workdir,
):
    """One member trains until the limit, the other cannot start: the sweep ended FINISHED
    with no ensemble (exit 0), and a resume with a larger budget was refused as finished."""
    db = f"sqlite:///{workdir}/mlflow.db"
    members = ("~members.selu", "~members.resnet", "~members.convnet", "~members.logistic")
    args = ("+experiment=quickstart", *members, "~members.svm", f"tracking.uri={db}")
    args += ("+model@members.trees=extra_trees", "runner.sweep_id=one", "data.max_rows=400")
    args += ("training.early_stopping=0", "resources.cpu=2", "cluster.num_cpus=2")
    # a million trees are costed above 100000 epochs: the MLP starts first, the trees never
    many = ("training.epochs=100000", "++members.trees.hparams.n_estimators=1000000")
    # room for imports and Ray on a busy machine: the MLP must start before the limit
    done = run_cli(workdir, *args, *many, "runner.time_limit=45")
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: only 1 member of 2 finished, too few to ensemble: 1 skipped by "
        "runner.time_limit (their runs' runner.skipped tags)"
    ], done.stderr[-2000:]
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    (sweep,) = client.search_runs([experiment], "tags.`runner.role` = 'sweep'")
    assert sweep.info.status != "FINISHED"
    few = ("training.epochs=2", "++members.trees.hparams.n_estimators=10")
    again = run_cli(workdir, *args, *few, "runner.resume=force")
    assert again.returncode == 0, again.stderr[-2000:]
    runs = client.search_runs([experiment])
    assert [r.info.status for r in runs if r.data.tags["runner.role"] == "ensemble"] == ["FINISHED"]
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_a_bagged_sweep_the_time_limit_skipped_trains_its_bags_on_a_resume(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    members = ("~members.selu", "~members.resnet", "~members.mlp", "~members.convnet")
    args = ("+experiment=quickstart", "smoke=true", *members, f"tracking.uri={db}")
    args += ("runner.folds=2", "runner.sweep_id=late")
    done = run_cli(workdir, *args, "runner.time_limit=1")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "2 skipped by runner.time_limit" in done.stderr, done.stderr[-2000:]
    again = run_cli(workdir, *args, "runner.resume=force")
    assert again.returncode == 0, again.stderr[-2000:]
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    finished = sorted(r.data.tags.get("runner.role") for r in runs if r.info.status == "FINISHED")
    assert finished == ["ensemble", *["fold"] * 4, "member", "member", "sweep"], finished
    bags = [r for r in runs if r.data.tags.get("runner.role") == "member"]
    assert all(SKIPPED not in r.data.tags and r.info.status == "FINISHED" for r in bags)
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_a_bag_cut_short_by_the_time_limit_keeps_its_finished_fold_and_a_resume_trains_the_rest(
    workdir,
):
    """One fold trains until the limit (kept, cut short), the other two cannot start: the bag
    is left out and the sweep fails; a forced resume trains those two and keeps the first."""
    db = f"sqlite:///{workdir}/mlflow.db"
    members = ("~members.selu", "~members.resnet", "~members.convnet", "~members.logistic")
    args = ("+experiment=quickstart", *members, "~members.svm", f"tracking.uri={db}")
    args += ("runner.folds=3", "runner.sweep_id=cut", "data.max_rows=400")
    args += ("training.early_stopping=0", "resources.cpu=2", "cluster.num_cpus=2")
    done = run_cli(workdir, *args, "training.epochs=100000", "runner.time_limit=30")
    assert done.returncode == 2, done.stderr[-2000:]
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    (bag,) = client.search_runs([experiment], "tags.`runner.role` = 'member'")
    assert bag.info.status == "KILLED" and bag.data.tags["runner.folds_missing"] == "2"

    def folds() -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for r in client.search_runs([experiment], "tags.`runner.role` = 'fold'"):
            out.setdefault(r.data.tags["runner.member"], []).append((r.info.run_id, r.info.status))
        return out

    first = folds()
    (kept,) = [run for run, status in first["mlp/fold0"] if status == "FINISHED"]
    again = run_cli(workdir, *args, "training.epochs=2", "runner.resume=force")
    assert again.returncode == 0, again.stderr[-2000:]
    after = folds()
    assert after["mlp/fold0"] == [(kept, "FINISHED")]  # kept, not trained again
    for k in (1, 2):
        statuses = sorted(status for _, status in after[f"mlp/fold{k}"])
        assert statuses == ["FINISHED", "KILLED"], after  # the skipped run beside the new one
    (bag,) = client.search_runs([experiment], "tags.`runner.role` = 'member'")
    assert bag.info.status == "FINISHED" and "runner.folds_missing" not in bag.data.tags


@pytest.mark.slow
def test_a_booster_training_at_the_time_limit_stops_at_its_next_round_and_is_kept(workdir):
    """A booster finished the fit it was in: ten million LightGBM rounds started just before
    the limit ran hours past it. It now stops, is kept and listed with the rounds it trained."""
    db = f"sqlite:///{workdir}/mlflow.db"
    members = ("~members.selu", "~members.resnet", "~members.convnet", "~members.mlp")
    args = ("+experiment=quickstart", *members, "~members.svm", f"tracking.uri={db}")
    args += ("+model@members.gbm=lightgbm", "++members.gbm.hparams.n_estimators=10000000")
    args += ("resources.cpu=2", "cluster.num_cpus=2", "hydra.run.dir=out")
    limit = 40
    done = run_cli(workdir, *args, f"runner.time_limit={limit}")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    # unstopped, ten million rounds take hours; a loaded CI machine took 70.5 s of a 40 s limit
    assert summary["wall_seconds"] < limit + 120, summary["wall_seconds"]
    status = {m["name"]: (m["status"], m.get("cut_short")) for m in summary["members"]}
    rounds = status["gbm"][1]["rounds_run"]
    assert status == {"logistic": ("FINISHED", None), "gbm": ("FINISHED", {"rounds_run": rounds})}
    assert 1 <= rounds < 10000000
    said = "cut short by runner.time_limit, kept with what they had trained: "
    said += f"gbm ({rounds} round(s))"
    assert said in done.stdout, done.stdout[-2000:]
    client = MlflowClient(db)
    (gbm,) = client.search_runs([summary["experiment_id"]], "tags.`runner.member` = 'gbm'")
    assert gbm.info.status == "FINISHED" and gbm.data.tags["runner.cut_short"] == str(rounds)
    assert summary["ensemble"]["test_metric"] > 0.5


@pytest.mark.slow
def test_a_refit_sweep_the_limit_left_one_member_fails_and_says_a_resume_will_not_help(workdir):
    """With refits (or a student, stages, a search) a resume does not train what the limit
    skipped, and such a sweep left with one member ended FINISHED, exit 0, with no ensemble
    and only a logged warning: a nightly job reported success."""
    db = f"sqlite:///{workdir}/mlflow.db"
    members = ("~members.selu", "~members.resnet", "~members.convnet", "~members.svm")
    args = ("+experiment=quickstart", *members, f"tracking.uri={db}", "data.max_rows=400")
    args += ("runner.folds=2", "runner.refit=true", "training.early_stopping=0")
    args += ("training.epochs=100000", "resources.cpu=2", "cluster.num_cpus=2")
    # the logistic bag finishes, the MLP's first fold trains until the limit, its second
    # fold cannot start: one member of two
    done = run_cli(workdir, *args, "runner.time_limit=45")
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: only 1 member of 2 finished, too few to ensemble: 1 skipped by runner.time_limit"
    ), done.stderr[-2000:]
    assert "a resume would not train them" in errors[0]
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    (sweep,) = client.search_runs([experiment], "tags.`runner.role` = 'sweep'")
    assert sweep.info.status != "FINISHED"
    assert not client.search_runs([experiment], "attributes.status = 'RUNNING'")
