"""Bagging (runner.folds=K): each member fits K folds of the pooled training and validation
rows as K Tune trials, the ensemble learns from their out-of-fold predictions, and the
served member averages its K models."""

from __future__ import annotations

import json
import shutil
import signal
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from test_spec import spec_of
from test_tabular import CLASSES, made_table

import models
from helpers import (
    INFRA_MEMBERS,
    read_summary,
    run_cli,
    run_ensembles_cli,
    serve_elsewhere,
    start_cli,
    stop_cli,
)
from models.bag import Bag
from models.store import ArtifactError, sha256
from models.training import TrainingOptions
from runner.contracts import ERROR, FOLDS, MEMBER, PARENT, ROLE, SWEEP
from runner.data import DataSpec, bagged, load
from runner.spec import SpecError


def table_file(tmp_path, n: int = 240) -> str:
    frame, y_class, _ = made_table(n)
    path = tmp_path / "table.csv"
    frame.assign(label=np.where(y_class == 1, "yes", "no")).to_csv(path, index=False)
    return str(path)


def test_bagging_pools_train_and_validation_rows_into_stratified_folds(tmp_path):
    spec = DataSpec("csv", 0.2, 0.2, 0, path=table_file(tmp_path), target="label")
    data = load(spec)
    said = "column 'id' is dropped: it numbers the rows 1..240 (a row number, not a property"
    assert f"{said} of the row)" in data.notes
    bag = bagged(data, 4, seed=0)
    n = len(data.y_train) + len(data.y_val)
    assert len(bag.y_train) == len(bag.y_val) == n and bag.X_val is bag.X_train
    assert bag.sizes() == {"train": n, "val": n, "test": len(data.y_test), "folds": 4}
    np.testing.assert_array_equal(bag.y_test, data.y_test)
    assert bag.fingerprint not in (data.fingerprint, bagged(data, 3, seed=0).fingerprint)
    assert bag.fingerprint == bagged(data, 4, seed=0).fingerprint
    seen = np.zeros(n, dtype=int)
    share = np.mean(bag.y_train)
    for k in range(4):
        (X_fit, y_fit), (X_held, y_held) = bag.fit_rows(k)
        assert len(y_fit) + len(y_held) == n and isinstance(X_held, pd.DataFrame)
        assert abs(np.mean(y_held) - share) < 0.05  # stratified
        seen[bag.folds == k] += 1
    assert (seen == 1).all()  # every pooled row is held out exactly once


@pytest.mark.parametrize("bad", ["1", "-2", "two", "2.5"])
def test_a_bad_number_of_folds_is_refused_naming_the_value(bad):
    with pytest.raises(
        SpecError, match=r"^runner.folds: must be 0 \(no bagging\), an integer >= 2 or auto, got"
    ):
        spec_of(f"runner.folds={bad}")
    spec = spec_of("runner.folds=4")
    assert spec.folds == 4 and all(m.folds == 4 for m in spec.members)


def test_searched_members_are_not_bagged_yet():
    with pytest.raises(SpecError, match=r"runner.folds: bagging does not combine .* \['mlp'\]"):
        spec_of("runner.folds=3", "search=random", "+members.mlp.hparams.width={choice: [16, 32]}")


def test_more_folds_than_a_class_has_rows_is_one_clear_error(tmp_path):
    frame = pd.DataFrame({"x": np.linspace(0, 1, 40) ** 2, "y": ["a"] * 36 + ["b"] * 4})
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load(DataSpec("csv", 0.2, 0.2, 0, path=str(tmp_path / "t.csv"), target="y"))
    with pytest.raises(ValueError, match=r"class 'b' has 3 row\(s\) .* fewer than the 5 folds"):
        bagged(data, 5, seed=0)


