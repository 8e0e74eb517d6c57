"""Training options for Keras members (optimiser, learning rate and its schedule, clipping,
class weights, callbacks, LR finder): validated without Keras, applied with it.

Importing this module does not import Keras: the driver validates configs before Ray starts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from models.base import Task, check_choice, check_int
from models.callbacks import learning_rate_log, tensorboard_callback, tensorboard_writer
from models.lr_finder import (
    LRFinderResult,
    check_lr_finder,
    find_learning_rate,
    n_rows,
    plot_lr_finder,
    take_rows,
)
from models.optimizers import OPTIMIZERS, build_optimizer, check_optimizer
from models.option_checks import check_bool, check_optional_positive, check_positive
from models.schedules import (
    MONITORS,
    SCHEDULES,
    build_learning_rate,
    check_schedule,
    monitor_mode,
    schedule_callbacks,
    schedule_monitor,
)

if TYPE_CHECKING:
    import keras

__all__ = [
    "MONITORS",
    "OPTIMIZERS",
    "SCHEDULES",
    "LRFinderResult",
    "TrainingOptions",
    "compile_model",
    "find_learning_rate",
    "fit_keras",
    "metric_name",
    "plot_lr_finder",
    "predict",
]

CLASSIFICATION_LOSS = "sparse_categorical_crossentropy"
SOFT_CLASSIFICATION_LOSS = "categorical_crossentropy"  # targets are class probabilities


def _check_class_weight(value: Any) -> str | dict[int, float] | None:
    """None, 'balanced', or a mapping class id (int >= 0) -> weight (> 0), keys sorted."""
    if value is None or (isinstance(value, str) and value == "balanced"):
        return value
    if not isinstance(value, Mapping) or not value:
        raise ValueError(
            f"class_weight must be null, 'balanced' or a mapping class -> weight, got {value!r}"
        )
    weights = {}
    for key, weight in value.items():
        cls = int(key) if isinstance(key, str) and key.isdigit() else key
        if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or cls < 0:
            raise ValueError(
                f"class_weight keys must be class ids >= 0 (a class's place from 0 in the "
                f"sorted target values, as the run's note and summary list them), got {key!r}"
            )
        weights[int(cls)] = check_positive(f"class_weight[{key!r}]", weight)
    return dict(sorted(weights.items()))


@dataclass(frozen=True)
class TrainingOptions:
    """How a Keras member is trained; every field is logged as an MLflow param.

    ``optimizer`` and ``schedule`` take a name or ``{name: ..., **options}`` (see
    ``models.optimizers`` and ``models.schedules``); after validation they hold a canonical
    form: a plain name when there are no options, else a dict (schedules with defaults filled).
    """

    epochs: int = 20
    batch_size: int = 32
    optimizer: str | dict[str, Any] = "adam"
    learning_rate: float = 1e-3  # the base rate every schedule starts from
    schedule: str | dict[str, Any] = "constant"
    clipnorm: float | None = None  # clip each gradient's norm to this
    clipvalue: float | None = None  # clip each gradient component to [-clipvalue, clipvalue]
    class_weight: str | dict[int, float] | None = None  # None, 'balanced' or class -> weight
    early_stopping: int = 0  # patience in epochs; 0 turns it off; best weights restored at the end
    early_stopping_monitor: str = "val_loss"
    terminate_on_nan: bool = True
    tensorboard: bool = False  # write TensorBoard logs into fit_keras' log_dir
    lr_finder: bool | dict[str, Any] = False  # True or {min_lr, max_lr, steps}
    # batches per call into the compiled train step: "epoch" runs a whole epoch per call (the
    # same updates; per-batch Python overhead dominates small nets), or an integer >= 1
    steps_per_execution: int | str = "epoch"
    # epochs the learning-rate schedule spans (null: ``epochs``); a refit on all rows trains
    # for as long as its folds did, on the schedule they followed
    schedule_epochs: int | None = None

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not 0 < lr < 10:
            raise ValueError(f"learning_rate must be a number in (0, 10), got {lr!r}")
        canonical = {
            "optimizer": check_optimizer(self.optimizer),
            "schedule": check_schedule(self.schedule, float(self.learning_rate)),
            "clipnorm": check_optional_positive("clipnorm", self.clipnorm),
            "clipvalue": check_optional_positive("clipvalue", self.clipvalue),
            "class_weight": _check_class_weight(self.class_weight),
            "lr_finder": check_lr_finder(self.lr_finder),
        }
        if canonical["clipnorm"] is not None and canonical["clipvalue"] is not None:
            raise ValueError(
                f"set clipnorm or clipvalue, not both (Keras clips one way), got "
                f"clipnorm={self.clipnorm!r} and clipvalue={self.clipvalue!r}"
            )
        check_int("early_stopping", self.early_stopping, minimum=0)
        if self.schedule_epochs is not None:
            check_int("schedule_epochs", self.schedule_epochs)
        if self.steps_per_execution != "epoch":
            try:
                check_int("steps_per_execution", self.steps_per_execution)
            except ValueError:
                raise ValueError(
                    "steps_per_execution must be 'epoch' or an integer >= 1, got "
                    f"{self.steps_per_execution!r}"
                ) from None
        check_choice("early_stopping_monitor", self.early_stopping_monitor, MONITORS)
        check_bool("terminate_on_nan", self.terminate_on_nan)
        if check_bool("tensorboard", self.tensorboard) and tensorboard_writer() is None:
            raise ValueError(
                "tensorboard is true but neither the tensorboard nor the tensorboardX package "
                "is installed; install one or set tensorboard: false"
            )
        for name, value in canonical.items():
            object.__setattr__(self, name, value)  # frozen: store the validated form

    def as_params(self) -> dict[str, Any]:
        """Flat dict of plain values for tracking: options of a field become dotted keys
        (``optimizer: sgd``, ``optimizer.momentum: 0.9``); ``from_params`` inverts it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, dict):
                out[f.name] = value
                continue
            if "name" in value:
                out[f.name] = value["name"]
            elif f.name == "lr_finder":
                out[f.name] = True
            for key, item in value.items():
                if key != "name":
                    out[f"{f.name}.{key}"] = list(item) if isinstance(item, tuple) else item
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainingOptions:
        """Rebuild options from ``as_params()`` output (or from the nested config form)."""
        values: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            head, _, tail = str(key).partition(".")
            if tail:
                nested.setdefault(head, {})[tail] = value
            else:
                values[head] = value
        for head, options in nested.items():
            name = values.get(head)
            values[head] = {"name": name, **options} if isinstance(name, str) else options
        return cls(**values)


