"""Scheduled sweeps: the deploy/ manifests run the runner, and `ray job submit` of a smoke
experiment to a local head finishes and logs to MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers import INFRA_MEMBERS, ROOT, free_port

DEPLOY = ROOT / "deploy"


@pytest.mark.parametrize("name", ["rayjob.yaml", "raycronjob.yaml"])
def test_kuberay_manifests_run_the_runner_on_shared_storage(name):
    manifest = yaml.safe_load((DEPLOY / name).read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    spec = manifest["spec"]
    if manifest["kind"] == "RayCronJob":
        assert len(spec["schedule"].split()) == 5
        spec = spec["jobTemplate"]
    entry = spec["entrypoint"]
    assert entry.startswith("python -m runner +experiment=")
    for needed in (
        "cluster=address",
        "cluster.address=auto",
        "runner.storage_path=/mnt/shared",
        "runner.sweep_id=",
    ):
        assert needed in entry
    heads = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert any(m["mountPath"] == "/mnt/shared" for m in heads[0]["volumeMounts"])
    # token authentication on; nothing exposes the dashboard beyond the pod network
    assert spec["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    text = (DEPLOY / name).read_text()
    assert "LoadBalancer" not in text and "NodePort" not in text


def test_cron_script_submits_a_dated_sweep_with_ray_job_submit():
    script = (DEPLOY / "cron" / "nightly.sh").read_text()
    assert "ray job submit" in script and 'runner.sweep_id="$sweep"' in script
    assert os.access(DEPLOY / "cron" / "nightly.sh", os.X_OK)


@pytest.mark.slow
def test_ray_job_submit_of_a_smoke_sweep_finishes_and_logs_to_mlflow(tmp_path):
    pytest.importorskip("ray.dashboard", reason="the Jobs API needs ray[default]")
    from ray.cluster_utils import Cluster

    port = free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": port,
        },
    )
    db = f"sqlite:///{tmp_path}/mlflow.db"
    shared = tmp_path / "shared"
    shared.mkdir()
    try:
        env = {
            **os.environ,
            "RAY_ADDRESS": f"http://127.0.0.1:{port}",
            "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"),
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        for _ in range(6):  # Ray's job agent can be minutes late on a busy machine
            done = _submit(env, shared, db, tmp_path)
            if "No available agent to submit job" not in done.stderr:
                break
            time.sleep(10)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert "succeeded" in (done.stdout + done.stderr).lower()
    finally:
        cluster.shutdown()
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    roles = sorted(r.data.tags["runner.role"] for r in runs)
    assert roles.count("sweep") == 1 and roles.count("ensemble") == 1
    assert all(r.info.status == "FINISHED" for r in runs)
    assert Path(tmp_path, "out", "summary.json").is_file()


def test_two_sweeps_registering_at_once_leave_the_better_one_champion(tmp_path):
    """A team's two sweeps register to one new name: the worse one, slow to load back its
    version, read 'no champion' before the better one became it, then took the alias too
    (both said 'first champion')."""
    from runner.contracts import DATA_FINGERPRINT
    from runner.export import champion_challenger

    client = MlflowClient(f"sqlite:///{tmp_path}/store.db")
    experiment = client.create_experiment("digits")
    client.create_registered_model("team_digits")
    runs = []
    for accuracy in (0.41, 0.94):
        run = client.create_run(experiment, tags={DATA_FINGERPRINT: "fp"}).info.run_id
        client.log_metric(run, "final_test_accuracy", accuracy)
        client.create_model_version("team_digits", f"runs:/{run}/model", run)
        runs.append(run)
    better = {}

    def slow_load_back():  # meanwhile the better sweep finishes and registers
        better.update(
            champion_challenger(client, "team_digits", runs[1], "2", "accuracy", 0.94, True, "fp")
        )
        return 0.41

    worse = champion_challenger(
        client, "team_digits", runs[0], "1", "accuracy", 0.41, True, "fp", slow_load_back
    )
    assert better["decision"] == "first champion"
    assert worse["decision"] == "kept: not better" and worse["champion"] == 0.94, worse
    assert str(client.get_model_version_by_alias("team_digits", "champion").version) == "2"


def test_a_champion_moved_by_another_sweep_during_the_comparison_is_compared_again(tmp_path):
    """The alias moved after this sweep read it (while it rescored the old champion on its
    split): it compares again with the one in place instead of taking the alias from it."""
    from runner.contracts import DATA_FINGERPRINT
    from runner.export import champion_challenger

    client = MlflowClient(f"sqlite:///{tmp_path}/store.db")
    experiment = client.create_experiment("digits")
    client.create_registered_model("digits")
    runs = []
    for accuracy, split in ((0.70, "last-week"), (0.95, "fp"), (0.80, "fp")):
        run = client.create_run(experiment, tags={DATA_FINGERPRINT: split}).info.run_id
        client.log_metric(run, "final_test_accuracy", accuracy)
        client.create_model_version("digits", f"runs:/{run}/model", run)
        runs.append(run)
    client.set_registered_model_alias("digits", "champion", "1")

    def rescore(version):  # meanwhile a colleague's sweep crowns version 2
        client.set_registered_model_alias("digits", "champion", "2")
        return 0.30

    decision = champion_challenger(
        client, "digits", runs[2], "3", "accuracy", 0.80, True, "fp", rescore=rescore
    )
    assert decision["decision"] == "kept: not better", decision
    assert str(decision["champion_version"]) == "2" and decision["champion"] == 0.95
    assert str(client.get_model_version_by_alias("digits", "champion").version) == "2"


def test_a_champion_serving_refits_is_judged_by_what_it_serves(tmp_path):
    """A refit ensemble serves its refits: its registered score is theirs (refit_test_*),
    not the bagged ensemble's final_test_* it also logs."""
    from runner.contracts import DATA_FINGERPRINT
    from runner.export import champion_challenger

    client = MlflowClient(f"sqlite:///{tmp_path}/store.db")
    experiment = client.create_experiment("houses")
    client.create_registered_model("houseprice")
    runs = []
    for final, refit in ((107.9, 103.3), (107.4, 102.9)):
        run = client.create_run(experiment, tags={DATA_FINGERPRINT: "fp"}).info.run_id
        client.log_metric(run, "final_test_rmse", final)
        client.log_metric(run, "refit_test_rmse", refit)
        runs.append(run)
    client.create_model_version("houseprice", f"runs:/{runs[0]}/model", runs[0])
    first = champion_challenger(client, "houseprice", runs[0], "1", "rmse", 103.3, False, "fp")
    assert first["decision"] == "first champion"
    client.create_model_version("houseprice", f"runs:/{runs[1]}/model", runs[1])
    second = champion_challenger(client, "houseprice", runs[1], "2", "rmse", 102.9, False, "fp")
    assert second["decision"] == "promoted" and second["champion"] == 103.3
    third = client.create_run(experiment, tags={DATA_FINGERPRINT: "fp"}).info.run_id
    client.create_model_version("houseprice", f"runs:/{third}/model", third)
    worse = champion_challenger(client, "houseprice", third, "3", "rmse", 105.1, False, "fp")
    assert worse["decision"] == "kept: not better", worse  # 105.1 is worse than 102.9
    assert str(client.get_model_version_by_alias("houseprice", "champion").version) == "2"


