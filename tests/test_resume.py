"""Nothing is lost or duplicated: a killed worker is retried, a killed driver resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import run_cli, run_ensembles_cli, sweep_runs


def start(workdir: Path, *overrides: str, **extra_env: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | extra_env
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "runner", "+experiment=quickstart", *overrides],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_complete_without_duplicates(
    db: str, sweep_id: str, members: set[str]
) -> dict[str, object]:
    """One FINISHED parent, one FINISHED run per member, nothing RUNNING; member -> run."""
    runs = sweep_runs(db, sweep_id)
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    parents = [r for r in runs if r.data.tags["runner.role"] == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = [
        r for r in runs if r.data.tags["runner.role"] == "member" and r.info.status == "FINISHED"
    ]
    counts = Counter(r.data.tags["runner.member"] for r in finished)
    assert set(counts) == members
    assert max(counts.values()) == 1, counts
    ensembles = [r for r in runs if r.data.tags["runner.role"] == "ensemble"]
    assert [r.info.status for r in ensembles] == ["FINISHED"]
    return {r.data.tags["runner.member"]: r for r in finished}


def ended_by_the_sentinel(db: str, sweep_id: str) -> tuple[list, list]:
    """The sweep's runs once none is RUNNING (the dead driver's sentinel ends them within
    seconds, before anyone resumes), and the ones it ended: the parent and a member at least,
    each KILLED with the reason and how to resume."""
    deadline = time.time() + 60
    runs = sweep_runs(db, sweep_id)
    while any(r.info.status == "RUNNING" for r in runs):
        assert time.time() < deadline, [(r.info.run_name, r.info.status) for r in runs]
        time.sleep(0.5)
        runs = sweep_runs(db, sweep_id)
    left = [r for r in runs if r.info.status == "KILLED"]
    assert any(r.data.tags["runner.role"] == "sweep" for r in left)
    assert any(r.data.tags["runner.role"] == "member" for r in left)
    for r in left:
        assert "ended without closing this run" in r.data.tags["runner.error"]
        assert f"runner.sweep_id={sweep_id}" in r.data.tags["runner.error"]
    return runs, left


@pytest.mark.slow
def test_driver_killed_mid_sweep_resumes_the_same_sweep(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    # two Keras and two scikit-learn members: when the first member finishes, the other Keras
    # member is still training
    args = [
        "runner.sweep_id=nightly-7",
        "training.epochs=10",
        "~members.selu",
        "~members.resnet",
        f"tracking.uri={db}",
    ]
    driver = start(workdir, *args)
    try:
        for line in driver.stdout:
            if "finished:" in line:  # one member done, others mid-training
                break
        # a member's run is created once its trial has run a second: kill the driver when
        # one is open in the store, not while the next trial has just started
        deadline = time.time() + 60
        while not any(
            r.info.status == "RUNNING" and r.data.tags["runner.role"] == "member"
            for r in sweep_runs(db, "nightly-7")
        ):
            assert time.time() < deadline, "no member run open a minute after the first finished"
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
    before, left = ended_by_the_sentinel(db, "nightly-7")
    done_before = {
        r.data.tags["runner.member"]: r.info.run_id
        for r in before
        if r.data.tags["runner.role"] == "member" and r.info.status == "FINISHED"
    }
    assert done_before

    resumed = run_cli(workdir, "+experiment=quickstart", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finished = assert_complete_without_duplicates(
        db, "nightly-7", {"mlp", "convnet", "logistic", "svm"}
    )
    for name, run_id in done_before.items():  # kept, not trained again
        assert finished[name].info.run_id == run_id
        assert f"{name} finished:" not in resumed.stdout, resumed.stdout  # nor trained
    killed = [r.info.run_id for r in sweep_runs(db, "nightly-7") if r.info.status == "KILLED"]
    # the runs the sentinel ended stay so (the parent is resumed and finishes)
    assert sorted(killed) == sorted(
        r.info.run_id for r in left if r.data.tags["runner.role"] != "sweep"
    )

    again = run_cli(workdir, "+experiment=quickstart", *args)
    assert again.returncode == 0 and "already finished" in again.stdout
    # a nightly job resuming its latest sweep with the same config: nothing to do, no error
    unnamed = [a for a in args if not a.startswith("runner.sweep_id=")]
    nightly = run_cli(workdir, "+experiment=quickstart", *unnamed, "runner.resume=true")
    assert nightly.returncode == 0 and "already finished" in nightly.stdout, nightly.stderr
    # the same id with an edited config is no silent "nothing to do": it names the change
    edited = run_cli(workdir, "+experiment=quickstart", *args, "members.logistic.hparams.C=5.0")
    assert edited.returncode == 2, edited.stderr[-3000:]
    (line,) = [x for x in edited.stderr.splitlines() if x.strip()]
    assert line.startswith("error: sweep nightly-7 of 'quickstart' already finished with another")
    assert "members.logistic.hparams.C: 0.5 -> 5.0" in line and "start a new sweep" in line
    assert (
        len([r for r in sweep_runs(db, "nightly-7") if r.data.tags["runner.role"] == "sweep"]) == 1
    )


@pytest.mark.slow
def test_losing_the_ray_head_mid_sweep_leaves_no_run_running(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    # Ray's C++ side ends a driver whose GCS stays away this long (60 s by default)
    driver = start(
        workdir,
        "runner.sweep_id=head-1",
        "training.epochs=30",
        "~members.selu",
        "~members.resnet",
        "~members.svm",
        f"tracking.uri={db}",
        RAY_gcs_rpc_server_reconnect_timeout_s="5",
    )
    try:
        for line in driver.stdout:
            if "started" in line:  # a trial runs: its member run is open
                break
        found = subprocess.run(
            ["pgrep", "-f", f"gcs_server.*session_[0-9_-]*_{driver.pid}/"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert len(found) == 1, found  # this driver's local head, not another test's
        os.kill(int(found[0]), signal.SIGKILL)
        output, _ = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode != 0, output[-3000:]
    ended_by_the_sentinel(db, "head-1")


def trial_pid(storage: Path, member: str, timeout: float = 120) -> int:
    """The worker pid of the member's trial, from Tune's result.json, once it has a result."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in storage.glob(f"*/{member}_*/result.json"):
            lines = path.read_text().splitlines()
            if lines:
                return int(json.loads(lines[0])["pid"])
        time.sleep(0.5)
    raise AssertionError(f"no result of {member} within {timeout}s")