def metric_name(task: Task) -> str:
    """The headline metric: accuracy for classification, RMSE for regression."""
    return "accuracy" if task.is_classification else "rmse"


def steps_per_epoch(n_train_rows: int, batch_size: int) -> int:
    """Optimiser steps in one epoch: Keras keeps the last, partial batch."""
    return math.ceil(check_int("n_train_rows", n_train_rows) / batch_size)


def _output_count(model: keras.Model) -> int:
    try:
        return len(model.outputs)
    except (AttributeError, TypeError, ValueError):  # subclassed or not yet built
        return 1


def compile_model(
    model: keras.Model,
    task: Task,
    options: TrainingOptions,
    n_train_rows: int | None = None,
    loss_weights: Sequence[float] | Mapping[str, float] | None = None,
    soft: bool = False,
    initial_epoch: int = 0,
) -> keras.Model:
    """Compile with the configured optimiser (schedule, clipping), the task's loss and metric;
    every output of a multi-output model gets the same loss and metric, ``loss_weights`` apart.

    ``n_train_rows`` gives step-based schedules their steps per epoch (``ceil(rows/batch)``),
    and with ``steps_per_execution="epoch"`` the batches run per call (one without it).
    With ``soft`` a classifier's targets are class probabilities (a distilled student's).
    A fit that continues an earlier one at ``initial_epoch`` (a recompile in between) gets
    the schedule's rates from that epoch on.
    """
    import keras

    spe = None if n_train_rows is None else steps_per_epoch(n_train_rows, options.batch_size)
    learning_rate = build_learning_rate(
        options.schedule,
        options.learning_rate,
        epochs=options.schedule_epochs or options.epochs,
        steps_per_epoch=spe,
        initial_epoch=initial_epoch,
    )
    optimizer = build_optimizer(
        options.optimizer, learning_rate, clipnorm=options.clipnorm, clipvalue=options.clipvalue
    )

    def metric() -> Any:
        return "accuracy" if task.is_classification else keras.metrics.RootMeanSquaredError("rmse")

    loss = "mse"
    if task.is_classification:
        loss = SOFT_CLASSIFICATION_LOSS if soft else CLASSIFICATION_LOSS
    per_call = options.steps_per_execution
    if per_call == "epoch":
        per_call = spe or 1
    n_outputs = _output_count(model)
    if n_outputs > 1:
        model.compile(
            optimizer=optimizer,
            loss=[loss] * n_outputs,
            metrics=[[metric()] for _ in range(n_outputs)],
            loss_weights=loss_weights,
            steps_per_execution=per_call,
        )
    else:
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=[metric()],
            loss_weights=loss_weights,
            steps_per_execution=per_call,
        )
    return model


