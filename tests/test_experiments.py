"""Every experiment file composes, validates and smoke-runs end to end on real components."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from test_spec import composed

from helpers import SHARED_DATA
from runner.__main__ import known_experiments

DATA_PATHS = {
    "fashion_mnist": SHARED_DATA / "fashion-mnist",
    "california_housing": SHARED_DATA / "california_housing" / "cal_housing.data",
}
# The transfer smoke run trains three epochs, so that its transfer member has both phases
# (one frozen, two fine-tuning) for the test that checks them on the same run.
SMOKE_OVERRIDES = {
    "transfer": ["runner.smoke_epochs=3", "members.transfer.hparams.frozen_epochs=1"],
    "tabular": [f"data.path={SHARED_DATA / 'penguins' / 'penguins.csv'}", "data.target=species"],
}


def smoke_args(experiment: str) -> list[str]:
    """The experiment's smoke overrides, with ``data.path=...`` for datasets that need a local
    copy; skip if that copy is not there."""
    args = SMOKE_OVERRIDES.get(experiment, [])
    name = composed(experiment=experiment)["data"]["name"]
    if name not in DATA_PATHS:
        return args
    if not DATA_PATHS[name].exists():
        pytest.skip(f"offline copy of {name} not found at {DATA_PATHS[name]}")
    return [*args, f"data.path={DATA_PATHS[name]}"]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", known_experiments())
def test_every_experiment_smoke_runs(experiment, smoke_run):
    run = smoke_run(experiment, *smoke_args(experiment))
    summary = run.summary
    assert all(m["status"] == "FINISHED" for m in summary["members"]), summary["members"]
    for rows in summary["stages"].values():
        assert all(m["status"] == "FINISHED" for m in rows)
    assert summary["ensemble"] is not None
    client = MlflowClient(run.db)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert not [r for r in runs if r.info.status != "FINISHED"]
    ensemble_run = summary["ensemble"]["run_id"]
    pictures = {a.path for a in client.list_artifacts(ensemble_run) if a.path.endswith(".png")}
    task_picture = "confusion_matrix.png" if summary["metric"] == "accuracy" else "residuals.png"
    assert {"weights.png", "diversity_heatmap.png", task_picture} <= pictures


@pytest.mark.slow
def test_transfer_member_tracks_both_phases_beside_the_scratch_head(smoke_run):
    run = smoke_run("transfer", *smoke_args("transfer"))
    summary = run.summary
    client = MlflowClient(run.db)
    transfer = next(m for m in summary["members"] if m["name"] == "transfer")
    phases = [m.value for m in client.get_metric_history(transfer["run_id"], "phase")]
    assert phases == [1.0, 2.0, 2.0]
    lrs = [m.value for m in client.get_metric_history(transfer["run_id"], "lr")]
    assert lrs[2] == pytest.approx(lrs[0] * 0.1)  # fine-tuning at a tenth of the rate
    base = client.get_run(summary["stages"]["pretrain"][0]["run_id"])
    assert base.data.tags["runner.stage"] == "pretrain"
    assert base.data.tags["mlflow.parentRunId"] == summary["parent_run_id"]
    board = run.done.stdout
    assert "transfer" in board and "scratch" in board and "earlier stage 'pretrain'" in board


SERVE_IN_A_FRESH_PROCESS = """
import sys, mlflow, numpy as np
import pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
columns = model.metadata.metadata.get("columns")
if columns is not None:  # table rows: every cell missing must still be served
    X = pd.DataFrame({c: [None] * 5 for c in columns})
else:  # features, in the dtype a user has (the model takes any numbers)
    n_features = model.metadata.metadata["n_features"]
    X = np.random.default_rng(0).uniform(0, 1, size=(5, n_features))
    X[1] *= 10.0  # raw values of another scale than the first row's
pred = np.asarray(model.predict(X))
assert pred.shape[0] == 5 and np.isfinite(pred).all(), pred
if pred.ndim == 2:
    assert np.allclose(pred.sum(axis=1), 1.0, atol=1e-5), pred
names = model.metadata.metadata.get("feature_names")


def refused(call, said):
    try:
        call()
    except Exception as err:
        assert said in str(err), err
        return str(err)
    raise AssertionError(f"served, where it should say {said!r}")


if columns is not None:  # a one-row CSV without its header: MLflow reads the row as names
    headless = pd.DataFrame(columns=[f"{i * 1.5}" for i in range(len(columns))])
    refused(lambda: model.predict(headless), "none of the")  # it answered [] with HTTP 200
    assert len(model.predict(pd.DataFrame(columns=columns))) == 0  # no rows, right columns


if columns is None and names is not None:  # named features: matched by name, in any order
    assert len(names) == n_features
    named = pd.DataFrame(X, columns=names)
    again = np.asarray(model.predict(named[names[::-1]]))
    assert np.allclose(again, pred, atol=1e-6), (again, pred)
    # a CSV request without a header: its first row read as the columns' names
    headless = pd.DataFrame(X[1:], columns=[f"{v:.4f}" for v in X[0]])
    refused(lambda: model.predict(headless), "do not name this model's features")
    holed = named.astype(object)
    holed.iloc[2, 1] = pd.NA
    refused(
        lambda: model.predict(holed), "1 input row(s) hold missing or infinite values (rows 2)"
    )
    # not images: two half rows are no row
    half = f"this model takes rows of {n_features} features (n, {n_features})"
    assert "images" not in refused(lambda: model.predict(np.zeros((2, n_features // 2))), half)
    # a frame naming a feature twice is refused; integer labels are positions
    twice = pd.concat([named, named[[names[0]]]], axis=1)
    refused(lambda: model.predict(twice), "more than once")
    shifted = pd.DataFrame(X, columns=range(1, n_features + 1))
    assert np.allclose(np.asarray(model.predict(shifted)), pred, atol=1e-6)
    print("named", len(names))
if columns is None and names is None:  # pixels by position: a CSV without its header row
    import io
    # 0, 0.0 or np.savetxt's 0.000000000000000000e+00 (pandas renames a second: 0.0.1 ...)
    for cell in (lambda v: str(int(v)), lambda v: f"{v:.1f}", lambda v: f"{v:.18e}"):
        text = "\\n".join(",".join(cell(v) for v in row) for row in np.floor(X * 16))
        headless = pd.read_csv(io.StringIO(text))  # the first row read as the columns' names
        assert len(headless) == 4
        refused(lambda: model.predict(headless), "are numbers that are not positions")
    for labels in (np.arange(float(X.shape[1])), list(range(X.shape[1]))):  # a user's labels
        assert np.allclose(np.asarray(model.predict(pd.DataFrame(X, columns=labels))), pred)
    print("pixels")
print("served", pred.shape)
"""


@pytest.mark.slow
@pytest.mark.parametrize("experiment", known_experiments())
def test_every_experiments_ensemble_loads_and_predicts_in_a_fresh_process(
    experiment, smoke_run, tmp_path
):
    """The exported ensemble is self-contained: ``mlflow.pyfunc.load_model`` in a fresh
    Python process started in another directory (nothing of this session imported, e.g. the
    MC-dropout member's custom Keras class) loads every member and predicts."""
    run = smoke_run(experiment, *smoke_args(experiment))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = run.db
    done = subprocess.run(
        [sys.executable, "-c", SERVE_IN_A_FRESH_PROCESS, run.summary["ensemble"]["model_uri"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "served" in done.stdout
    if experiment == "housing_zoo":  # its data names its features (pixels go by position)
        assert "named" in done.stdout, done.stdout
    if experiment == "quickstart":
        assert "pixels" in done.stdout, done.stdout
