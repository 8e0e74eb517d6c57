"""The Keras callbacks the training options add that Keras does not ship as such: the
per-epoch learning-rate log, and TensorBoard logging that works without the tensorboard package.

Keras is imported inside functions, so importing this module stays Keras-free.
"""

from __future__ import annotations

import uuid
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def tensorboard_writer() -> str | None:
    """Which package can write TensorBoard logs: 'tensorboard' (Keras' own callback),
    'tensorboardX' (which ray[tune] brings), or None."""
    for package in ("tensorboard", "tensorboardX"):
        if find_spec(package) is not None:
            return package
    return None


def learning_rate_log() -> keras.callbacks.Callback:
    """A callback that adds ``lr`` to each epoch's logs: the rate of the epoch's first step."""
    import keras

    class LearningRateLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.rate: float | None = None

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self.rate is None:  # after every on_epoch_begin, so it sees scheduler changes
                lr = self.model.optimizer.learning_rate
                self.rate = float(keras.ops.convert_to_numpy(lr))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None and self.rate is not None:
                logs["lr"] = self.rate

    return LearningRateLog()


def tensorboard_callback(log_dir: str | Path) -> keras.callbacks.Callback:
    """Keras' TensorBoard callback when the tensorboard package is installed; otherwise one that
    writes the same per-epoch scalars (``train/`` and ``validation/``, ``epoch_<metric>`` tags)
    with tensorboardX, so TensorBoard shows them alike."""
    import keras

    writer = tensorboard_writer()
    if writer == "tensorboard":
        return keras.callbacks.TensorBoard(log_dir=str(log_dir))
    if writer is None:
        raise ValueError("tensorboard needs the tensorboard or tensorboardX package, found neither")
    from tensorboardX import SummaryWriter

    class EpochScalars(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            # tensorboardX names a file by the second it was opened: a second fit in the same
            # folder within that second (transfer's fine-tuning phase) would overwrite it
            suffix = f".{uuid.uuid4().hex[:8]}"
            self.writers = {
                part: SummaryWriter(logdir=str(Path(log_dir) / part), filename_suffix=suffix)
                for part in ("train", "validation")
            }

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for key, value in (logs or {}).items():
                part, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                self.writers[part].add_scalar(f"epoch_{name}", float(value), epoch)

        def on_train_end(self, logs: dict | None = None) -> None:
            for w in self.writers.values():
                w.close()

    return EpochScalars()