def test_a_saved_bag_averages_its_folds_and_refuses_a_changed_fold(tmp_path):
    frame, y, _ = made_table()
    entry = models.REGISTRY["linear"]
    folders = []
    for k in range(3):
        part = slice(k * 60, k * 60 + 120)
        trained = entry.train(
            None, CLASSES, {}, (frame[part], y[part]), (frame[:20], y[:20]), TrainingOptions()
        )
        folders.append(models.save_member("linear", trained.member, tmp_path / f"f{k}"))
    saved = models.save_bag("linear", folders, tmp_path / "bag")
    bag = models.load_member(saved)
    assert isinstance(bag, Bag) and len(bag.members) == 3 and bag.reads_table
    singles = [models.load_member(f).predict(frame, CLASSES) for f in folders]
    np.testing.assert_allclose(bag.predict(frame, CLASSES), np.mean(singles, axis=0))
    manifest = saved / "fold1" / "kind.json"
    manifest.write_text(manifest.read_text().replace('"linear"', '"linear" '))
    with pytest.raises(ArtifactError, match="fold1/kind.json"):
        models.load_member(saved)
    # a fold named outside the bag (its manifest's hash right) is refused, not loaded
    outside = tmp_path / "outside"
    shutil.copytree(folders[0], outside)
    top = json.loads((saved / "kind.json").read_text())
    top["bag"][1] = {"folder": "../outside", "sha256": sha256(outside / "kind.json")}
    (saved / "kind.json").write_text(json.dumps(top))
    with pytest.raises(ArtifactError, match=r"its manifest names '\.\./outside/kind.json'"):
        models.load_member(saved)


SERVE = """
import json, sys, mlflow, numpy as np
from runner.data import DataSpec, bagged, load
spec = DataSpec("csv", 0.2, 0.2, 0, path=sys.argv[2], target="label")
data = bagged(load(spec), 3, seed=0)
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = data.X_test.copy()
rows.loc[0, "size"] = None
rows.loc[1, "color"] = "never seen"
print(json.dumps(np.asarray(model.predict(rows)).tolist()))
"""


