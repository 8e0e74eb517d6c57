"""The Ray Tune trainable: trains one member on a worker and saves it as the trial checkpoint.

Workers never call MLflow: they report metrics to Tune every epoch and leave the model,
``predictions.npz`` and ``member.json`` in the checkpoint for the driver to log.
"""

from __future__ import annotations

import gc
import json
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune

import models
from ensembles.metrics import evaluate
from models.training import TrainingOptions
from runner.data import Dataset

MODEL_FILES = {"keras": "model.keras", "sklearn": "model.joblib"}


def _epoch_reporter() -> Any:
    """A Keras callback reporting each epoch's logs to Tune, with the learning rate and the
    training phase; epochs are counted across phases (1-based)."""
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
            if "lr" not in metrics and "learning_rate" not in metrics:
                lr = getattr(self.model.optimizer, "learning_rate", None)
                if lr is not None:
                    metrics["lr"] = float(keras.ops.convert_to_numpy(lr))
            if self.phase is not None:
                metrics["phase"] = float(self.phase)
            tune.report({"epoch": self.epoch, "final": False, **metrics})

    return ReportEpoch()


def _lr_finder(entry: Any, member: dict[str, Any], data: Dataset, options: Any, out: Path):
    """Run the learning-rate finder on a fresh copy of the model; save its plot and result."""
    from models.training import compile_model, find_learning_rate, plot_lr_finder

    def fresh() -> Any:
        model = entry.build(data.input_spec, data.task, **member["hparams"])
        return compile_model(
            model,
            data.task,
            options,
            n_train_rows=len(data.y_train),
            loss_weights=entry.loss_weights(member["hparams"]),
        )

    settings = options.lr_finder if isinstance(options.lr_finder, dict) else {}
    result = find_learning_rate(
        fresh, (data.X_train, data.y_train), batch_size=options.batch_size, **settings
    )
    plot_lr_finder(result, out / "lr_finder.png")
    (out / "lr_finder.json").write_text(
        json.dumps(
            {
                "lrs": list(map(float, result.lrs)),
                "losses": list(map(float, result.losses)),
                "suggestion": float(result.suggestion),
            }
        )
    )
    return float(result.suggestion)


_imports_frozen = False


def _freeze_imported_objects() -> None:
    """Once per worker, after TensorFlow and Keras are imported: move every object alive now
    out of the garbage collector's sight (``gc.freeze``). Each trial's clear_session() runs a
    full collection, which scanned the imports' millions of objects for about 0.25 s per trial
    here; what trials leave behind is still collected."""
    global _imports_frozen
    if not _imports_frozen:
        gc.freeze()
        _imports_frozen = True


def _train_keras(member: dict[str, Any], data: Dataset, out: Path) -> dict[str, Any]:
    import keras

    from models.training import compile_model, fit_keras, output_count, predict
    from runner.cluster import configure_tensorflow

    device = configure_tensorflow(member["resources"]["cpu"], member["resources"]["gpu"])
    _freeze_imported_objects()
    keras.backend.clear_session()
    keras.utils.set_random_seed(member["seed"])
    options = TrainingOptions.from_params(member["training"])
    entry = models.get(member["model"])
    hparams = member["hparams"]
    suggestion = None
    if options.lr_finder:
        suggestion = _lr_finder(entry, member, data, options, out)
        keras.backend.clear_session()
        keras.utils.set_random_seed(member["seed"])  # same initial weights as without finder
    model = entry.build(data.input_spec, data.task, **hparams)
    outputs = output_count(model)
    train = (data.X_train, data.y_train if outputs == 1 else (data.y_train,) * outputs)
    val = (data.X_val, data.y_val if outputs == 1 else (data.y_val,) * outputs)
    reporter = _epoch_reporter()
    log_dir = str(out / "tensorboard") if options.tensorboard else None
    start = time.perf_counter()
    if entry.fit_fn is not None:
        history = entry.fit_fn(
            model,
            data.task,
            train,
            val,
            options,
            hparams,
            callbacks=[reporter],
            on_phase=reporter.set_phase,
            n_train_rows=len(data.y_train),
            log_dir=log_dir,
        )
    else:
        compile_model(
            model,
            data.task,
            options,
            n_train_rows=len(data.y_train),
            loss_weights=entry.loss_weights(hparams),
        )
        history = fit_keras(model, train, val, options, [reporter], log_dir=log_dir)
    fit_seconds = time.perf_counter() - start
    losses = history.get("loss", [])
    bad = next((i for i, v in enumerate(losses) if not np.isfinite(v)), None)
    if bad is not None:  # TerminateOnNaN stops fit quietly; the member must fail, with why
        raise FloatingPointError(
            f"loss became {losses[bad]} in epoch {bad + 1}; training stopped (try a lower "
            "learning rate, gradient clipping or batch norm)"
        )
    model.save(out / MODEL_FILES["keras"])
    (out / "history.json").write_text(json.dumps(history))
    if history:
        from ensembles.plots import learning_curves

        learning_curves(
            history, out / "learning_curves.png", f"{member['name']} ({member['model']})"
        )
    epochs_run = reporter.epoch
    return {
        "val": predict(model, data.X_val, data.task),
        "test": predict(model, data.X_test, data.task),
        "fit_seconds": fit_seconds,
        "epochs_run": epochs_run,
        "restored": bool(options.early_stopping) and epochs_run < options.epochs,
        "n_params": int(model.count_params()),
        "lr_finder_suggestion": suggestion,
        "device": device,
    }


