"""One live driver per sweep id: an overlapping invocation stops at once naming the holder,
a dead driver's lease is taken over, and the record never doubles."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import INFRA_MEMBERS, read_summary, run_cli, start_cli
from runner.lease import Lease, LeaseHeld


def test_a_live_lease_refuses_a_second_holder_and_a_stale_one_is_taken_over(tmp_path):
    path = tmp_path / "exp-s1.lease"
    first = Lease(path, "s1", timeout=30)
    first.acquire()
    try:
        with pytest.raises(LeaseHeld, match=rf"host {socket.gethostname()} pid {os.getpid()}"):
            Lease(path, "s1", timeout=30).acquire()
    finally:
        first.release()
    assert not path.exists()  # released: the next driver starts clean
    # a crashed driver elsewhere: its last heartbeat is older than the timeout
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t", "heartbeat": 0}))
    taker = Lease(path, "s1", timeout=30)
    taker.acquire()
    assert taker.took_over["host"] == "elsewhere"
    taker.release()
    # a driver on this host whose process is gone: taken over at once, heartbeat or not
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    path.write_text(
        json.dumps(
            {
                "host": socket.gethostname(),
                "pid": int(dead),
                "token": "t2",
                "heartbeat": time.time(),
            }
        )
    )
    again = Lease(path, "s1", timeout=3600)
    again.acquire()
    assert again.took_over["pid"] == int(dead)
    again.release()


def test_a_failed_heartbeat_write_or_a_hung_tracking_copy_leaves_the_lease_fresh(tmp_path):
    """One OSError killed the heartbeat thread, and its copy to the parent run (a tracking
    server round trip that can hang for minutes) ran inline: either way the lease went stale
    under a live driver and a second invocation took the sweep over."""
    import threading

    path = tmp_path / "exp-s2.lease"
    lease = Lease(path, "s2", timeout=1.5)  # a beat every 0.5 s
    hung, copies = threading.Event(), []

    def copy(record):
        copies.append(record)
        hung.wait(30)  # a tracking server that stopped answering

    lease.on_heartbeat = copy
    write, failures = lease._write, []

    def flaky_write():
        if not failures:
            failures.append(1)
            raise OSError("Stale file handle")
        return write()

    lease.acquire()
    lease._write = flaky_write
    try:
        time.sleep(3.5)
        holder = json.loads(path.read_text())
        assert time.time() - holder["heartbeat"] < 1.5 and failures and len(copies) == 1
        with pytest.raises(LeaseHeld, match="s2 is running in another driver"):
            Lease(path, "s2", timeout=1.5).acquire()
    finally:
        hung.set()
        lease.release()
    assert not path.exists()


@pytest.mark.slow
def test_two_overlapping_invocations_of_one_sweep_leave_one_record(workdir):
    """A cron job that overran: the second invocation, started while the first trains,
    exits non-zero at once with one line naming the holder; the first finishes alone."""
    db = f"sqlite:///{workdir}/mlflow.db"
    args = [
        "+experiment=quickstart",
        *INFRA_MEMBERS,
        f"tracking.uri={db}",
        "runner.sweep_id=nightly-1",
        "training.epochs=15",
    ]
    # the first driver holds the lease and trains
    first = start_cli(workdir, *args, "hydra.run.dir=first", until=" started")
    try:
        start = time.monotonic()
        second = run_cli(workdir, *args, "hydra.run.dir=second", timeout=120)
        took = time.monotonic() - start
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 2, second.stderr[-3000:]
    (line,) = [x for x in second.stderr.splitlines() if x.strip()]
    assert line.startswith(
        f"error: sweep nightly-1 is running in another driver (host "
        f"{socket.gethostname()} pid {first.pid}, last heartbeat"
    )
    assert took < 60, took  # before Ray started: no trial ran twice
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    roles = Counter(r.data.tags["runner.role"] for r in runs)
    assert roles == Counter({"sweep": 1, "member": 3, "ensemble": 1})
    assert all(r.info.status == "FINISHED" for r in runs)
    summary = read_summary(workdir / "first")
    assert all(m["status"] == "FINISHED" for m in summary["members"])
    assert not list(Path(workdir, "ray_results").glob("*.lease"))  # released at the end


def test_a_lease_in_a_bucket_refuses_a_second_holder_and_is_taken_over_when_stale(tmp_path):
    """Storage named by a URI (s3://, gs://, file://) had no lease at all: two overlapping
    invocations of one sweep both ran it. The lease is an object there (file:// stands in
    for a bucket: the same pyarrow file system calls)."""
    uri = f"file://{tmp_path}/bucket/exp-s3.lease"
    first = Lease(uri, "s3", timeout=30)
    first.acquire()
    try:
        with pytest.raises(LeaseHeld, match="s3 is running in another driver"):
            Lease(uri, "s3", timeout=30).acquire()
        assert json.loads((tmp_path / "bucket" / "exp-s3.lease").read_text())["sweep_id"] == "s3"
    finally:
        first.release()
    assert not (tmp_path / "bucket" / "exp-s3.lease").exists()
    (tmp_path / "bucket" / "exp-s3.lease").write_text(
        json.dumps({"host": "elsewhere", "pid": 1, "token": "t", "heartbeat": 0})
    )
    taker = Lease(uri, "s3", timeout=30)
    taker.acquire()
    assert taker.took_over["host"] == "elsewhere"
    taker.release()
    (tmp_path / "bucket" / "exp-s3.lease").write_text("{half a rec")  # a read that failed
    with pytest.raises(LeaseHeld, match=r"s3: its lease at .* exists but could not be read"):
        Lease(uri, "s3", timeout=30).acquire()


def test_a_driver_whose_lease_was_taken_over_is_told_and_leaves_the_parent_run_alone(tmp_path):
    """A driver taken for dead (its heartbeat failed for a whole timeout) went on running
    the sweep beside the one that took it over; closing, it would end the parent run the
    other now runs."""
    from dataclasses import replace

    from mlflow.tracking import MlflowClient

    from runner.runtree import RunTree
    from runner.spec import from_config

    path = tmp_path / "exp-s4.lease"
    lease = Lease(path, "s4", timeout=0.6)
    told = []
    lease.on_lost = told.append
    lease.acquire()
    path.write_text(json.dumps({"host": "h2", "pid": 2, "token": "other", "heartbeat": 1e12}))
    time.sleep(1.0)
    lease.release()
    assert told and told[0]["token"] == "other" and lease.lost["host"] == "h2"
    assert json.loads(path.read_text())["token"] == "other"  # never written over

    cfg = {
        "data": {"name": "digits"},
        "members": {"m": {"model": "logistic"}},
        "ensemble": {"method": "mean"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/t.db"},
        "runner": {"sweep_id": "s4"},
    }
    spec = from_config(cfg, "unit", str(tmp_path))
    first = RunTree(spec, "fp", {})
    child = first.child("m", "member", {"runner.member": "m"})
    first.close("KILLED")
    second = RunTree(replace(spec, resume=True), "fp", {})  # takes the sweep over
    assert second.parent_run_id == first.parent_run_id
    client = MlflowClient(spec.tracking_uri)
    first._open = {first.parent_run_id}  # as if the first driver still ran it
    assert first.close("KILLED", "another driver took sweep s4 over") is True
    assert client.get_run(first.parent_run_id).info.status == "RUNNING"  # the second's
    assert client.get_run(child).info.status == "KILLED"
    second.close("FINISHED")
    assert client.get_run(first.parent_run_id).info.status == "FINISHED"
