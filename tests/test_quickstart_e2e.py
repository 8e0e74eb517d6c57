"""End to end on real components: the CLI runs real Ray Tune trials and writes a real MLflow
SQLite store; we check the run tree, the artifacts and that summary.json matches MLflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers import free_port, read_summary, run_cli, sweep_runs

QUICKSTART_MEMBERS = {"mlp", "selu", "convnet", "resnet", "logistic", "svm"}


def runs_by_role(client: MlflowClient, sweep_id: str) -> dict[str, list]:
    """The runs of one sweep, by role."""
    by_role: dict[str, list] = {"sweep": [], "member": [], "ensemble": [], "reensemble": []}
    for run in sweep_runs(client, sweep_id):
        role = run.data.tags["runner.role"]
        by_role["reensemble" if run.data.tags.get("runner.reensemble") else role].append(run)
    return by_role


def assert_run_tree(client: MlflowClient, summary: dict, members: set[str], epochs: int) -> None:
    runs = runs_by_role(client, summary["sweep_id"])
    (parent,) = runs["sweep"]
    assert parent.info.run_id == summary["parent_run_id"]
    assert parent.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in parent.data.tags
    for key, value in summary["driver"].items():  # the driver's memory record
        assert parent.data.metrics[f"driver_{key}"] == pytest.approx(value)

    by_member = {r.data.tags["runner.member"]: r for r in runs["member"]}
    assert len(runs["member"]) == len(by_member) == len(members)
    assert set(by_member) == members
    for name, run in by_member.items():
        assert run.info.status == "FINISHED", name
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["runner.model"] and run.data.tags["runner.config_hash"]
        assert run.data.params["model"] == run.data.tags["runner.model"]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"model", "predictions.npz", "member.json"} <= artifacts
        if run.data.params["kind"] == "keras":
            assert {"history.json", "learning_curves.png"} <= artifacts, name
        history = sorted(
            client.get_metric_history(run.info.run_id, "val_loss"), key=lambda m: m.step
        )
        expected = list(range(1, epochs + 1)) if run.data.params["kind"] == "keras" else [1]
        assert [m.step for m in history] == expected, name
        # logged as each epoch ended (live in the UI), not all at once when the member finished
        stamps = [m.timestamp for m in history]
        assert stamps == sorted(stamps) and (len(set(stamps)) > 1 or len(stamps) == 1), name
        assert stamps[0] < run.info.end_time

    (ens,) = runs["ensemble"]
    assert ens.info.status == "FINISHED"
    assert ens.data.tags["mlflow.parentRunId"] == parent.info.run_id
    weights = {
        k[len("weight.") :]: v for k, v in ens.data.metrics.items() if k.startswith("weight.")
    }
    assert set(weights) == members
    assert all(w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-9)

    ens_artifacts = {a.path for a in client.list_artifacts(ens.info.run_id)}
    assert {"model", "report.json", "weights.json", "diversity.md", "predictions.npz"} <= (
        ens_artifacts
    )
    for picture in ("diversity_heatmap.png", "weights.png", "confusion_matrix.png"):
        assert picture in ens_artifacts
    assert {"leaderboard.md", "leaderboard.html"} <= ens_artifacts
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "leaderboard.txt", "leaderboard.md", "leaderboard.html"} <= (
        parent_artifacts
    )
    for key in ("cv_gain", "test_gain", "test_gain_ci_low", "beats_best_member"):
        assert key in ens.data.metrics
    assert ens.data.tags["runner.best_member"] in members

    # summary.json says what MLflow holds
    assert summary["ensemble"]["run_id"] == ens.info.run_id
    assert summary["ensemble"]["weights"] == pytest.approx(weights)
    assert summary["ensemble"]["test_metric"] == pytest.approx(
        ens.data.metrics["final_test_accuracy"]
    )
    for row in summary["members"]:
        run = by_member[row["name"]]
        assert row["run_id"] == run.info.run_id and row["status"] == "FINISHED"
        assert row["test_metric"] == pytest.approx(run.data.metrics["final_test_accuracy"])
        assert row["val_metric"] == pytest.approx(run.data.metrics["final_val_accuracy"])


def recomputed_ensemble_test_accuracy(client: MlflowClient, summary: dict, tmp: Path) -> float:
    """Download every member's predictions and apply the logged weights ourselves."""
    combined = 0.0
    y_test = None
    for row in summary["members"]:
        path = client.download_artifacts(row["run_id"], "predictions.npz", str(tmp))
        with np.load(path) as npz:
            assert str(npz["fingerprint"]) == summary["data"]["fingerprint"]
            assert npz["val"].shape == (summary["data"]["rows"]["val"], 10)
            combined = combined + summary["ensemble"]["weights"][row["name"]] * npz["test"]
            y_test = npz["y_test"]
    return float(np.mean(np.argmax(combined, axis=1) == y_test))