def test_a_served_model_names_the_members_and_rows_that_predict_nan_or_infinity():
    from runner.pyfunc_model import BadInput, EnsembleModel

    model = EnsembleModel()
    model.names = ["lightgbm", "linear", "mlp"]
    P = np.ones((3, 4))
    model._check_finite(P)  # all finite: nothing said
    P[1, 2], P[2, 2], P[1, 3] = np.inf, np.nan, -np.inf
    with pytest.raises(
        BadInput,
        match=r"^member\(s\) linear, mlp predict NaN or infinite values "
        r"for 2 row\(s\) \(2, 3\): values far outside",
    ):
        model._check_finite(P)
    with pytest.raises(BadInput, match=r"^member\(s\) lightgbm predict .* for 1 row\(s\) \(0\)"):
        model._check_finite(
            np.where(np.arange(3)[:, None, None] == 0, np.nan, 0.5) * np.ones((3, 1, 2))
        )


def test_a_served_model_refuses_an_unknown_output_naming_what_it_allows():
    from runner.pyfunc_model import BadInput, EnsembleModel

    model = EnsembleModel()
    model.classes = None  # a regression
    with pytest.raises(
        BadInput, match=r"^params output='bogus': allowed: 'proba' \(the default\)$"
    ):
        model.predict(None, np.zeros((1, 2)), params={"output": "bogus"})
    with pytest.raises(BadInput, match=r"predicts values, it has no labels"):
        model.predict(None, np.zeros((1, 2)), params={"output": "labels"})
    model.classes = ["a", "b"]
    with pytest.raises(BadInput, match=r"^params output='votes': allowed: 'proba' .* or 'labels'$"):
        model.predict(None, np.zeros((1, 2)), params={"output": "votes"})


