"""Faults: a member that diverges or raises is FAILED with its reason; the sweep goes on."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from helpers import read_summary, run_cli


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
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
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
