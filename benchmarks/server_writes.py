"""A sweep of many sub-second trials tracked by an MLflow tracking server: member runs
written in Tune's loop against written by the writer thread (``tracking.background_writes``).

    python benchmarks/server_writes.py [--trials 500] [--repeats 2] [--json out.json]

Starts ``mlflow server`` on 127.0.0.1 (a SQLite backend and proxied artifacts in a
temporary folder, one worker), then runs ``benchmarks/scale.py``'s one searched logistic
regression as ``--trials`` random trials through it, alternating ``background_writes=false``
and ``true`` ``--repeats`` times; each run cold, in its own directory. The server shares the
machine's cores with the sweep (a team's server runs elsewhere, where its round trips are
only waited for), so this understates what the thread hides. Reports each run's wall time,
trials phase and its time per trial, and the mean ratio thread / in-loop.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import mean
from typing import Any

from machine import describe
from scale import run_way


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on a free local port; the process and its URI once it answers."""
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder}/server.db",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"mlflow server did not answer on {uri} in {timeout}s")


def main() -> None:
    """Alternate the two settings against one server; print the rows and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.trials < 2 or args.repeats < 1:
        raise SystemExit(f"--trials >= 2 and --repeats >= 1, got {args.trials}, {args.repeats}")
    result: dict[str, Any] = {"machine": describe(), "trials": args.trials, "runs": []}
    print(f"machine: {result['machine']}")
    print(f"{'background':<12}{'wall s':>9}{'trials s':>10}{'ms/trial':>10}{'after':>8}")
    with tempfile.TemporaryDirectory(prefix="server-writes-") as scratch:
        root = Path(scratch)
        proc, uri = start_server(root)
        try:
            for repeat in range(args.repeats):
                for background in ("false", "true"):
                    work = root / f"{background}-{repeat}"
                    work.mkdir()
                    overrides = (
                        "tracking=server",
                        f"tracking.uri={uri}",
                        f"tracking.background_writes={background}",
                    )
                    row = run_way("runner", args.trials, work, overrides)
                    row["background_writes"] = background == "true"
                    result["runs"].append(row)
                    print(
                        f"{background:<12}{row['wall_seconds']:>9.1f}"
                        f"{row['trials_phase_s']:>10.1f}{row['trials_phase_per_trial_ms']:>10.1f}"
                        f"{row['after_last_trial_s']:>8.1f}",
                        flush=True,
                    )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    rows = result["runs"]
    for key in ("wall_seconds", "trials_phase_s"):
        on = mean(r[key] for r in rows if r["background_writes"])
        off = mean(r[key] for r in rows if not r["background_writes"])
        result[f"{key}_thread/in_loop"] = round(on / off, 3)
    print(
        f"thread / in loop: wall {result['wall_seconds_thread/in_loop']}, "
        f"trials phase {result['trials_phase_s_thread/in_loop']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
