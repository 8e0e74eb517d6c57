"""What a Keras member needs from its process: TensorFlow threads and GPU memory set before
the first op, the imports' objects frozen out of the garbage collector once, and an epoch
reporter. Imports TensorFlow and Keras only when called."""

from __future__ import annotations

import gc
import os
import subprocess
from typing import Any

import numpy as np

from models.kind import EpochHook


def gpu_memory_limit_mb(total_mb: float | None, fraction: float) -> int | None:
    """TensorFlow's memory limit for a trial granted ``fraction`` of one GPU: 90% of its
    share (headroom for the CUDA context); None for whole GPUs or unknown totals."""
    if not total_mb or not 0 < fraction < 1:
        return None
    return int(total_mb * fraction * 0.9)


def total_gpu_memory_mb() -> float | None:
    """Memory of the first GPU visible to this process, from nvidia-smi; None if unknown."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=memory.total",
                "--format=csv,noheader,nounits",
                "-i",
                visible,
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return float(out.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def configure_tensorflow(cpus: float, gpus: float) -> dict[str, object]:
    """Match TF's thread pools to the granted CPUs; let GPU memory grow on demand, or cap it
    at the granted fraction so several trials share one device. Returns what was set.

    Must run in the worker before TensorFlow's first op; in a reused actor TF is already
    initialised with the same grant, and the calls are skipped.
    """
    import tensorflow as tf

    threads = max(1, int(cpus))
    devices = tf.config.list_physical_devices("GPU")
    limit = gpu_memory_limit_mb(total_gpu_memory_mb(), gpus) if devices else None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in devices:
            if limit:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)]
                )
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # runtime already initialised in this (reused) worker
        pass
    return {"threads": threads, "gpus_visible": len(devices), "gpu_memory_limit_mb": limit}


_imports_frozen = False


def freeze_imported_objects() -> None:
    """Once per process, after TensorFlow and Keras are imported: move every object alive
    now out of the garbage collector's sight (``gc.freeze``). Each member's clear_session()
    runs a full collection, which scanned the imports' millions of objects for about 0.25 s
    per trial; what members leave behind is still collected."""
    global _imports_frozen
    if not _imports_frozen:
        gc.freeze()
        _imports_frozen = True


def epoch_reporter(on_epoch: EpochHook) -> Any:
    """A Keras callback calling ``on_epoch`` with each epoch's scalar logs, the learning rate
    and the training phase (and ``last_epoch``: True on an epoch after which a callback
    before it, early stopping, ends training); epochs are counted across phases (1-based)."""
    import keras

    class ReportEpoch(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.phase: int | None = None

        def set_phase(self, phase: int) -> None:
            self.phase = phase

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch += 1
            metrics = {
                k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0 and k != "phase"
            }
            # Keras' schedule callbacks log the rate as learning_rate: one name, lr, on record
            keras_rate = metrics.pop("learning_rate", None)
            if "lr" not in metrics:
                lr = getattr(self.model.optimizer, "learning_rate", None)
                if keras_rate is not None:
                    metrics["lr"] = keras_rate
                elif lr is not None:
                    metrics["lr"] = float(keras.ops.convert_to_numpy(lr))
            if self.phase is not None:
                metrics["phase"] = float(self.phase)
            if getattr(self.model, "stop_training", False):  # early stopping ends it here
                metrics["last_epoch"] = True
            if on_epoch(self.epoch, metrics):
                self.model.stop_training = True

    return ReportEpoch()