def test_a_champion_tested_on_another_split_is_scored_on_this_one(tmp_path):
    """A weekly retrain on a new table: the champion, tested on last week's split, was
    never compared again ('kept: the champion was tested on another split'), so the alias
    stayed on week 1 for good."""
    from runner.contracts import DATA_FINGERPRINT
    from runner.export import champion_challenger

    client = MlflowClient(f"sqlite:///{tmp_path}/store.db")
    experiment = client.create_experiment("weekly")
    client.create_registered_model("spend")
    weeks = []
    for week in ("w1", "w2", "w3", "w4"):
        run = client.create_run(experiment, tags={DATA_FINGERPRINT: week}).info.run_id
        client.log_metric(run, "final_test_rmse", 60.0)
        client.create_model_version("spend", f"runs:/{run}/model", run)
        weeks.append(run)
    first = champion_challenger(client, "spend", weeks[0], "1", "rmse", 66.8, False, "w1")
    assert first["decision"] == "first champion"
    on_this_split = {"1": 70.2}  # what v1 scores on week 2's test rows
    second = champion_challenger(
        client, "spend", weeks[1], "2", "rmse", 57.1, False, "w2", None, on_this_split.get
    )
    rescored = (
        "(the champion scored on this split's test rows, some of which it may have trained on)"
    )
    assert second["decision"] == f"promoted {rescored}"
    assert second["champion"] == 70.2
    assert str(client.get_model_version_by_alias("spend", "champion").version) == "2"

    def better(version: str) -> float:
        return 50.0

    third = champion_challenger(
        client, "spend", weeks[2], "3", "rmse", 57.1, False, "w3", None, better
    )
    assert third["decision"] == f"kept: not better {rescored}"

    def fails(version: str) -> float:
        raise ValueError("it predicts the classes a, b, this split has a, b, vip")

    fourth = champion_challenger(
        client, "spend", weeks[3], "4", "rmse", 99.0, False, "w4", None, fails
    )
    assert fourth["decision"] == (
        "promoted: the champion, tested on another split, cannot be scored on this one "
        "(it predicts the classes a, b, this split has a, b, vip)"
    )
    assert str(client.get_model_version_by_alias("spend", "champion").version) == "4"

    def unreachable(version: str) -> float:
        from runner.export import ModelUnavailable

        raise ModelUnavailable("ConnectionError: the store did not answer")

    offline = champion_challenger(
        client, "spend", weeks[0], "1", "rmse", 1.0, False, "w5", None, unreachable
    )
    assert offline["decision"].startswith("kept: the champion, tested on another split, could")
    assert str(client.get_model_version_by_alias("spend", "champion").version) == "4"
    # without a way to score it (no test rows to give it), kept as before
    keep = champion_challenger(client, "spend", weeks[0], "1", "rmse", 1.0, False, "w9")
    assert keep["decision"] == "kept: the champion was tested on another split"