@pytest.mark.slow
def test_a_bagged_sweep_nests_fold_runs_ensembles_out_of_fold_and_serves_the_mean(tmp_path):
    path = table_file(tmp_path)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=tabular",
        f"data.path={path}",
        "data.target=label",
        "runner.folds=3",
        "metric=log_loss",  # what ranks and judges, instead of accuracy
        "training.epochs=3",
        *(f"~members.{m}" for m in ("xgboost", "catboost", "hgb", "extra_trees", "knn")),
        *(f"~members.{m}" for m in ("wide_deep", "selu")),
        "members.lightgbm.hparams.n_estimators=50",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(tmp_path / "out")
    assert summary["metric"] == "log_loss" and "val log_loss" in done.stdout
    names = ["lightgbm", "linear", "mlp"]
    assert sorted(m["name"] for m in summary["members"]) == names
    assert all(m["status"] == "FINISHED" for m in summary["members"])
    rows = summary["data"]["rows"]
    assert rows["folds"] == 3 and rows["train"] == rows["val"] == 192  # 80% of 240, pooled
    client = MlflowClient(db)
    runs = client.search_runs(
        [summary["experiment_id"]], f"tags.`{SWEEP}` = '{summary['sweep_id']}'"
    )
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    by_role = {}
    for r in runs:
        by_role.setdefault(r.data.tags[ROLE], []).append(r)
    assert len(by_role["member"]) == 3 and len(by_role["fold"]) == 9
    assert len(by_role["ensemble"]) == 1
    for member in by_role["member"]:
        name = member.data.tags[MEMBER]
        assert member.data.tags[FOLDS] == "3"
        folds = [f for f in by_role["fold"] if f.data.tags[PARENT] == member.info.run_id]
        assert sorted(f.data.tags[MEMBER] for f in folds) == [f"{name}/fold{k}" for k in range(3)]
        # the bag's fit time is its folds' fits (not their whole trials); its folds name nodes
        fits = sum(f.data.metrics["fit_seconds"] for f in folds)
        assert member.data.metrics["fit_seconds"] == pytest.approx(fits, rel=1e-6)
        assert "runner.node_id" not in member.data.tags
        assert all(f.data.tags["runner.node_id"] not in ("", "None") for f in folds)
        local = client.download_artifacts(member.info.run_id, "predictions.npz", str(tmp_path))
        with np.load(local) as npz:  # out-of-fold over every pooled row
            assert npz["val"].shape == (192, 2) and npz["y_val"].shape == (192,)
        model = client.download_artifacts(member.info.run_id, "model", str(tmp_path / name))
        manifest = json.loads((tmp_path / name / "model" / "kind.json").read_text())
        assert [f["folder"] for f in manifest["bag"]] == ["fold0", "fold1", "fold2"], model
    ens = summary["ensemble"]
    assert set(ens["weights"]) == set(names)
    served = serve_elsewhere(tmp_path, db, SERVE, ens["model_uri"], path)
    assert served.returncode == 0, served.stderr[-3000:]
    pred = np.array(json.loads(served.stdout.strip().splitlines()[-1]))
    local = client.download_artifacts(ens["run_id"], "predictions.npz", str(tmp_path / "e"))
    with np.load(local) as npz:
        test = npz["test"]
    assert pred.shape == test.shape and np.isfinite(pred).all()
    np.testing.assert_allclose(pred[2:], test[2:], rtol=1e-4, atol=1e-5)
    # ensembled again from MLflow, the bagged members' model names its classes too
    # (judged by accuracy: by the sweep's own log loss it would find the sweep's run)
    again = run_ensembles_cli(
        tmp_path, "experiment=tabular", "method=greedy", "metric=accuracy", f"tracking_uri={db}"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    import mlflow

    (latest,) = client.search_runs(
        [summary["experiment_id"]],
        "tags.`runner.role` = 'ensemble'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    folder = client.download_artifacts(latest.info.run_id, "model", str(tmp_path / "again"))
    model = mlflow.pyfunc.load_model(folder)
    assert latest.info.run_id != ens["run_id"]
    assert model.metadata.metadata["classes"] == summary["data"]["classes"]


@pytest.mark.slow
def test_a_bagged_sweep_stopped_mid_fold_resumes_into_the_same_member_runs(workdir):
    """SIGTERM after the first fold finished: the rerun re-opens each bagged member's run,
    trains only what is missing, and every fold ends with one FINISHED run in its member."""
    db = f"sqlite:///{workdir}/mlflow.db"
    args = [
        "+experiment=quickstart",
        *INFRA_MEMBERS,
        f"tracking.uri={db}",
        "runner.sweep_id=bag-term",
        "runner.folds=3",
        "training.epochs=30",
    ]
    proc = start_cli(workdir, *args, until="mlp/fold0 finished")
    _, stderr = stop_cli(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-2000:]
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    before = {
        r.data.tags[MEMBER]: r.info.run_id
        for r in client.search_runs([experiment])
        if r.data.tags[ROLE] == "member"
    }
    assert "mlp" in before
    done = run_cli(workdir, *args, "hydra.run.dir=out")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    assert [m["status"] for m in summary["members"]] == ["FINISHED"] * 3
    runs = client.search_runs([experiment])
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    members = {r.data.tags[MEMBER]: r for r in runs if r.data.tags[ROLE] == "member"}
    assert sorted(members) == ["logistic", "mlp", "svm"]  # no second run of any member
    # why the first attempt stopped is no FINISHED bag's (its folds all done before it)
    assert not {n: r.data.tags[ERROR] for n, r in members.items() if ERROR in r.data.tags}
    assert members["mlp"].info.run_id == before["mlp"] and members["mlp"].info.status == "FINISHED"
    finished = Counter(
        (r.data.tags[PARENT], r.data.tags[MEMBER])
        for r in runs
        if r.data.tags[ROLE] == "fold" and r.info.status == "FINISHED"
    )
    expected = {
        (members[name].info.run_id, f"{name}/fold{k}") for name in members for k in range(3)
    }
    assert set(finished) == expected and set(finished.values()) == {1}
