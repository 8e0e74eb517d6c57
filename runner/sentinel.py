"""Ends a sweep's open MLflow runs when its driver dies without ending them.

A driver killed by SIGKILL or the out-of-memory killer, or ended by Ray's C++ side when the
Ray head is lost, runs no Python cleanup: its runs would stay RUNNING in the MLflow UI until
someone resumed the sweep. The driver starts this small process (``start``) once its parent
run exists; it waits on a pipe from the driver, and when the pipe closes without the
driver's word that it ended its runs, it marks what the driver left open KILLED with the
reason. It imports MLflow only then, so a sweep that ends cleanly pays a bare interpreter
start. A sweep another driver has resumed meanwhile (the parent run's ``runner.driver`` token
is no longer this driver's) is left alone: that driver ends what this one left open.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

CLOSED = b"closed\n"  # the driver's word: it ended its runs itself


class Sentinel:
    """The driver's end of the pipe to its sentinel process."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    def disarm(self) -> None:
        """The driver ended its runs: the sentinel exits without touching the store."""
        pipe: IO[bytes] | None = self._proc.stdin
        if pipe is None or pipe.closed:
            return
        try:
            pipe.write(CLOSED)
            pipe.close()
        except OSError:  # the sentinel is gone already
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)  # it exits at once; reaped, not left a zombie


def start(
    tracking_uri: str,
    experiment_id: str,
    sweep_id: str,
    parent_run_id: str,
    driver_token: str,
) -> Sentinel | None:
    """Start the sentinel of this driver's sweep; None if no process can be started."""
    return _spawn(
        {
            "tracking_uri": tracking_uri,  # through the pipe: no password on a command line
            "experiment_id": experiment_id,
            "sweep_id": sweep_id,
            "parent_run_id": parent_run_id,
            "driver_token": driver_token,
        }
    )


def guard_runs(
    tracking_uri: str, experiment_id: str, driver_token: str, command: str
) -> Sentinel | None:
    """Start a sentinel that ends KILLED the runs of the experiment tagged with this
    ``driver_token`` (``runner.driver``) that are open when this process (``command``, as
    the user ran it) dies: started before the runs exist, so none is ever unguarded. None if
    no process can be started."""
    return _spawn(
        {
            "tracking_uri": tracking_uri,
            "experiment_id": experiment_id,
            "guard_token": driver_token,
            "command": command,
        }
    )


def _spawn(header: dict[str, Any]) -> Sentinel | None:
    """The sentinel process, told ``header`` (and this process's pid and host) on its pipe."""
    root = str(Path(__file__).resolve().parent.parent)  # runner importable on any node
    paths = [root, os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    quiet = not (sys.stderr is not None and sys.stderr.isatty())
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner.sentinel"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if quiet else None,
            start_new_session=True,  # Ctrl+C and a killed process group do not reach it
            env=env,
        )
    except OSError:
        return None
    header = {**header, "pid": os.getpid(), "host": socket.gethostname()}
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(header).encode() + b"\n")
        proc.stdin.flush()
    except OSError:
        return None
    return Sentinel(proc)


def end_open_runs(header: dict[str, Any], died_ms: int) -> int:
    """Mark the runs of the sweep that were open when the driver died KILLED; how many."""
    from mlflow.tracking import MlflowClient

    from runner.contracts import DRIVER, ERROR, SWEEP

    client = MlflowClient(tracking_uri=header["tracking_uri"])
    sweep, parent = header["sweep_id"], header["parent_run_id"]

    def still_ours() -> bool:
        return client.get_run(parent).data.tags.get(DRIVER) == header["driver_token"]

    reason = (
        f"the driver (pid {header['pid']} on {header['host']}) ended without closing this "
        "run: killed, or ended by Ray when it lost its head node; resume with "
        f"runner.sweep_id={sweep}"
    )
    runs = client.search_runs(
        [header["experiment_id"]], f"tags.`{SWEEP}` = '{sweep}'", max_results=50000
    )
    ended = 0
    # the parent last; before each run, whether a resume has claimed the sweep meanwhile
    for run in sorted(runs, key=lambda r: r.info.run_id == parent):
        info = run.info
        if info.status not in ("RUNNING", "SCHEDULED") or info.start_time > died_ms:
            continue
        if not still_ours():
            break
        client.set_tag(info.run_id, ERROR, reason)
        client.set_terminated(info.run_id, "KILLED", end_time=died_ms)
        ended += 1
    return ended


def end_guarded_runs(header: dict[str, Any], died_ms: int) -> int:
    """Mark the guarded runs (``guard_runs``) still open KILLED; how many."""
    from mlflow.tracking import MlflowClient

    from runner.contracts import DRIVER, ERROR

    client = MlflowClient(tracking_uri=header["tracking_uri"])
    reason = (
        f"{header['command']} (pid {header['pid']} on {header['host']}) ended without "
        "closing this run: killed; run it again"
    )
    runs = client.search_runs(
        [header["experiment_id"]], f"tags.`{DRIVER}` = '{header['guard_token']}'"
    )
    ended = 0
    for run in runs:
        if run.info.status in ("RUNNING", "SCHEDULED"):
            client.set_tag(run.info.run_id, ERROR, reason)
            client.set_terminated(run.info.run_id, "KILLED", end_time=died_ms)
            ended += 1
    return ended


def main() -> int:
    """Wait for the driver's pipe to close; end its runs unless it said it had."""
    stdin = sys.stdin.buffer
    line = stdin.readline()
    rest = stdin.read()  # until the driver closes the pipe, or dies
    if not line or rest.endswith(CLOSED):
        return 0
    died_ms = int(time.time() * 1000)
    header = json.loads(line)
    if "guard_token" in header:
        with contextlib.suppress(Exception):  # the store is down too: nothing to be done
            end_guarded_runs(header, died_ms)
        return 0
    try:
        ended = end_open_runs(header, died_ms)
    except Exception as err:  # the store is down too: a resume ends them
        from runner.hydra_errors import redact_credentials

        said = f"runner: could not end the runs of sweep {header['sweep_id']}: {err}"
        print(redact_credentials(said.splitlines()[0]), file=sys.stderr)
        return 1
    if ended:
        print(
            f"runner: the driver of sweep {header['sweep_id']} died; its {ended} open run(s) "
            f"are KILLED; resume with runner.sweep_id={header['sweep_id']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
