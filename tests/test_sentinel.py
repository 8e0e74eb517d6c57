"""The sentinel ends the runs a dead driver left open, and nothing else."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from runner import sentinel
from runner.contracts import DRIVER, ERROR, ROLE, SWEEP


def _sweep(client: MlflowClient, experiment_id: str, sweep: str, token: str) -> dict[str, str]:
    """A parent (claimed by the driver ``token``) and three members: running, finished,
    failed."""
    tags = {SWEEP: sweep}
    parent = client.create_run(experiment_id, tags={**tags, ROLE: "sweep"}).info.run_id
    client.set_tag(parent, DRIVER, token)
    runs = {"parent": parent}
    for name in ("running", "finished", "failed"):
        runs[name] = client.create_run(experiment_id, tags={**tags, ROLE: "member"}).info.run_id
    client.set_terminated(runs["finished"], "FINISHED")
    client.set_terminated(runs["failed"], "FAILED")
    return runs


def _statuses(client: MlflowClient, runs: dict[str, str]) -> dict[str, str]:
    return {name: client.get_run(run_id).info.status for name, run_id in runs.items()}


def test_a_driver_gone_without_its_word_gets_its_open_runs_killed_and_no_others(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("e")
    runs = _sweep(client, experiment_id, "s-1", token="mine")
    other = _sweep(client, experiment_id, "s-2", token="theirs")  # another sweep: untouched
    guard = sentinel.start(uri, experiment_id, "s-1", runs["parent"], "mine")
    assert guard is not None
    guard._proc.stdin.close()  # what the kernel does when the driver dies
    assert guard._proc.wait(timeout=60) == 0
    assert _statuses(client, runs) == {
        "parent": "KILLED",
        "running": "KILLED",
        "finished": "FINISHED",
        "failed": "FAILED",
    }
    for name in ("parent", "running"):
        why = client.get_run(runs[name]).data.tags[ERROR]
        assert "ended without closing this run" in why and "runner.sweep_id=s-1" in why
    assert _statuses(client, other)["running"] == "RUNNING"


def test_a_clean_end_or_a_resumed_parent_is_left_alone(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("e")
    runs = _sweep(client, experiment_id, "s-1", token="mine")
    guard = sentinel.start(uri, experiment_id, "s-1", runs["parent"], "mine")
    assert guard is not None
    guard.disarm()  # the driver ended its runs itself
    assert guard._proc.returncode == 0
    assert _statuses(client, runs)["running"] == "RUNNING"
    # another driver resumed the sweep (it claimed the parent): the dead driver's sentinel
    # leaves the sweep to it, parent and members alike (its attach ends what was left open)
    guard = sentinel.start(uri, experiment_id, "s-1", runs["parent"], "old")
    assert guard is not None
    guard._proc.stdin.close()
    assert guard._proc.wait(timeout=60) == 0
    assert _statuses(client, runs)["parent"] == "RUNNING"
    assert _statuses(client, runs)["running"] == "RUNNING"
