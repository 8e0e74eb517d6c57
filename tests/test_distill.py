"""Distilled students (``ensemble.distill``): one model trained on the served ensemble's
predictions, logged and served beside it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits

import models
from helpers import read_summary, run_cli, serve_elsewhere
from models.base import InputSpec, Task
from models.distill import student_targets
from models.training import TrainingOptions

TASK = Task("classification", 10)


def teacher_of(y: np.ndarray, sharp: float = 0.8) -> np.ndarray:
    """Probabilities a confident teacher gives: most mass on the true class."""
    return np.eye(10)[y] * sharp + (1 - sharp) / 10


def test_nets_learn_the_teachers_probabilities_and_other_kinds_its_top_class():
    top = np.array([3, 1, 4, 0, 2, 5, 6, 7, 8, 9])
    teacher = teacher_of(top)
    soft = student_targets(models.get("mlp"), TASK, teacher)
    assert soft.shape == (10, 10) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    for kind in ("logistic", "hgb", "lightgbm"):
        np.testing.assert_array_equal(student_targets(models.get(kind), TASK, teacher), top)
    values = np.array([1.5, -2.0])
    np.testing.assert_array_equal(
        student_targets(models.get("hgb"), Task("regression"), values), values
    )
    assert not models.get("transfer").learns_soft_targets()  # its own training procedure


@pytest.mark.parametrize(
    ("task", "teacher", "message"),
    [
        (TASK, np.zeros((4, 3)), r"^a teacher of 10 classes predicts \(rows, 10\), got \(4, 3\)"),
        (Task("regression"), np.zeros((4, 2)), r"^a regression teacher predicts \(rows,\)"),
    ],
)
def test_a_teacher_of_the_wrong_shape_is_refused(task, teacher, message):
    with pytest.raises(ValueError, match=message):
        student_targets(models.get("mlp"), task, teacher)


def test_a_class_the_ensemble_never_ranks_first_is_said_for_a_student_of_top_classes():
    """2.5% positives: the ensemble never makes 'yes' most likely, so a linear student's
    targets had no 'yes' and its fit blamed the split ("class id(s) [1] have no training
    rows"); soft targets (a Keras student) still hold it."""
    task = Task("classification", 2, labels=("no", "yes"))
    teacher = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4]])
    with pytest.raises(
        ValueError,
        match=r"^the ensemble makes no training row most likely "
        r"class 'yes', so a student of kind 'linear'.*distil into a Keras kind",
    ):
        student_targets(models.get("linear"), task, teacher)
    assert student_targets(models.get("mlp"), task, teacher)[:, 1].max() == pytest.approx(0.4)


def test_a_keras_net_trains_on_soft_targets_watched_against_true_labels():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    kind = models.get("mlp")
    targets = student_targets(kind, TASK, teacher_of(y[:1000]))
    trained = kind.train(
        InputSpec(n_features=64),
        TASK,
        {"depth": 1, "width": 64},
        (X[:1000], targets),
        (X[1000:1400], y[1000:1400]),
        TrainingOptions.from_params({"epochs": 12, "early_stopping": 3}),
    )
    assert trained.model.loss == "categorical_crossentropy"
    assert len(trained.history["val_accuracy"]) >= 1
    accuracy = (trained.member.predict(X[1400:], TASK).argmax(axis=1) == y[1400:]).mean()
    assert accuracy > 0.8


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["ensemble.distill=nothing"], r"^ensemble.distill: unknown member or model 'nothing'"),
        (
            ["ensemble.distill=mlp", "ensemble.log_model=false"],
            r"^ensemble.distill: the student learns from the served ensemble; set "
            r"ensemble.log_model=true",
        ),
        (
            ["ensemble.distill=mlp", "runner.storage_path=s3://bucket/runs"],
            r"^ensemble.distill: the student reads the served ensemble from runner.storage_path",
        ),
    ],
)
def test_a_bad_student_stops_the_sweep_before_it_starts(overrides, message):
    from test_spec import spec_of

    from runner.spec import SpecError

    with pytest.raises(SpecError, match=message):
        spec_of(*overrides)


@pytest.mark.parametrize(
    ("student", "message"),
    [
        ("ridge", "ensemble.distill.model: model 'ridge' does not support classification"),
        ("transfer", "ensemble.distill.hparams: "),
    ],
)
def test_a_student_that_cannot_learn_the_data_stops_the_sweep_before_it_starts(
    workdir, student, message
):
    done = run_cli(workdir, "+experiment=quickstart", f"ensemble.distill={student}")
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert not list(workdir.glob("*.db")) and not (workdir / "mlruns").exists()


def test_the_student_copies_a_named_member_or_takes_a_kinds_defaults():
    from test_spec import spec_of

    spec = spec_of("ensemble.distill=mlp", "runner.folds=3")
    mlp = next(m for m in spec.members if m.name == "mlp")
    assert spec.student.hparams == mlp.hparams and spec.student.training == mlp.training
    assert spec.student.folds == 0 and mlp.folds == 3 and spec.student.teacher is None
    spec = spec_of("ensemble.distill=hgb")
    assert spec.student.name == "hgb" and spec.student.model == "hgb"
    assert spec_of().student is None