@pytest.mark.slow
def test_worker_killed_mid_trial_is_retried_and_tracked_once(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    storage = workdir / "tune"
    driver = start(
        workdir,
        "runner.sweep_id=kill-1",
        "runner.max_failures=1",
        # long enough to be killed mid-training: a whole epoch per Keras call made 60 epochs
        # of the convnet a few seconds, over before a loaded machine's first result was seen
        "training.epochs=240",
        f"runner.storage_path={storage}",
        f"tracking.uri={db}",
        "~members.mlp",
        "~members.selu",
        "~members.resnet",
    )
    try:
        os.kill(trial_pid(storage, "convnet"), signal.SIGKILL)
        output, _ = driver.communicate(timeout=600)
    finally:
        driver.kill()
    assert driver.returncode == 0, output[-3000:]
    runs = [r for r in sweep_runs(db, "kill-1") if r.data.tags.get("runner.member") == "convnet"]
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FAILED", "FINISHED"], statuses
    dead = next(r for r in runs if r.info.status == "FAILED")
    assert "died" in dead.data.tags["runner.error"].lower(), dead.data.tags["runner.error"]
    assert dead.data.tags["runner.error"].endswith("(retried)")
    assert "] convnet failed: " in output and "; retrying" in output
    finished = next(r for r in runs if r.info.status == "FINISHED")
    steps = [m.step for m in MlflowClient(db).get_metric_history(finished.info.run_id, "loss")]
    assert steps == list(range(1, 241))  # one clean curve, no epochs from the killed attempt
    assert finished.data.tags["runner.attempt"] == "2"


@pytest.mark.slow
def test_champion_alias_moves_only_to_a_better_ensemble(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    # scikit-learn members only: no TensorFlow import per worker, so three sweeps stay quick
    base = [
        "+experiment=quickstart",
        "~members.mlp",
        "~members.convnet",
        "~members.resnet",
        "~members.selu",
        "ensemble.register_as=digits",
        "ensemble.champion=true",
        f"tracking.uri={db}",
    ]
    client = MlflowClient(db)

    def run(out: str, *extra: str) -> dict:
        done = run_cli(workdir, *base, *extra, f"hydra.run.dir={out}")
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((workdir / out / "summary.json").read_text())

    weak_args = ("members.logistic.hparams.C=0.00001", "++members.svm.hparams.C=0.001")
    weak = run("weak", *weak_args)
    assert weak["ensemble"]["champion"]["decision"] == "first champion"
    strong = run("strong")
    assert strong["ensemble"]["test_metric"] > weak["ensemble"]["test_metric"]
    assert strong["ensemble"]["champion"]["decision"] == "promoted"
    # promoted only after the registered version was loaded back and scored the same
    loaded_back = strong["ensemble"]["champion"]["challenger_loaded_back"]
    assert loaded_back == pytest.approx(strong["ensemble"]["test_metric"])
    assert str(client.get_model_version_by_alias("digits", "champion").version) == "2"
    # the version says where it came from: sweep, data split, its test scores
    version = client.get_model_version("digits", "2")
    assert version.tags["runner.sweep_id"] == strong["sweep_id"], version.tags
    assert version.tags["runner.role"] == "ensemble" and "runner.data_fingerprint" in version.tags
    assert f"of sweep {strong['sweep_id']} on data split " in version.description
    assert f"accuracy {strong['ensemble']['test_metric']:.4g}" in version.description
    again = run("again", *weak_args)
    assert again["ensemble"]["champion"]["decision"] == "kept: not better"
    assert str(client.get_model_version_by_alias("digits", "champion").version) == "2"
    tags = client.get_run(again["ensemble"]["run_id"]).data.tags
    assert tags["runner.champion.decision"] == "kept: not better"
    # re-ensembled the sweep's way, without asking to register: found, not logged again
    same = run_ensembles_cli(workdir, "experiment=quickstart", f"tracking_uri={db}")
    assert same.returncode == 0, same.stderr[-3000:]
    ran = again["ensemble"]["run_id"]
    assert f"ensemble run {ran} already combines these members" in same.stdout, same.stdout
    # next week's split: the champion is loaded from the registry and scored on its test rows
    moved = run("moved", "data.seed=1")["ensemble"]["champion"]
    assert "(the champion scored on this split's test rows, some" in moved["decision"], moved
    assert moved["champion"] != strong["ensemble"]["test_metric"]
    assert 0.9 < moved["champion"] <= 1.0


def test_a_sweep_resumed_after_its_ensemble_finished_reuses_that_ensemble_run(workdir):
    """The driver died after the ensemble run FINISHED but before it closed the parent: the
    resume keeps every member and that ensemble run, and logs no second one."""
    db = f"sqlite:///{workdir}/mlflow.db"
    args = [
        "+experiment=quickstart",
        "smoke=true",
        "~members.mlp",
        "~members.convnet",
        "~members.resnet",
        "~members.selu",
        "runner.sweep_id=late-crash",
        f"tracking.uri={db}",
    ]
    first = run_cli(workdir, *args, "hydra.run.dir=first")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((workdir / "first" / "summary.json").read_text())
    client = MlflowClient(db)
    client.update_run(summary["parent_run_id"], status="RUNNING")  # never closed
    again = run_cli(workdir, *args, "hydra.run.dir=again")
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((workdir / "again" / "summary.json").read_text())
    assert resumed["ensemble"]["run_id"] == summary["ensemble"]["run_id"]
    assert resumed["ensemble"]["reused"] is True
    assert resumed["ensemble"]["test_metric"] == summary["ensemble"]["test_metric"]
    for fact in ("predict_ms_per_1000", "model_bytes"):  # the served members' sums, again
        assert resumed["ensemble"][fact] == summary["ensemble"][fact] > 0, fact
    assert "prediction time:" in again.stdout
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    roles = [r.data.tags["runner.role"] for r in client.search_runs([experiment])]
    assert sorted(roles) == ["ensemble", "member", "member", "sweep"]
    assert client.get_run(summary["parent_run_id"]).info.status == "FINISHED"


def test_a_finished_sweep_rerun_on_a_changed_table_trains_it_instead_of_doing_nothing(workdir):
    """A weekly job overwriting latest.csv and rerunning with runner.resume=true (or its
    sweep id) was told 'already finished; nothing to do', exit 0: last week's model stayed."""
    import numpy as np
    import pandas as pd

    def week(rows: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(rows, 3))
        frame = pd.DataFrame(x, columns=["a", "b", "c"])
        frame["y"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
        frame.to_csv(workdir / "latest.csv", index=False)

    db = f"sqlite:///{workdir}/mlflow.db"
    args = ["+experiment=quickstart", "data=csv", "data.path=latest.csv", "data.target=y"]
    args += [f"~members.{m}" for m in ("mlp", "selu", "convnet", "resnet")]
    args += [f"tracking.uri={db}", "ensemble.n_boot=10"]
    week(300, 0)
    first = run_cli(workdir, *args, "runner.sweep_id=weekly")
    assert first.returncode == 0, first.stderr[-2000:]
    same = run_cli(workdir, *args, "runner.resume=true")
    assert same.returncode == 0 and "nothing to do" in same.stdout + same.stderr, same.stderr
    week(400, 1)  # next week's table at the same path
    named = run_cli(workdir, *args, "runner.sweep_id=weekly")
    assert named.returncode == 2, named.stderr[-2000:]
    (line,) = [x for x in named.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: sweep weekly of 'quickstart' already finished on other data")
    assert "Traceback" not in named.stderr
    resumed = run_cli(workdir, *args, "runner.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "no sweep with this config on this data yet: starting" in resumed.stdout
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    sweeps = client.search_runs([experiment], "tags.`runner.role` = 'sweep'")
    assert sorted(r.info.status for r in sweeps) == ["FINISHED", "FINISHED"]
    assert len({r.data.tags["runner.data_fingerprint"] for r in sweeps}) == 2


def test_resume_true_skips_this_configs_sweeps_on_other_data_finished_or_not(tmp_path):
    """A nightly job killed one night, then the table at its path changed: resume=true
    picked the interrupted sweep on the old data, whose data check then failed every night."""
    from dataclasses import replace

    from test_spec import spec_of

    from runner.contracts import CONFIG_DIGEST, DATA_FINGERPRINT
    from runner.runtree import RunTree, config_digest

    db = f"sqlite:///{tmp_path}/mlflow.db"
    spec = replace(spec_of(tmp=tmp_path), tracking_uri=db, resume=True)
    client = MlflowClient(db)
    exp = client.create_experiment(spec.experiment)
    digest = config_digest(spec.resolved)

    def sweep(k: int, data: str, status: str | None) -> None:
        tags = {"runner.role": "sweep", "runner.sweep_id": f"s{k}", CONFIG_DIGEST: digest}
        run = client.create_run(exp, start_time=1000 + k, tags={**tags, DATA_FINGERPRINT: data})
        if status:
            client.set_terminated(run.info.run_id, status)

    sweep(0, "monday", "FINISHED")
    sweep(1, "monday", "KILLED")  # interrupted on Monday's table
    assert RunTree.resumable_sweep_id(spec, "monday") == "s1"
    assert RunTree.resumable_sweep_id(spec, "tuesday") is None  # a new sweep on Tuesday's
    sweep(2, "tuesday", "FINISHED")
    assert RunTree.resumable_sweep_id(spec, "tuesday") == "s2"  # nothing to do
    assert RunTree.resumable_sweep_id(spec, "wednesday") is None
