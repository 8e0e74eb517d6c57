"""Ray start/attach and shutdown on the driver; TensorFlow threads and GPU memory in workers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from runner.spec import ClusterSpec

# Keep TensorFlow's C++ start-up chatter out of the user's terminal; errors still show.
WORKER_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
}


@contextmanager
def ray_session(spec: ClusterSpec, verbose: int = 1) -> Iterator[None]:
    """Start a local Ray instance for the sweep and always shut it down."""
    import ray

    ray.init(
        address="local",
        num_cpus=spec.num_cpus,
        num_gpus=spec.num_gpus,
        include_dashboard=spec.include_dashboard,
        dashboard_host=spec.dashboard_host,
        log_to_driver=verbose >= 2,
        logging_level=logging.INFO if verbose >= 2 else logging.WARNING,
        runtime_env={"env_vars": WORKER_ENV},
    )
    try:
        yield
    finally:
        ray.shutdown()


def configure_tensorflow(cpus: float, gpus: float) -> None:
    """Match TF's thread pools to the granted CPUs and let GPU memory grow on demand.

    Must run in the worker before TensorFlow's first op; in a reused actor TF is already
    initialised with the same grant, and the calls are skipped.
    """
    import tensorflow as tf

    threads = max(1, int(cpus))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # runtime already initialised in this (reused) worker
        pass