SERVE = """
import json, sys, mlflow
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
model = mlflow.pyfunc.load_model(sys.argv[1])
pred = model.predict(X[-50:].astype("float32"))
right = float((pred.argmax(1) == y[-50:]).mean())
print(json.dumps({"shape": list(pred.shape), "accuracy": right}))
"""


def student_info(client: MlflowClient, run_id: str, tmp_path) -> dict:
    """What the student's trial recorded about itself (``member.json``)."""
    folder = tmp_path / f"info-{run_id}"
    folder.mkdir()
    return json.loads(open(client.download_artifacts(run_id, "member.json", str(folder))).read())


@pytest.mark.slow
def test_a_student_of_bagged_members_fits_the_ensembles_out_of_fold_predictions(tmp_path):
    """With ``runner.folds`` the members' out-of-fold predictions cover every pooled row, so
    the ensemble's predictions made from them are targets no member saw: the student trains
    on those (its record says so), watched on fold 0, and is served like any student."""
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=quickstart",
        *(f"~members.{m}" for m in ("selu", "convnet", "resnet")),
        "training.epochs=3",
        "runner.folds=2",
        "ensemble.distill=mlp",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    st = read_summary(tmp_path / "out")["student"]
    assert st["status"] == "FINISHED" and st["test_metric"] > 0.8
    client = MlflowClient(db)
    assert student_info(client, st["run_id"], tmp_path)["student_targets"] == "out_of_fold"
    served = serve_elsewhere(tmp_path, db, SERVE, st["model_uri"])
    assert served.returncode == 0, served.stderr[-3000:]
    assert json.loads(served.stdout.strip().splitlines()[-1])["shape"] == [50, 10]
    assert not list(tmp_path.rglob("*-teacher"))


@pytest.mark.slow
def test_a_sweep_distils_a_student_served_and_registered_beside_the_ensemble(tmp_path):
    """Digits: logistic, svm and a small MLP, ensembled; ``ensemble.distill=mlp`` trains the
    MLP once more on the served ensemble's probabilities, logs it (role student, nested in
    nothing but the sweep), serves raw rows from a fresh process, registers it as
    NAME-student, and a rerun of the finished sweep adds no second student."""
    db = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = (
        "+experiment=quickstart",
        *(f"~members.{m}" for m in ("selu", "convnet", "resnet")),
        "training.epochs=8",
        "ensemble.distill=mlp",
        "ensemble.register_as=digits",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    done = run_cli(tmp_path, *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "student mlp (mlp) distilled from the ensemble: test accuracy" in done.stdout
    summary = read_summary(tmp_path / "out")
    st, ens = summary["student"], summary["ensemble"]
    assert st["status"] == "FINISHED" and st["test_metric"] > 0.85
    assert st["predict_ms_per_1000"] > 0 and st["model_bytes"] > 1000
    assert ens["model_bytes"] > st["model_bytes"]  # three members against one
    assert st["registered_as"] == "digits-student" and st["registered_version"] == "1"
    client = MlflowClient(db)
    version = client.get_model_version("digits-student", "1")  # tagged with its data split
    assert version.tags["runner.data_fingerprint"] == summary["data"]["fingerprint"]
    assert version.tags["runner.role"] == "student" and "on data split" in version.description
    served = client.get_model_version("digits", "1").tags  # the members its model reads
    weighted = [name for name, w in ens["weights"].items() if w > 0]
    assert served["runner.served_members"] == ",".join(weighted)
    assert served["runner.members"] == "mlp,logistic,svm"  # all it weighed
    run = client.get_run(st["run_id"])
    assert run.data.tags["runner.role"] == "student" and run.data.tags["runner.member"] == (
        "mlp/student"
    )
    assert "teacher" in run.data.params
    assert student_info(client, st["run_id"], tmp_path)["student_targets"] == "teacher"
    metrics = client.get_run(ens["run_id"]).data.metrics
    assert metrics["student.test_accuracy"] == pytest.approx(st["test_metric"])
    served = serve_elsewhere(tmp_path, db, SERVE, "models:/digits-student/1")
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])
    assert out["shape"] == [50, 10] and out["accuracy"] > 0.8
    again = run_cli(tmp_path, *overrides, f"runner.sweep_id={summary['sweep_id']}")
    assert again.returncode == 0, again.stderr[-3000:]
    students = client.search_runs(
        [summary["experiment_id"]], "tags.`runner.role` = 'student'", max_results=10
    )
    assert [r.info.run_id for r in students] == [st["run_id"]]
    assert len(client.search_model_versions("name = 'digits-student'")) == 1
    for key in ("student.test_accuracy", "student.model_bytes"):  # logged once, not per attempt
        assert len(client.get_metric_history(ens["run_id"], key)) == 1
    assert not list(tmp_path.rglob("*-teacher"))  # the teacher's copy is removed
