"""The member runs' writer: in order, off the caller's thread, and stopping at a failure."""

from __future__ import annotations

import pickle
import threading
import time

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from helpers import read_summary, run_cli
from runner.store_writer import WRITER_THREAD, StoreWriter, background_by_default


def _gated_writes(fail_at: int) -> tuple[threading.Event, list[int], object]:
    """A gate, the writes done, and a write that waits for the gate and fails the store at
    ``fail_at``."""
    gate = threading.Event()
    done: list[int] = []

    def write(i: int) -> None:
        gate.wait()
        if i == fail_at:
            raise MlflowException("API request failed: connection refused")
        done.append(i)

    return gate, done, write


def test_background_writes_happen_in_order_in_one_thread_and_flush_waits_for_them():
    writer = StoreWriter(background=True)
    done: list[tuple[int, str]] = []

    def write(i: int) -> None:
        time.sleep(0.002 if i % 7 == 0 else 0)
        done.append((i, threading.current_thread().name))

    for i in range(200):
        writer.submit(write, i)
    writer.flush()
    assert [i for i, _ in done] == list(range(200))
    assert {name for _, name in done} == {WRITER_THREAD}
    writer.close()
    writer.submit(write, 200)  # a closed writer starts its thread again
    writer.flush()
    assert done[-1][0] == 200
    writer.close()


def test_submit_waits_while_the_backlog_is_full_and_nothing_is_written_after_a_failure():
    writer = StoreWriter(background=True, backlog=3)
    gate, done, write = _gated_writes(fail_at=4)
    for i in range(3):
        writer.submit(write, i)
    fourth = threading.Thread(target=writer.submit, args=(write, 3))
    fourth.start()
    fourth.join(0.5)
    assert fourth.is_alive()  # three writes wait: the fourth waits for room
    gate.set()
    fourth.join(5)
    assert not fourth.is_alive()
    for i in range(4, 10):  # the fifth write fails the store: the rest are not written
        writer.submit(write, i)
    with pytest.raises(MlflowException):
        writer.flush()
    assert done == [0, 1, 2, 3]
    writer.close()
    assert pickle.loads(pickle.dumps(writer)).backlog == 3


def test_a_store_failure_stops_the_writes_and_is_raised_by_flush():
    writer = StoreWriter(background=True)
    gate, done, write = _gated_writes(fail_at=3)
    for i in range(10):
        writer.submit(write, i)
    gate.set()
    with pytest.raises(MlflowException, match="connection refused"):
        writer.flush()
    assert done == [0, 1, 2] and writer.failure is not None
    writer.submit(write, 11)  # nothing more is written after a failure
    with pytest.raises(MlflowException):
        writer.flush()
    assert done == [0, 1, 2]
    writer.close()


def test_drop_gives_up_the_writes_not_started_and_waits_for_the_one_under_way():
    writer = StoreWriter(background=True)
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def write(i: int) -> None:
        if i == 0:
            started.set()
            release.wait()
        done.append(i)

    for i in range(5):
        writer.submit(write, i)
    started.wait()
    threading.Timer(0.2, release.set).start()
    writer.drop(timeout=10)
    assert done == [0]  # the write under way finished before drop returned; none after it
    writer.close()
    assert done == [0]


def test_at_once_a_bug_is_raised_to_the_caller_and_a_store_failure_kept():
    writer = StoreWriter(background=False)
    caller = threading.current_thread().name
    seen: list[str] = []
    writer.submit(lambda: seen.append(threading.current_thread().name))
    assert seen == [caller]
    with pytest.raises(KeyError):
        writer.submit(lambda: {}["missing"])
    assert writer.failure is None
    writer.submit(lambda: (_ for _ in ()).throw(MlflowException("store down")))
    assert isinstance(writer.failure, MlflowException)
    with pytest.raises(MlflowException):
        writer.flush()


def test_a_pickled_writer_starts_without_its_thread_or_queue():
    writer = StoreWriter(background=True)
    writer.submit(lambda: None)
    copy = pickle.loads(pickle.dumps(writer))
    assert copy.background and copy._thread is None and copy.failure is None
    writer.close()


@pytest.mark.parametrize(
    ("uri", "background"),
    [
        ("sqlite:///mlflow.db", False),
        ("file:///tmp/mlruns", False),
        ("/tmp/mlruns", False),
        ("http://127.0.0.1:5000", True),
        ("https://mlflow.example.com", True),
        ("postgresql+psycopg2://u@db/mlflow", True),
        ("databricks", True),
    ],
)
def test_writes_go_through_a_thread_by_default_only_for_stores_across_a_network(uri, background):
    assert background_by_default(uri) is background


def test_in_the_thread_a_bug_in_one_write_is_logged_and_the_rest_are_written(caplog):
    writer = StoreWriter(background=True)
    done: list[int] = []

    def write(i: int) -> None:
        if i == 1:
            raise KeyError("no such trial")
        done.append(i)

    for i in range(4):
        writer.submit(write, i)
    writer.flush()  # no failure: the writes went on
    assert done == [0, 2, 3] and writer.failure is None
    assert "writing a member run failed" in caplog.text and "no such trial" in caplog.text
    # something that would end the thread (SystemExit from a library) stops the writes and
    # is raised by flush instead of leaving it waiting for ever
    writer.submit(lambda: (_ for _ in ()).throw(SystemExit(3)))
    writer.submit(write, 9)
    with pytest.raises(SystemExit):
        writer.flush()
    assert done == [0, 2, 3]
    writer.close()


def test_a_sweep_written_by_the_thread_records_each_trial_once_with_its_times(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        *(f"~members.{m}" for m in ("mlp", "convnet", "resnet", "selu")),
        "search=random",
        "search.num_samples=4",
        "search.scheduler=null",
        "members.logistic.hparams.C={loguniform: [0.001, 10.0]}",
        f"tracking.uri={db}",
        "tracking.background_writes=true",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    assert [m["status"] for m in summary["members"]] == ["FINISHED"] * 5
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    runs = client.search_runs([experiment])
    members = [r for r in runs if r.data.tags["runner.role"] == "member"]
    assert sorted(r.data.tags["runner.member"] for r in members) == sorted(
        m["name"] for m in summary["members"]
    )
    assert all(r.info.status == "FINISHED" for r in runs)
    for m in members:
        assert "final_val_accuracy" in m.data.metrics and "model" in m.data.params
        assert m.info.start_time < m.info.end_time
        listed = {a.path for a in client.list_artifacts(m.info.run_id)}
        assert {"model", "predictions.npz", "member.json"} <= listed
    assert summary["ensemble"]["run_id"] in {r.info.run_id for r in runs}