def test_quickstart_end_to_end_builds_the_run_tree_and_a_second_run_is_a_new_sweep(
    readme_quickstart, tmp_path
):
    workdir, summary = readme_quickstart.workdir, readme_quickstart.summary
    db = f"sqlite:///{workdir}/mlflow.db"
    assert summary["experiment"] == "quickstart" and summary["metric"] == "accuracy"
    assert summary["tracking_uri"] == "sqlite:///mlflow.db" and summary["wall_seconds"] > 0
    driver = summary["driver"]  # the driver's memory: on record with the sweep
    assert driver["trials"] == len(QUICKSTART_MEMBERS)
    assert driver["peak_rss_mb"] >= driver["rss_end_mb"] > 0 and driver["rss_start_mb"] > 0

    # the store's file alone holds the finished sweep (nothing left only in its write-ahead log)
    alone = tmp_path / "copied" / "mlflow.db"
    alone.parent.mkdir()
    shutil.copyfile(workdir / "mlflow.db", alone)
    copied = MlflowClient(f"sqlite:///{alone}")
    assert copied.get_run(summary["parent_run_id"]).info.status == "FINISHED"
    assert len(runs_by_role(copied, summary["sweep_id"])["ensemble"]) == 1

    client = MlflowClient(db)
    assert_run_tree(client, summary, QUICKSTART_MEMBERS, epochs=30)
    recomputed = recomputed_ensemble_test_accuracy(client, summary, tmp_path)
    assert recomputed == pytest.approx(summary["ensemble"]["test_metric"])

    # the logged pyfunc model takes raw features and predicts what the ensemble stage did
    assert_pyfunc_reproduces_the_ensemble(client, summary, db, tmp_path)
    # re-ensembling from MLflow without retraining gives what a fresh fit gives
    assert_reensembling_matches_a_fresh_fit(client, summary, db, workdir, tmp_path)

    second = run_cli(
        workdir,
        "+experiment=quickstart",
        "training.epochs=2",
        "~members.convnet",
        "~members.resnet",
        "~members.selu",
        "ensemble.register_as=digits-ensemble",
        "training.tensorboard=true",
        "hydra.run.dir=out2",
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "ensemble (weighted)" in second.stdout
    # piped output (as in CI logs): plain progress lines, no terminal control codes
    assert "\x1b" not in second.stdout + second.stderr and "\r" not in second.stdout
    progress = [line for line in second.stdout.splitlines() if line.startswith("[")]
    assert sum(" finished: val accuracy " in line for line in progress) == 3
    assert progress[-1].startswith("[3/3 done, 0 running | best ")
    summary2 = read_summary(workdir / "out2")
    assert summary2["sweep_id"] != summary["sweep_id"]
    assert_run_tree(client, summary2, {"mlp", "logistic", "svm"}, epochs=2)
    mlp_run = next(m["run_id"] for m in summary2["members"] if m["name"] == "mlp")
    board = client.download_artifacts(mlp_run, "tensorboard", str(tmp_path / "tb"))
    events = list(Path(board).rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} == {"train", "validation"}, events
    (version,) = client.search_model_versions("name = 'digits-ensemble'")
    assert version.run_id == summary2["ensemble"]["run_id"]
    assert summary2["ensemble"]["registered_version"] == str(version.version) == "1"
    assert_run_tree(client, summary, QUICKSTART_MEMBERS, epochs=30)  # first sweep untouched

    experiment = client.get_experiment_by_name("quickstart")
    all_runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    assert len([r for r in all_runs if r.data.tags["runner.role"] == "sweep"]) == 2


def assert_pyfunc_reproduces_the_ensemble(client, summary, db, tmp_path) -> None:
    import mlflow

    from runner.data import load
    from runner.spec import DataSpec

    data = load(DataSpec("digits", 0.2, 0.2, 0))
    assert data.fingerprint == summary["data"]["fingerprint"]
    mlflow.set_tracking_uri(db)
    try:
        model = mlflow.pyfunc.load_model(summary["ensemble"]["model_uri"])
    finally:
        mlflow.set_tracking_uri(None)
    assert model.metadata.metadata["classes"] == [str(d) for d in range(10)]  # columns' order
    assert model.metadata.run_id == summary["ensemble"]["run_id"]  # where it came from
    predicted = model.predict(data.X_test)
    named = model.predict(data.X_test, params={"output": "labels"})
    np.testing.assert_array_equal(named, [str(k) for k in np.argmax(predicted, axis=1)])
    with pytest.raises(Exception, match="params output='votes'"):
        model.predict(data.X_test[:2], params={"output": "votes"})
    logged = client.download_artifacts(
        summary["ensemble"]["run_id"], "predictions.npz", str(tmp_path)
    )
    with np.load(logged) as npz:
        np.testing.assert_allclose(predicted, npz["test"], rtol=1e-6, atol=1e-7)
    # what a user has: other dtypes, images, one image alone, a frame
    X = data.X_test
    assert np.array_equal(X, X.astype(np.uint8))  # digits' pixels are whole numbers 0..16
    for same in (X.astype(np.float64), X.astype(np.uint8), X.reshape(-1, 8, 8), pd.DataFrame(X)):
        np.testing.assert_allclose(model.predict(same), predicted, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(X[0].reshape(8, 8)), predicted[:1], atol=1e-6)
    # images on another scale than the training ones are answered with a warning
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*trained on images", category=UserWarning)
        model.predict(X)
    for scaled, seen in ((X / 16.0, r"\[0, 1\]"), (X * 16.0, r"\[0, 256\]")):
        with pytest.warns(UserWarning, match=seen + r" but .* pixels in \[0, 16\]: scale"):
            model.predict(scaled)
    with pytest.raises(ValueError, match=r"has shape \(5, 63\); this model takes rows of 64"):
        model.predict(X[:5, :63])
    holed = X[:4].copy()
    holed[2, 5] = np.nan
    with pytest.raises(ValueError, match=r"1 input row\(s\) hold missing .* \(rows 2\)"):
        model.predict(holed)
    # no other member's folder stands in for one the ensemble shipped
    local = Path(
        mlflow.artifacts.download_artifacts(
            summary["ensemble"]["model_uri"], tracking_uri=db, dst_path=str(tmp_path / "served")
        )
    )
    shipped = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    folders = [local / a["path"] for k, a in sorted(shipped["artifacts"].items()) if "member" in k]
    assert len(folders) >= 2
    shutil.rmtree(folders[0])
    shutil.copytree(folders[1], folders[0])
    with pytest.raises(Exception, match="refusing to load member .*kind.json has sha256"):
        mlflow.pyfunc.load_model(str(local))
    shutil.rmtree(folders[0])  # a member's folder gone
    with pytest.raises(Exception, match=r"refusing to load member 0 .*kind.json is missing"):
        mlflow.pyfunc.load_model(str(local))
    shutil.copytree(folders[1], folders[0])
    # the spec, which pins the rest, is pinned by the MLmodel: one byte edited is refused
    spec = local / shipped["artifacts"]["ensemble_spec"]["path"]
    text = spec.read_text()
    edited = text.replace('"n_features": 64', '"n_features": 65')
    assert edited != text
    spec.write_text(edited)
    with pytest.raises(Exception, match=r"ensemble_spec.json: its sha256 is .* MLmodel recorded"):
        mlflow.pyfunc.load_model(str(local))
    # the pins edited out are no way around them (the spec's, then the members')
    import json

    from models.store import sha256

    mlmodel = local / "MLmodel"
    pinned = mlmodel.read_text()
    mlmodel.write_text(
        "".join(line for line in pinned.splitlines(True) if "ensemble_spec_sha256" not in line)
    )
    with pytest.raises(Exception, match=r"the model's MLmodel pins no sha256 for it"):
        mlflow.pyfunc.load_model(str(local))
    mlmodel.write_text(pinned)
    unpinned = json.loads(text)
    del unpinned["member_sha256"]
    spec.write_text(json.dumps(unpinned))
    config = yaml.safe_load(pinned)["flavors"]["python_function"]["config"]
    mlmodel.write_text(pinned.replace(config["ensemble_spec_sha256"], sha256(spec)))
    with pytest.raises(Exception, match=r"it pins no member's sha256 \(member_sha256\)"):
        mlflow.pyfunc.load_model(str(local))
    spec.unlink()
    with pytest.raises(Exception, match=r"refusing to load the ensemble: .* is missing"):
        mlflow.pyfunc.load_model(str(local))


def assert_model_serves(workdir: Path, summary: dict) -> None:
    """`mlflow models serve` answers /invocations with the ensemble's test predictions."""
    import json
    import os
    import time
    import urllib.request

    from runner.data import load

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            summary["ensemble"]["model_uri"],
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "server did not start"
                time.sleep(1)
        from runner.spec import DataSpec

        X = load(DataSpec("digits", 0.2, 0.2, 0)).X_test[:4]

        def ask(**params: str) -> np.ndarray:
            body = {"inputs": X.tolist(), **({"params": params} if params else {})}
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            return np.array(json.loads(urllib.request.urlopen(request).read())["predictions"])

        served, named = ask(), ask(output="labels")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    client = MlflowClient("sqlite:///" + str(workdir / "mlflow.db"))
    path = client.download_artifacts(summary["ensemble"]["run_id"], "predictions.npz", str(workdir))
    with np.load(path) as npz:
        np.testing.assert_allclose(served, npz["test"][:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(named, [str(k) for k in np.argmax(served, axis=1)])


def assert_reensembling_matches_a_fresh_fit(client, summary, db, workdir, tmp_path) -> None:
    from ensembles import stage
    from ensembles.stage import MemberPredictions

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ensembles",
            "experiment=quickstart",
            "method=greedy",
            f"tracking_uri={db}",
            f"sweeps={summary['sweep_id']}",
            "n_steps=20",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs_by_role(client, summary["sweep_id"])["reensemble"]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == summary["parent_run_id"]
    assert run.data.params["method"] == "greedy"
    served = client.download_artifacts(run.info.run_id, "model/MLmodel", str(tmp_path))
    # its probability columns are named as the sweep's own model names them
    assert yaml.safe_load(Path(served).read_text())["metadata"]["classes"] == list("0123456789")
    members, labels = [], None
    for row in summary["members"]:
        path = client.download_artifacts(
            row["run_id"], "predictions.npz", str(tmp_path / row["name"])
        )
        with np.load(path) as npz:
            members.append(
                MemberPredictions(row["name"], npz["val"], npz["test"], str(npz["fingerprint"]))
            )
            labels = (npz["y_val"], npz["y_test"])
    fresh = stage.run("greedy", {"n_steps": 20}, members, *labels, random_state=0)
    assert run.data.metrics["final_test_accuracy"] == pytest.approx(fresh.test_scores["accuracy"])
    assert {
        k[len("weight.") :]: v for k, v in run.data.metrics.items() if k.startswith("weight.")
    } == pytest.approx(fresh.weights)


@pytest.mark.slow
def test_readme_quickstart_command_reaches_097_test_accuracy(readme_quickstart):
    """Exactly the README's command, in a fresh directory: default store, default epochs."""
    workdir, summary = readme_quickstart.workdir, readme_quickstart.summary
    assert (workdir / "mlflow.db").exists()  # MLflow's default store, where the user ran it
    assert summary["ensemble"]["test_metric"] >= 0.97
    assert_model_serves(workdir, summary)
    assert_run_tree(
        MlflowClient("sqlite:///" + str(workdir / "mlflow.db")),
        summary,
        QUICKSTART_MEMBERS,
        epochs=30,
    )
