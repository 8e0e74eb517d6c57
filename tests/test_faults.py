"""Faults: a member that diverges or raises is FAILED with its reason; the sweep goes on."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from helpers import INFRA_MEMBERS, TESTS, TOY_KIND, read_summary, run_cli


def test_a_member_whose_loss_goes_nan_fails_with_the_reason_and_the_rest_are_ensembled(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "training.epochs=2",
        "~members.convnet",
        "~members.resnet",
        "~members.selu",
        "+members.mlp.training.learning_rate=9.9",
        "+members.mlp.training.optimizer=sgd",
        "runner.max_failures=1",  # retried as Tune retries, and it fails again: seeded
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (retry,) = [x for x in done.stdout.splitlines() if "] mlp failed: " in x]
    assert "FloatingPointError: loss became nan in epoch 1" in retry and retry.endswith("retrying")
    assert "mlp FAILED: FloatingPointError: loss became nan" in done.stdout
    summary = read_summary(workdir / "out")
    rows = {m["name"]: m for m in summary["members"]}
    assert rows["mlp"]["status"] == "FAILED" and "loss became nan" in rows["mlp"]["error"]
    assert set(summary["ensemble"]["weights"]) == {"logistic", "svm"}
    client = MlflowClient(db)
    run = client.get_run(rows["mlp"]["run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["runner.error"].startswith("FloatingPointError: loss became nan")
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED"
    # the console names the failure once, on the progress line; the run holds its traceback
    assert "Traceback" not in done.stderr and "Trial task failed" not in done.stderr
    assert "Trials did not complete" not in done.stderr and "member mlp failed" not in done.stderr
    error = client.download_artifacts(run.info.run_id, "error.txt", str(workdir))
    text = Path(error).read_text()
    assert "in train_member" in text and "FloatingPointError: loss became nan" in text
    # the first attempt's run: FAILED with its own reason, not a worker's death
    attempts = client.search_runs(
        [run.info.experiment_id], "tags.`runner.member` = 'mlp'", order_by=["attributes.start_time"]
    )
    assert [a.info.status for a in attempts] == ["FAILED", "FAILED"]
    first = attempts[0].data.tags["runner.error"]
    assert first.startswith("FloatingPointError: loss became nan") and first.endswith("(retried)")
    names = {a.path for a in client.list_artifacts(attempts[0].info.run_id)}
    assert "error.txt" in names, names


def test_members_whose_predictions_break_the_contract_fail_with_the_reason(workdir):
    """NaN values, a wrong shape and probability rows that do not sum to 1 each make the
    member FAILED with what was wrong; the well-behaved members are ensembled."""
    db = f"sqlite:///{workdir}/mlflow.db"
    broken = {
        "nans": "nan_values",
        "short": "wrong_shape",
        "unnormalised": "unnormalised",
        "squeezed": "squeezed",
        "lossy": "lossy_save",
    }
    members = [
        arg
        for name, corrupt in broken.items()
        for arg in (f"+model@members.{name}=toy", f"+members.{name}.hparams.corrupt={corrupt}")
    ]
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "smoke=true",
        *TOY_KIND,
        *INFRA_MEMBERS,
        "~members.mlp",
        *members,
        f"tracking.uri={db}",
        "hydra.run.dir=out",
        pythonpath=TESTS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {m["name"]: m for m in read_summary(workdir / "out")["members"]}
    expected = {
        "nans": "validation predictions hold 400 NaN or infinite value(s), first in row 0",
        "short": "validation predictions have shape (119, 10), the contract is (120, 10)",
        "unnormalised": "validation probability rows must sum to 1, row 0 sums to 0.5",
        # a served request of one row failed, blamed on the input
        "squeezed": "one row's predictions have shape (10,), the contract is (1, 10)",
        # the served model predicted other values than the member did, silently
        "lossy": "model 'toy': loaded back from its saved files, the model predicts other",
    }
    client = MlflowClient(db)
    for name, reason in expected.items():
        assert rows[name]["status"] == "FAILED", rows[name]
        assert reason in rows[name]["error"], rows[name]["error"]
        run = client.get_run(rows[name]["run_id"])
        assert run.info.status == "FAILED" and reason in run.data.tags["runner.error"]
    assert rows["logistic"]["status"] == rows["svm"]["status"] == "FINISHED"


def test_a_resource_request_the_cluster_cannot_meet_fails_in_one_line(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir, "+experiment=quickstart", "resources.gpu=2", f"tracking.uri={db}", timeout=120
    )
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.strip().splitlines() if x.strip()]
    assert line.startswith("error: members.mlp.resources.gpu=2 cannot be met: the cluster has")
    # the student's too: it waited for them after the ensemble, forever
    members = ("~members.convnet", "~members.resnet", "~members.selu", "~members.mlp")
    free = ("+members.logistic.resources.gpu=0", "+members.svm.resources.gpu=0")
    args = (*members, *free, "resources.gpu=2", "ensemble.distill=mlp", "smoke=true")
    done = run_cli(workdir, "+experiment=quickstart", *args, f"tracking.uri={db}", timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.strip().splitlines() if x.strip()]
    assert line.startswith("error: resources.gpu=2 of the student (ensemble.distill=mlp) cannot")
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
