"""Registry entries for Keras models: one ``KerasKind`` per builder module.

Validation is Keras-free; building, fitting, saving and loading import Keras when called.
"""

from __future__ import annotations

import importlib
import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.base import InputSpec, Task
from models.kind import EpochHook, Hparam, ModelKind, Trained, check_hparams

MODEL_FILE = "model.keras"


@dataclass(frozen=True, eq=False)
class KerasKind(ModelKind):
    """A Keras builder behind the model-kind contract.

    ``build_fn(spec, task, hp)`` gets validated hyperparameters and returns an uncompiled
    ``keras.Model``. Optional hooks: ``validate`` (cross-field checks of the validated
    hyperparameters), ``input_check`` (against the data's features), ``loss_weights_fn``
    (a multi-output model's loss weights), ``procedure`` (a training procedure of its own,
    e.g. transfer's two phases, with ``fit_keras``' signature plus ``hp``, ``on_phase`` and
    ``n_train_rows``), ``references`` (stage references among the hyperparameters) and
    ``example`` (hyperparameters for a smoke build). ``custom_objects`` names the module
    registering the kind's Keras classes; ``load`` imports it before reading a file.
    """

    name: str
    schema: Mapping[str, Hparam]
    build_fn: Callable[[InputSpec, Task, dict[str, Any]], Any]
    needs_image: bool = False
    validate: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    input_check: Callable[[dict[str, Any], InputSpec], None] | None = None
    loss_weights_fn: Callable[[dict[str, Any]], list[float] | None] | None = None
    procedure: Callable[..., dict[str, list[float]]] | None = None
    references: Callable[[dict[str, Any]], dict[str, str]] | None = None
    reference_check: Callable[[str, str, ModelKind], None] | None = None
    example: Callable[[Path, InputSpec, Task], dict[str, Any]] | None = None
    custom_objects: str | None = None
    files: tuple[str, ...] = ()  # hyperparameters that may name a local file
    reads_missing: bool = False
    framework: str = "keras"
    scales_target: bool = True
    learns_in_epochs: bool = True

    def defaults(self, task: Task) -> dict[str, Any]:
        """The schema's defaults (None where a value is required, e.g. transfer's base)."""
        return {name: param.default for name, param in self.schema.items()}

    def check(self, hparams: Mapping[str, Any], task: Task) -> dict[str, Any]:
        """Validated hyperparameters, or ValueError naming the value received."""
        hp = check_hparams(self.name, self.schema, hparams)
        return self.validate(hp) if self.validate is not None else hp

    def check_input(self, hparams: Mapping[str, Any], spec: InputSpec) -> None:
        """Image kinds need images; some kinds check column names or files too."""
        super().check_input(hparams, spec)
        if self.input_check is not None:
            self.input_check(self.check(hparams, Task("regression")), spec)

    def stage_references(self, hparams: Mapping[str, Any]) -> dict[str, str]:
        """Hyperparameters that name a member of an earlier stage."""
        return {} if self.references is None else self.references(dict(hparams))

    def file_hparams(self) -> tuple[str, ...]:
        """Hyperparameters that may name a local file (``files``)."""
        return self.files

    def check_reference(self, key: str, ref: str, kind: ModelKind) -> None:
        """Whether the referenced member can serve (a transfer base must be a Keras model)."""
        if self.reference_check is not None:
            self.reference_check(key, ref, kind)

    def example_hparams(self, folder: Path, spec: InputSpec, task: Task) -> dict[str, Any]:
        """The defaults, or what the kind needs to build in a scratch folder."""
        return {} if self.example is None else self.example(Path(folder), spec, task)

    def loss_weights(self, hparams: Mapping[str, Any]) -> list[float] | None:
        """Per-output loss weights for compile(), or None for single-output models."""
        if self.loss_weights_fn is None:
            return None
        return self.loss_weights_fn(self.check(hparams, Task("regression")))

    def setup(self, *, seed: int, cpus: float = 1.0, gpus: float = 0.0) -> dict[str, Any]:
        """TensorFlow threads and GPU memory for the grant, a clean session, seeded."""
        import keras

        from models.keras_runtime import configure_tensorflow, freeze_imported_objects

        device = configure_tensorflow(cpus, gpus)
        freeze_imported_objects()
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        return device

    def build(self, spec: InputSpec, task: Task, **hparams: Any) -> Any:
        """An uncompiled ``keras.Model``."""
        if self.needs_image and spec.image_shape is None:
            raise ValueError(f"model {self.name!r} needs image data, got flat features")
        return self.build_fn(spec, task, self.check(hparams, task))

    def learns_soft_targets(self) -> bool:
        """Nets compiled here learn class probabilities (a cross-entropy on soft targets);
        a kind with a training procedure of its own compiles for labels."""
        return self.procedure is None

    def compile(
        self,
        model: Any,
        task: Task,
        options: Any,
        hparams: Mapping[str, Any],
        n_train_rows: int | None = None,
        soft: bool = False,
    ) -> Any:
        """Compile with the options' optimiser and schedule and the task's loss (on class
        probabilities as targets with ``soft``)."""
        from models.training import compile_model

        return compile_model(
            model,
            task,
            options,
            n_train_rows=n_train_rows,
            loss_weights=self.loss_weights(hparams),
            soft=soft,
        )

    def fit(
        self,
        model: Any,
        task: Task,
        train: tuple[Any, Any],
        val: tuple[Any, Any],
        options: Any,
        hparams: Mapping[str, Any],
        *,
        seed: int = 0,
        on_epoch: EpochHook | None = None,
        workdir: Path | None = None,
    ) -> dict[str, list[float]]:
        """Compile and fit (or run the kind's own procedure); a loss that went NaN fails."""
        from models.keras_runtime import epoch_reporter
        from models.training import fit_keras, output_count

        outputs = output_count(model)
        (X, y), (X_val, y_val) = train, val
        soft = task.is_classification and np.ndim(y) == 2  # a distilled student's targets
        if soft and np.ndim(y_val) == 1:  # watched against the true classes
            y_val = np.eye(task.n_classes, dtype=np.float32)[np.asarray(y_val, dtype=np.int64)]
        train = (X, y if outputs == 1 else (y,) * outputs)
        val = (X_val, y_val if outputs == 1 else (y_val,) * outputs)
        reporter = epoch_reporter(on_epoch) if on_epoch is not None else None
        callbacks = [reporter] if reporter is not None else []
        log_dir = str(Path(workdir) / "tensorboard") if options.tensorboard and workdir else None
        if self.procedure is not None:
            history = self.procedure(
                model,
                task,
                train,
                val,
                options,
                self.check(hparams, task),
                callbacks=callbacks,
                on_phase=reporter.set_phase if reporter is not None else None,
                n_train_rows=len(y),
                log_dir=log_dir,
            )
        else:
            self.compile(model, task, options, hparams, n_train_rows=len(y), soft=soft)
            history = fit_keras(model, train, val, options, callbacks, log_dir=log_dir)
        losses = history.get("loss", [])
        bad = next((i for i, v in enumerate(losses) if not np.isfinite(v)), None)
        if bad is not None:  # TerminateOnNaN stops fit quietly; the member must fail, with why
            went_on = (
                "training stopped"
                if options.terminate_on_nan
                else f"it trained on to epoch {len(losses)}, as training.terminate_on_nan is false"
            )
            raise FloatingPointError(
                f"loss became {losses[bad]} in epoch {bad + 1}; {went_on} (try a lower "
                "learning rate, gradient clipping or batch norm)"
            )
        return history

    def before_fit(
        self,
        spec: InputSpec,
        task: Task,
        hparams: Mapping[str, Any],
        train: tuple[Any, Any],
        options: Any,
        workdir: Path | None,
    ) -> dict[str, Any]:
        """The learning-rate finder, when the options ask, on the encoded training rows."""
        suggestion = None
        if options.lr_finder and workdir is not None:
            suggestion = self._find_learning_rate(spec, task, hparams, train, options, workdir)
        return {"lr_finder_suggestion": suggestion}

    def train(self, *args: Any, **kwargs: Any) -> Trained:
        """The base procedure; the record says which epoch's weights the model ended with
        (``best_epoch``) and whether early stopping restored them from before the last."""
        args = list(args)
        if len(args) > 5:
            args[5] = options = _training_options(args[5])
        else:
            kwargs["options"] = options = _training_options(kwargs.get("options"))
        trained = super().train(*args, **kwargs)
        trained.info.update(kept_weights(trained.model, trained.history, options))
        return trained

    def refit_params(
        self,
        hparams: Mapping[str, Any],
        training: Mapping[str, Any],
        fits: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """With early stopping, as many epochs as the folds' best epochs on average (the
        weights they kept), and no early stopping: there are no held-out rows to watch. The
        learning-rate schedule keeps the folds' span, so each epoch gets the folds' rate (but
        a plateau schedule's, which follows the watched loss: the refit's training rows)."""
        if not training.get("early_stopping"):
            return dict(hparams), dict(training)
        kept = [int(f.get("best_epoch") or f["epochs_run"]) for f in fits]
        epochs = max(1, round(float(np.mean(kept)))) if kept else int(training["epochs"])
        span = training.get("schedule_epochs") or int(training["epochs"])
        return dict(hparams), {
            **training,
            "epochs": epochs,
            "early_stopping": 0,
            "schedule_epochs": int(span),
        }

    def _find_learning_rate(
        self,
        spec: InputSpec,
        task: Task,
        hparams: Mapping[str, Any],
        train: tuple[Any, Any],
        options: Any,
        workdir: Path,
    ) -> float:
        """Sweep the learning rate on fresh copies of the model; save the plot and result."""
        from models.training import find_learning_rate, plot_lr_finder

        def fresh() -> Any:
            model = self.build(spec, task, **hparams)
            return self.compile(model, task, options, hparams, n_train_rows=len(train[1]))

        settings = options.lr_finder if isinstance(options.lr_finder, dict) else {}
        result = find_learning_rate(fresh, train, batch_size=options.batch_size, **settings)
        plot_lr_finder(result, Path(workdir) / "lr_finder.png")
        # the loss still falling at the last rate tried: no minimum found, the suggestion is
        # a tenth of the top of the range, not of a rate where the loss turned
        last = len(result.losses) - 1
        still_falling = not result.diverged and int(np.argmin(result.losses)) == last
        (Path(workdir) / "lr_finder.json").write_text(
            json.dumps(
                {
                    "lrs": list(map(float, result.lrs)),
                    "losses": list(map(float, result.losses)),
                    "suggestion": float(result.suggestion),
                    "diverged": bool(result.diverged),
                    "still_falling": still_falling,
                }
            )
        )
        if still_falling:
            warnings.warn(
                f"lr_finder: the loss still fell at the last rate tried ({result.lrs[-1]:.3g}),"
                f" so its suggestion ({result.suggestion:.3g}) marks no turn; raise "
                "training.lr_finder's max_lr (or steps)",
                stacklevel=2,
            )
        return float(result.suggestion)

    def predict(self, model: Any, X: np.ndarray, task: Task) -> np.ndarray:
        """The main output's predictions in the members' format."""
        from models.training import predict

        return predict(model, X, task)

    def save(self, model: Any, folder: Path) -> Path:
        """The whole model as a ``.keras`` archive."""
        path = Path(folder) / MODEL_FILE
        model.save(path)
        return path

    def load(self, path: Path) -> Any:
        """A ``.keras`` archive, with this kind's custom classes registered first."""
        return load_keras(path, self.custom_objects)

    def describe(self, model: Any) -> dict[str, Any]:
        """The parameter count."""
        return {"n_params": int(model.count_params())}


def kept_weights(
    model: Any, history: Mapping[str, Sequence[float]], options: Any
) -> dict[str, Any]:
    """``best_epoch`` (1-based, over the whole history) whose weights the fitted model holds,
    and ``restored``: whether early stopping put back an epoch before the last. Keras
    restores the best epoch of every fit, stopped early or not; of a training in phases
    (``phase`` per epoch, e.g. transfer) only the last phase's fit decides."""
    from models.schedules import monitor_mode
    from models.training import _monitor_key, kept_epoch

    epochs = max(len(next(iter(history.values()), [])), 1)
    values = history.get(_monitor_key(model, options.early_stopping_monitor))
    if not options.early_stopping or not values:
        return {"restored": False, "best_epoch": epochs}
    phases = list(history.get("phase", []))
    start = phases.index(phases[-1]) if phases else 0
    kept = kept_epoch(values[start:], monitor_mode(options.early_stopping_monitor))
    best = epochs if kept is None else start + kept + 1
    return {"restored": best < epochs, "best_epoch": best}


def load_keras(path: str | Path, custom_objects: str | None = None) -> Any:
    """Load a ``.keras`` file in safe mode, importing the module that registers its custom
    classes (if any) first, so loading never depends on what the caller imported."""
    import keras

    _quiet_retracing()
    if custom_objects is not None:
        importlib.import_module(custom_objects)
    return keras.saving.load_model(path, compile=False)


def _drop_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing() -> None:
    """Keep TensorFlow's "N out of the last N calls ... triggered tf.function retracing"
    warning out of a served model's output: each loaded member traces its predict step
    once, and an ensemble of several members reads as retracing in a loop."""
    tf_logger = logging.getLogger("tensorflow")
    if _drop_retracing not in tf_logger.filters:
        tf_logger.addFilter(_drop_retracing)


def _training_options(options: Any) -> Any:
    """A Keras member's ``TrainingOptions``: the defaults for None, rebuilt from a mapping of
    its fields (``TrainingOptions.as_params()``); TypeError for anything else."""
    from models.training import TrainingOptions

    if options is None:
        return TrainingOptions()
    if isinstance(options, Mapping):
        return TrainingOptions.from_params(options)
    if not isinstance(options, TrainingOptions):
        raise TypeError(
            "a Keras member's options must be a models.training.TrainingOptions, a mapping of "
            f"its fields or None (the defaults), got {options!r} ({type(options).__name__})"
        )
    return options
