"""Run one sweep from the command line, starting Ray while the sweep's modules load.

A local Ray takes about 3 s to start, mostly waiting for its processes; importing MLflow, Ray
Tune, scikit-learn and matplotlib and opening the MLflow store takes about as long on one
core. A thread does the second while the main thread does the first (Ray wants the main
thread: it installs its SIGTERM handler there). This module imports neither on its own.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import signals
from runner.cluster import ray_session
from runner.lease import Lease, describe
from runner.spec import new_sweep_id

if TYPE_CHECKING:
    from runner.data import Dataset
    from runner.spec import RunSpec


def _prepare(spec: RunSpec, ready: threading.Event) -> None:
    """Import the sweep's modules; open the MLflow store of a local sweep (a new SQLite file
    runs its schema migrations). Creates no run; errors resurface where they can be reported.
    On a cluster the store waits until the cluster answered: an unreachable one leaves no
    store behind. Sets ``ready``, then loads what only the ensemble stage needs."""
    try:
        with contextlib.suppress(Exception):
            import runner.sweep  # noqa: F401
            from runner.runtree import warm_store

            if spec.cluster.kind == "local":
                warm_store(spec.tracking_uri, spec.experiment)
    finally:
        ready.set()
    _warm_ensemble_stage()


def _warm_ensemble_stage() -> None:
    """Load what the ensemble stage needs (skops, pyplot, and MLflow's map of installed
    packages that logging a model checks its requirements against: about 2 s on one core)
    while Ray starts and the CPUs idle, not after the last trial. Only a warm-up: a failure
    here changes nothing."""
    with contextlib.suppress(Exception):
        import skops.io  # noqa: F401

        from ensembles import plots

        plots.warm()
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()


def _lease(spec: RunSpec) -> Lease | None:
    """The sweep's lease beside its Tune folder: a file, or an object in the bucket the
    storage names (with a Ray Client address the sweep runs on the head: not leased here)."""
    if (spec.cluster.address or "").startswith("ray://"):
        return None
    from runner.plan import experiment_name

    name = f"{experiment_name(spec)}.lease"
    if "://" in spec.storage_path:
        return Lease(f"{spec.storage_path.rstrip('/')}/{name}", spec.sweep_id, spec.lease_timeout)
    return Lease(Path(spec.storage_path) / name, spec.sweep_id, spec.lease_timeout)


def _take_lease(spec: RunSpec) -> Lease | None:
    """Acquire the sweep's lease (None where it is not leased here); raises LeaseHeld."""
    lease = _lease(spec)
    if lease is not None:
        lease.acquire()
        # taken over while this driver lives (its heartbeat failed for a whole timeout): it
        # stops as on SIGTERM, leaving the parent run to the driver that took it
        lease.on_lost = lambda holder: signals.stop_for(
            f"another driver took sweep {spec.sweep_id} over ({describe(holder)})"
        )
        if lease.took_over and spec.verbose:
            held = describe(lease.took_over)
            print(f"taking over the stale lease of sweep {spec.sweep_id} ({held})", flush=True)
    return lease


def run(
    spec: RunSpec, data: Dataset, stage_data: dict[str, Dataset], began: float | None = None
) -> dict[str, Any]:
    """Take the sweep's lease, start (or attach to) Ray and run the sweep in it; return the
    summary. Raises LeaseHeld, before Ray starts, when another live driver runs the sweep.
    ``began`` (``time.time()``, default now) is when the command began: runner.time_limit
    and the summary's wall time count from it."""
    start = time.perf_counter() - max(0.0, time.time() - began if began is not None else 0.0)
    ready = threading.Event()
    preparing = threading.Thread(
        target=_prepare, args=(spec, ready), name="runner-prepare", daemon=True
    )
    preparing.start()
    lease = _take_lease(spec) if spec.sweep_id else None  # a live driver: say so at once
    try:
        if not spec.fresh_sweep:  # an earlier attempt may have finished: then no Ray is needed
            ready.wait()
            from runner.runtree import RunTree

            RunTree.check_not_finished(spec, data.fingerprint)
            if not spec.sweep_id:  # runner.resume=true: the latest unfinished sweep's id
                found = RunTree.resumable_sweep_id(spec, data.fingerprint)
                if found is None:  # a multirun's job that never started, or new data: start
                    spec = replace(spec, sweep_id=new_sweep_id(), fresh_sweep=True, resume=False)
                    if spec.verbose:
                        print(
                            f"no sweep with this config on this data yet: starting {spec.sweep_id}"
                        )
                else:
                    spec = replace(spec, sweep_id=found, picked_by_resume=True)
                    RunTree.check_not_finished(spec, data.fingerprint)  # finished: no Ray
                lease = _take_lease(spec)
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    summary = None
    try:
        with ray_session(spec.cluster, spec.verbose, spec.storage_path, spec.model_modules):
            ready.wait()  # before the tracker opens the store: two migrations would collide
            gc.freeze()  # the imports' objects live to the end: keep them out of every collection
            from runner import sweep

            summary = sweep.run(spec, data, stage_data, start, lease)
    except KeyboardInterrupt:
        if summary is None:
            raise
        # Ctrl+C or SIGTERM while Ray shut down: the sweep had finished, and is reported so
    finally:
        if lease is not None:
            lease.release()
    return summary
