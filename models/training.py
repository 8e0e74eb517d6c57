"""Training options for Keras members (optimiser, learning rate, epochs, early stopping):
validated without Keras, applied with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.base import Task, check_choice, check_float, check_int

if TYPE_CHECKING:
    import keras

OPTIMIZERS = ("adam", "sgd", "rmsprop", "nadam", "adamw", "adagrad", "adamax")


@dataclass(frozen=True)
class TrainingOptions:
    """How a Keras member is trained; every field is logged as an MLflow param."""

    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    early_stopping: int = 0  # patience in epochs; 0 turns it off; best weights are restored

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if check_float("learning_rate", self.learning_rate, 0.0, 10.0) <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        check_int("early_stopping", self.early_stopping, minimum=0)

    def as_params(self) -> dict[str, Any]:
        """Flat dict for tracking."""
        return asdict(self)


def metric_name(task: Task) -> str:
    """The headline metric: accuracy for classification, RMSE for regression."""
    return "accuracy" if task.is_classification else "rmse"


def compile_model(model: keras.Model, task: Task, options: TrainingOptions) -> keras.Model:
    """Compile with the configured optimiser, the task's loss and its headline metric."""
    import keras

    optimizer = keras.optimizers.get(
        {"class_name": options.optimizer, "config": {"learning_rate": options.learning_rate}}
    )
    if task.is_classification:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        loss, metrics = "mse", [keras.metrics.RootMeanSquaredError(name="rmse")]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def fit_keras(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    options: TrainingOptions,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """Fit on ``train`` watching ``val``; returns the Keras history (metric -> per-epoch list)."""
    import keras

    callbacks = list(callbacks)
    if options.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                patience=options.early_stopping, restore_best_weights=True
            )
        )
    history = model.fit(
        *train,
        validation_data=val,
        epochs=options.epochs,
        batch_size=options.batch_size,
        callbacks=callbacks,
        verbose=0,
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def predict(model: keras.Model, x: np.ndarray, task: Task) -> np.ndarray:
    """Predictions in the members' contract: (n, classes) probabilities, or (n,) values."""
    out = np.asarray(model.predict(x, verbose=0, batch_size=1024), dtype=np.float64)
    return out if task.is_classification else out.reshape(len(x))
