"""Run one sweep from the command line, starting Ray while the sweep's modules load.

A local Ray takes about 3 s to start, mostly waiting for its processes; importing MLflow, Ray
Tune, scikit-learn and matplotlib and opening the MLflow store takes about as long on one
core. A thread does the second while the main thread does the first (Ray wants the main
thread: it installs its SIGTERM handler there). This module imports neither on its own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from runner.cluster import ray_session

if TYPE_CHECKING:
    from runner.data import Dataset
    from runner.spec import RunSpec


def _prepare(spec: RunSpec) -> None:
    """Import the sweep's modules; open the MLflow store of a local sweep (a new SQLite file
    runs its schema migrations). Creates no run; errors resurface where they can be reported.
    On a cluster the store waits until the cluster answered: an unreachable one leaves no
    store behind."""
    with contextlib.suppress(Exception):
        import runner.sweep  # noqa: F401
        from runner.runtree import warm_store

        if spec.cluster.kind == "local":
            warm_store(spec.tracking_uri, spec.experiment)


def run(spec: RunSpec, data: Dataset, stage_data: dict[str, Dataset]) -> dict[str, Any]:
    """Start (or attach to) Ray and run the sweep in it; return the summary."""
    start = time.perf_counter()
    preparing = threading.Thread(target=_prepare, args=(spec,), name="runner-prepare", daemon=True)
    preparing.start()
    if not spec.fresh_sweep:  # an earlier attempt may have finished: then no Ray is needed
        preparing.join()
        from runner.runtree import RunTree

        RunTree.check_not_finished(spec)
    with ray_session(spec.cluster, spec.verbose, spec.storage_path):
        preparing.join()  # before the tracker opens the store: two migrations would collide
        from runner import sweep

        return sweep.run(spec, data, stage_data, start)