def test_a_champion_version_that_no_longer_exists_gives_way_one_the_store_cannot_hand_over_stays(
    tmp_path, monkeypatch
):
    """A deleted champion counted as a store outage: every later version was kept out."""
    import pytest

    from runner.export import ModelUnavailable, score_registered

    client = MlflowClient(f"sqlite:///{tmp_path}/store.db")
    client.create_registered_model("gone")
    with pytest.raises(ValueError, match="it no longer exists") as raised:
        score_registered(client, "gone", np.zeros((2, 3)), np.zeros(2), "rmse", None, "7")
    assert not isinstance(raised.value, ModelUnavailable)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # no minutes of retries
    dead = MlflowClient("http://127.0.0.1:9/")  # nothing listens: the store is down
    with pytest.raises(ModelUnavailable):
        score_registered(dead, "gone", np.zeros((2, 3)), np.zeros(2), "rmse", None, "1")


def test_a_model_that_fails_to_load_on_older_libraries_says_which(tmp_path):
    """Served where scikit-learn is older than the one it was saved with, a member failed in
    the library's own words ('LogisticRegression' object has no attribute 'multi_class')."""
    import json
    from types import SimpleNamespace

    from runner.pyfunc_model import EnsembleModel, _older_than_saved

    model = tmp_path / "model"
    (model / "artifacts").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==99.0\nnumpy==1.0\n")
    spec = model / "artifacts" / "ensemble_spec.json"
    # a spec this environment cannot read (here a task kind it does not know)
    spec.write_text(json.dumps({"task": {"kind": "ranking", "n_classes": None}, "names": ["a"]}))
    older = _older_than_saved(spec)
    assert (
        len(older) == 1 and older[0].startswith("scikit-learn ") and "(saved with 99.0)" in older[0]
    )
    # a load that fails names the older library
    from models.store import SPEC_SHA256, sha256

    context = SimpleNamespace(
        artifacts={"ensemble_spec": str(spec), "estimator": str(spec)},
        model_config={SPEC_SHA256: sha256(spec)},
    )
    with pytest.raises(
        RuntimeError, match=r"this environment has scikit-learn .* \(saved with 99\.0\)"
    ):
        EnsembleModel().load_context(context)
    (model / "requirements.txt").write_text("scikit-learn==0.1\n")  # newer here: its own error
    with pytest.raises(ValueError, match="ranking"):
        EnsembleModel().load_context(context)
    # loaded, failing on its first prediction (an attribute the older release lacks)
    (model / "requirements.txt").write_text("scikit-learn==99.0\n")
    served = EnsembleModel()
    served.older = _older_than_saved(spec)

    class Old:
        reads_table = False

        def predict(self, X, task):
            raise AttributeError("'LogisticRegression' object has no attribute 'multi_class'")

    served.members, served.n_members, served.task = {0: Old()}, 1, None
    served.pixel_range = served.feature_names = served.conformal = served.classes = None
    served.n_features, served.image_shape, served.resizes_images = 3, None, False
    with pytest.raises(RuntimeError, match=r"cannot be used here \(AttributeError: 'Logistic"):
        served.predict(None, np.zeros((2, 3)))


def _submit(env: dict, shared: object, db: str, tmp_path: object) -> subprocess.CompletedProcess:
    """``ray job submit`` of the smoke sweep to the test's cluster."""
    return subprocess.run(
        [
            sys.executable,  # this interpreter's Ray CLI and Python, whatever PATH holds
            "-m",
            "ray.scripts.scripts",
            "job",
            "submit",
            "--working-dir",
            str(ROOT),
            "--",
            sys.executable,
            "-m",
            "runner",
            "+experiment=quickstart",
            "smoke=true",
            *INFRA_MEMBERS,
            "cluster=address",
            "cluster.address=auto",
            f"runner.storage_path={shared}",
            "runner.sweep_id=job-1",
            f"tracking.uri={db}",
            f"hydra.run.dir={tmp_path}/out",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