def _keras_style(scores: dict[str, float], prefix: str = "") -> dict[str, float]:
    """Name scikit-learn scores as Keras logs them: ``loss`` plus the headline metric."""
    if "accuracy" in scores:
        return {f"{prefix}loss": scores["log_loss"], f"{prefix}accuracy": scores["accuracy"]}
    return {f"{prefix}loss": scores["rmse"] ** 2, f"{prefix}rmse": scores["rmse"]}


def _train_sklearn(member: dict[str, Any], data: Dataset, out: Path) -> dict[str, Any]:
    import joblib

    from models.shallow import predict, seed_estimator

    entry = models.get(member["model"])
    estimator = seed_estimator(
        entry.build(data.input_spec, data.task, **member["hparams"]), member["seed"]
    )
    start = time.perf_counter()
    estimator.fit(data.X_train, data.y_train)
    fit_seconds = time.perf_counter() - start
    joblib.dump(estimator, out / MODEL_FILES["sklearn"])
    val = predict(estimator, data.X_val, data.task)
    epoch = {
        **_keras_style(evaluate(data.y_train, predict(estimator, data.X_train, data.task))),
        **_keras_style(evaluate(data.y_val, val), prefix="val_"),
    }
    tune.report({"epoch": 1, "final": False, **epoch})
    return {
        "val": val,
        "test": predict(estimator, data.X_test, data.task),
        "fit_seconds": fit_seconds,
        "epochs_run": 1,
        "restored": False,
        "n_params": None,
    }


def _gpu_ids() -> list[str]:
    """The GPUs Ray assigned to this trial (shared ids when trials hold fractions)."""
    import ray

    return [str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]


def _node_id() -> str:
    """The Ray node this trial ran on (several nodes may share an IP address)."""
    import ray

    return ray.get_runtime_context().get_node_id()


TRAINERS = {"keras": _train_keras, "sklearn": _train_sklearn}


def train_member(config: dict[str, Any], data: Dataset) -> None:
    """Tune function trainable: fit one member, predict val and test, checkpoint everything."""
    member = config["member"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"member-{member['name']}-") as tmp:
        out = Path(tmp)
        result = TRAINERS[member["kind"]](member, data, out)
        val, test = result.pop("val"), result.pop("test")
        np.savez(
            out / "predictions.npz",
            val=val,
            test=test,
            y_val=data.y_val,
            y_test=data.y_test,
            fingerprint=np.array(data.fingerprint),
        )
        train_seconds = time.perf_counter() - start
        info = {
            **member,
            **result,
            "model_file": MODEL_FILES[member["kind"]],
            "train_seconds": train_seconds,
            "hostname": socket.gethostname(),
            "gpu_ids": _gpu_ids(),
            "node_id": _node_id(),
            "fingerprint": data.fingerprint,
            "n_features": data.input_spec.n_features,
        }
        (out / "member.json").write_text(json.dumps(info, indent=2, default=str))
        val_scores = evaluate(data.y_val, val)
        final = {
            "final": True,
            "epoch": result["epochs_run"],
            # schedulers such as ASHA need their metric in every result
            "val_loss": val_scores.get("log_loss", val_scores.get("rmse", 0.0) ** 2),
            "train_seconds": train_seconds,
            **{f"final_val_{k}": v for k, v in evaluate(data.y_val, val).items()},
            **{f"final_test_{k}": v for k, v in evaluate(data.y_test, test).items()},
        }
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