def _is_classifier(model: keras.Model) -> bool:
    """Whether ``compile_model`` compiled it for classification (fit cannot see the task)."""
    loss = model.loss
    losses = loss.values() if isinstance(loss, Mapping) else loss
    losses = [losses] if isinstance(losses, str) or not isinstance(losses, Sequence) else losses
    return any(item in (CLASSIFICATION_LOSS, SOFT_CLASSIFICATION_LOSS) for item in losses)


def check_for_task(options: TrainingOptions, task: Task) -> None:
    """The options that depend on the task, checked before anything trains: the metrics
    watched (early stopping, a plateau schedule) are logged for it, and class weights are
    for classification and name its classes."""
    classifier = task.is_classification
    if options.early_stopping:
        _check_monitor("early_stopping_monitor", options.early_stopping_monitor, classifier)
    monitor = schedule_monitor(options.schedule)
    if monitor is not None:
        _check_monitor("schedule.monitor", monitor, classifier)
    if options.class_weight is None:
        return
    if not classifier:
        raise ValueError(
            f"class_weight is for classification only, got {options.class_weight!r} "
            "for a regression task"
        )
    if isinstance(options.class_weight, Mapping):
        unknown = sorted(k for k in options.class_weight if k >= (task.n_classes or 0))
        if unknown:
            raise ValueError(
                f"class_weight names class id(s) {unknown}, but the task has {task.n_classes} "
                f"classes (ids 0..{(task.n_classes or 1) - 1})"
            )


def _check_monitor(field: str, monitor: str, classifier: bool) -> None:
    wrong = "rmse" if classifier else "accuracy"
    if wrong in monitor:
        task = "classification" if classifier else "regression"
        raise ValueError(
            f"{field} {monitor!r} is not logged for {task}; use loss, val_loss or "
            f"{'val_accuracy' if classifier else 'val_rmse'}"
        )


def class_weights(y: Any, class_weight: str | Mapping[int, float] | None) -> dict[int, float]:
    """Weights per class: 'balanced' is ``n / (n_classes * count)`` over the classes in ``y``
    (scikit-learn's compute_class_weight); a mapping is completed with 1.0 for other classes."""
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(y).reshape(-1)
    classes = np.unique(y)
    if class_weight == "balanced":
        weights = compute_class_weight("balanced", classes=classes, y=y)
        return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}
    given = dict(class_weight or {})
    return {int(c): float(given.get(int(c), 1.0)) for c in sorted({*classes.tolist(), *given})}


def _main_target(model: keras.Model, y: Any) -> Any:
    if isinstance(y, Mapping):
        return y.get(model.output_names[0], next(iter(y.values())))
    return y[0] if isinstance(y, (list, tuple)) else y


def _monitor_key(model: keras.Model, monitor: str) -> str:
    """The logged name of ``monitor``: Keras names a multi-output model's metrics per output,
    so ``val_accuracy`` means the main (first) output's."""
    if "loss" in monitor or _output_count(model) == 1:
        return monitor
    prefix = "val_" if monitor.startswith("val_") else ""
    return f"{prefix}{model.output_names[0]}_{monitor.removeprefix('val_')}"


def kept_epoch(
    values: Sequence[float], mode: str, *, min_delta: float = 0.0, start_from_epoch: int = 0
) -> int | None:
    """The 0-based epoch whose weights Keras' ``EarlyStopping(restore_best_weights=True)``
    leaves in the model after a fit whose monitored values were ``values`` (it restores them
    at the end of every fit, stopped early or not), or None if it watched no epoch.

    Its rule: from ``start_from_epoch`` on, the first watched epoch, then each one that beats
    the kept value by more than ``min_delta`` in ``mode``'s direction (NaN never does). Its
    ``baseline`` only delays stopping and never changes which epoch is kept.
    """
    sign = -1.0 if check_choice("mode", mode, ("min", "max")) == "min" else 1.0
    delta = abs(min_delta)
    best: int | None = None
    for epoch in range(start_from_epoch, len(values)):
        # Keras compares in float32 (ops.greater/ops.less on Python floats).
        current = np.float32(sign * values[epoch] - delta)
        if best is None or current > np.float32(sign * values[best]):
            best = epoch
    return best


def fit_keras(
    model: keras.Model,
    train: tuple[Any, Any],
    val: tuple[Any, Any],
    options: TrainingOptions,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    log_dir: str | None = None,
    initial_epoch: int = 0,
) -> dict[str, list[float]]:
    """Fit on ``train`` watching ``val``; returns the Keras history (metric -> per-epoch list,
    including ``lr``). Adds the callbacks the options ask for before ``callbacks``, so those
    see ``lr`` in the logs. Targets of a multi-output model may be a list, tuple or dict.
    ``initial_epoch`` continues an earlier fit's epoch count (epoch-based schedules and
    TensorBoard steps go on from it) up to ``options.epochs``."""
    import keras

    classifier = _is_classifier(model)
    if options.early_stopping:
        _check_monitor("early_stopping_monitor", options.early_stopping_monitor, classifier)
    monitor = schedule_monitor(options.schedule)
    if monitor is not None:
        _check_monitor("schedule.monitor", monitor, classifier)
        monitor = _monitor_key(model, monitor)
    # The LR log comes first: it must read the rate before ReduceLROnPlateau changes it.
    added = [
        learning_rate_log(),
        *schedule_callbacks(options.schedule, options.learning_rate, monitor=monitor),
    ]
    if options.early_stopping:
        added.append(
            keras.callbacks.EarlyStopping(
                monitor=_monitor_key(model, options.early_stopping_monitor),
                mode=monitor_mode(options.early_stopping_monitor),
                patience=options.early_stopping,
                restore_best_weights=True,
            )
        )
    if options.terminate_on_nan:
        added.append(keras.callbacks.TerminateOnNaN())
    if options.tensorboard:
        if log_dir is None:
            warnings.warn(
                "tensorboard is on but fit_keras got no log_dir: not logging", stacklevel=2
            )
        else:
            added.append(tensorboard_callback(log_dir))
    x, y = train
    weighting: dict[str, Any] = {}
    if options.class_weight is not None:
        if not classifier:
            raise ValueError(
                f"class_weight is for classification only, got {options.class_weight!r} "
                "for a regression model"
            )
        main = np.asarray(_main_target(model, y))
        main = main.argmax(axis=1) if main.ndim == 2 else main.reshape(-1)  # soft targets
        weights = class_weights(main, options.class_weight)
        if _output_count(model) > 1:  # Keras takes class_weight for single outputs only
            weighting["sample_weight"] = np.array([weights[int(c)] for c in main])
        else:
            weighting["class_weight"] = weights
    history = model.fit(
        x,
        y,
        validation_data=val,
        initial_epoch=initial_epoch,
        epochs=options.epochs,
        batch_size=options.batch_size,
        callbacks=[*added, *callbacks],
        verbose=0,
        **weighting,
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


PREDICT_ROWS = 1024  # rows per forward pass when predicting


def _main_output(model: keras.Model, out: Any) -> np.ndarray:
    if isinstance(out, Mapping):
        out = out.get(model.output_names[0], next(iter(out.values())))
    elif isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out, dtype=np.float64)


def predict(model: keras.Model, x: Any, task: Task) -> np.ndarray:
    """Predictions in the members' contract: (n, classes) probabilities, or (n,) values;
    a multi-output model's main (first) output only. Rows go through ``predict_on_batch``
    in chunks: ``predict`` builds a data pipeline per call, which costs tens of
    milliseconds however few the rows (a served model's latency); a model with a
    ``predict`` of its own (MC dropout) keeps it."""
    import keras

    if type(model).predict is not keras.Model.predict:
        out = _main_output(model, model.predict(x, verbose=0, batch_size=PREDICT_ROWS))
    else:
        n = n_rows(x)
        parts = [
            _main_output(model, model.predict_on_batch(take_rows(x, slice(i, i + PREDICT_ROWS))))
            for i in range(0, max(n, 1), PREDICT_ROWS)
        ]
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return out if task.is_classification else out.reshape(len(out))


def output_count(model: Any) -> int:
    """How many outputs a model has (subclassed models such as MC dropout have one)."""
    outputs = getattr(model, "outputs", None)
    return len(outputs) if outputs else 1
