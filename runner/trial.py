"""The Ray Tune trainable: trains one member on a worker and saves it as the trial checkpoint.

Workers never call MLflow: they report metrics to Tune every epoch and leave the saved model,
``predictions.npz`` and ``member.json`` in the checkpoint for the driver to log. What a member
is (build, fit, predict, save) is its registry entry's business: this module only runs it.
"""

from __future__ import annotations

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
from models.deadline import training_deadline
from models.distill import student_targets
from models.kind import check_predictions, errors_in_units
from models.registry import is_zoo
from models.store import folder_bytes
from models.training import PREDICT_ROWS, TrainingOptions
from runner.contracts import (
    HISTORY,
    HONEST_TARGETS,
    LEARNING_CURVES,
    MODEL_DIR,
    TrialInput,
    TrialResult,
    finished_earlier,
    trial_label,
    unpack_member,
)
from runner.data import Dataset
from runner.data.types import take


def _epoch_reporter(deadline: float | None, epochs: int | None) -> Any:
    """The hook a member calls after each epoch: report to Tune; True (stop training) once
    the sweep's deadline passed. Its ``cut_at`` is the epoch it stopped training at before
    the last of ``epochs`` (None: not cut short)."""

    def report(epoch: int, metrics: dict[str, float]) -> bool:
        # decided before reporting, so that a scheduler (ASHA) never stops a trial at the
        # epoch its training ends anyway: early stopping's, the deadline's or the last
        stopping = bool(metrics.pop("last_epoch", False))
        stop = deadline is not None and time.time() >= deadline
        last = stopping or stop or (epochs is not None and epoch >= epochs)
        tune.report({"epoch": epoch, "final": False, "last_epoch": last, **metrics})
        if stop and (epochs is None or epoch < epochs):
            report.cut_at = epoch
        return stop

    report.cut_at = None
    return report


def _rows(X: Any, n: int) -> Any:
    """The first ``n`` rows of a split: of an array, or of a table's DataFrame."""
    return X.iloc[:n] if hasattr(X, "iloc") else X[:n]


def _skip(member: TrialInput, deadline: float) -> None:
    """Report a member that starts after the deadline as skipped (no checkpoint)."""
    late = time.time() - deadline
    tune.report(
        {
            "final": True,
            "epoch": 0,
            "val_loss": float("inf"),  # schedulers such as ASHA need their metric
            # its trial started (the progress view said so), the member did not
            "skipped": f"runner.time_limit had passed {late:.1f}s when {member.name}'s "
            "trial started: not trained",
        }
    )


def _gpu_ids() -> list[str]:
    """The GPUs Ray assigned to this trial (shared ids when trials hold fractions)."""
    import ray

    return [str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]


def _node_id() -> str:
    """The Ray node this trial ran on (several nodes may share an IP address)."""
    import ray

    return ray.get_runtime_context().get_node_id()


def _save_history(history: dict[str, list[float]], title: str, out: Path) -> None:
    from ensembles.plots import learning_curves

    (out / HISTORY).write_text(json.dumps(history))
    learning_curves(history, out / LEARNING_CURVES, title)


def _teacher_predictions(folder: str, X: Any) -> np.ndarray:
    """The served ensemble saved in ``folder`` (an MLflow pyfunc model on shared storage,
    loaded from disk) predicting the rows ``X``: probabilities or values."""
    import mlflow.pyfunc

    from ensembles.conformal import point_predictions

    return point_predictions(mlflow.pyfunc.load_model(folder).predict(X))


LATENCY_ROWS = PREDICT_ROWS  # measured on one batch of the Keras chunk size at most
LATENCY_CALLS = 5  # timed calls at most; the fastest is kept
LATENCY_SECONDS = 1.0  # no more calls once they took this long together (two at least)


def _latency_ms_per_1000(member: Any, data: Dataset) -> float:
    """Milliseconds a fitted member takes to predict 1000 rows, warm and at its fastest of a
    few calls: ``LATENCY_ROWS`` test
    rows (the first ones, repeated when the test split is smaller: a few rows would scale a
    call's fixed cost up a thousandfold) predicted after the whole test set (a Keras net
    compiles its prediction step anew for each new batch shape, so a first call measures
    that too)."""
    if not len(data.y_test):
        return 0.0
    rows = np.arange(LATENCY_ROWS) % len(data.y_test)
    sample = take(data.X_test, rows)
    if len(data.y_test) < LATENCY_ROWS:  # a batch shape the test set's call did not compile
        member.predict(sample, data.task)
    # the fastest of a few calls, as timeit takes it: a trial on the other core, or a
    # collection, slowed single calls of the same member 1.7 to 7.6 ms per 1000 rows
    times: list[float] = []
    while len(times) < LATENCY_CALLS and (len(times) < 2 or sum(times) < LATENCY_SECONDS):
        clock = time.perf_counter()
        member.predict(sample, data.task)
        times.append(time.perf_counter() - clock)
    return 1e6 * min(times) / max(len(rows), 1)


def _users_kind(name: str) -> bool:
    """Whether a kind was registered from outside ``models/`` (by a user's module)."""
    return not is_zoo(models.module_of(name))


ROUND_TRIP_ROWS = 64  # validation rows a user's kind predicts before and after save and load


def _check_round_trip(kind: str, fitted: Any, folder: Path, X: Any, task: Any) -> None:
    """A kind of the user's own, saved and loaded back, predicts as the fitted one did (a
    save that left part of the model out was served, silently wrong, as the ensemble's).
    A kind whose predictions vary from call to call (MC dropout) is not compared."""
    rows = _rows(X, ROUND_TRIP_ROWS)
    before = np.asarray(fitted.predict(rows, task), dtype=np.float64)
    after = np.asarray(models.load_member(folder).predict(rows, task), dtype=np.float64)
    if before.shape == after.shape and np.allclose(before, after, rtol=1e-4, atol=1e-6):
        return
    again = np.asarray(fitted.predict(rows, task), dtype=np.float64)
    if not np.allclose(before, again, rtol=1e-4, atol=1e-6):
        return
    differ = (
        f"shape {after.shape} for {before.shape}"
        if before.shape != after.shape
        else f"up to {float(np.max(np.abs(before - after))):.3g} apart"
    )
    raise ValueError(
        f"model {kind!r}: loaded back from its saved files, the model predicts other values "
        f"than the fitted one on {len(before)} validation rows ({differ}): its save() or load() "
        "leaves part of the model out"
    )


def _finished_before(config: dict[str, Any], done: frozenset[str]) -> bool:
    """Whether this trial's member (its fold, refit or student) FINISHED in an earlier
    attempt of the sweep, which Tune's own state may not know yet when the driver died.
    A searched member's sample is known by Tune's experiment tag only: not checked."""
    if not done or config.get("searched"):
        return False
    return finished_earlier(trial_label(config, None), config["name"], config.get("fold"), done)


def train_member(
    config: dict[str, Any],
    data: Dataset,
    deadline: float | None = None,
    pool: str | None = None,
    done: frozenset[str] = frozenset(),
) -> None:
    """Tune function trainable: fit one member (one fold of a bagged member, or its refit on
    all pooled rows), predict its validation rows (a fold's held-out rows, a refit's own
    rows) and test, checkpoint everything. A member that starts after ``deadline``
    (wall-clock seconds) is skipped; epochs stop once it passed. A student (``teacher``)
    fits the served ensemble's predictions of its training rows instead of their labels
    (of bagged members: made from their out-of-fold predictions, when the driver saved
    them), watched against the true labels of rows it does not fit (fold 0 when bagged).
    With an ensemble ``pool`` (the actor's name) the trial's final ``val_loss`` is minus
    what it adds to the ensemble (its gain), its own kept as ``final_own_val_loss``. A member in
    ``done`` (FINISHED in an earlier attempt) is not trained again: the sweep keeps its run."""
    raw = unpack_member(config["member"])
    if _finished_before(raw, done):
        tune.report({"final": True, "epoch": 0, "val_loss": float("inf"), "earlier": True})
        return
    member = TrialInput.from_config(raw)
    if deadline is not None and time.time() >= deadline:
        _skip(member, deadline)
        return
    member.import_model_modules()
    entry = models.get(member.model)
    start, cpu_start = time.perf_counter(), time.process_time()
    (X_train, y_train), (X_val, y_val) = data.fit_rows(member.fold)
    targets_from = None  # a student's: "out_of_fold", or "teacher" (the served model's)
    if member.teacher:
        honest = Path(member.teacher).parent / HONEST_TARGETS
        if data.folds is not None:  # pooled rows: hold fold 0 out to watch
            (X_train, y_train), (X_val, y_val) = data.fit_rows(0)
        if data.folds is not None and honest.is_file():  # out of fold: rows no member saw
            teacher, targets_from = np.load(honest)[data.folds != 0], "out_of_fold"
        else:
            teacher, targets_from = _teacher_predictions(member.teacher, X_train), "teacher"
        y_train = student_targets(entry, data.task, teacher)
    # a one-shot fit (scikit-learn, boosters) reports once, after it: never cut short
    epochs = member.training.get("epochs") if entry.learns_in_epochs else 1
    reporter = _epoch_reporter(deadline, epochs)
    with (
        tempfile.TemporaryDirectory(prefix=f"member-{member.name}-") as tmp,
        training_deadline(deadline) as clock,  # a booster stops at its next round after it
    ):
        out = Path(tmp)
        trained = entry.train(
            data.input_spec,
            data.task,
            member.hparams,
            (X_train, y_train),
            (X_val, y_val),
            TrainingOptions.from_params(member.training),
            seed=member.seed,
            cpus=member.resources["cpu"],
            gpus=member.resources["gpu"],
            on_epoch=reporter,
            workdir=out,
            log_target=data.log_target,
        )
        models.save_member(member.model, trained.member, out / MODEL_DIR)
        if _users_kind(member.model):  # the zoo's own kinds are checked by its tests
            _check_round_trip(member.model, trained.member, out / MODEL_DIR, X_val, data.task)
        model_bytes = folder_bytes(out / MODEL_DIR)
        if entry.learns_in_epochs and trained.history:
            history = errors_in_units(trained.member.target, trained.history)
            _save_history(history, f"{member.name} ({member.model})", out)
        val = check_predictions(
            trained.member.predict(X_val, data.task), len(X_val), data.task, "validation"
        )
        test = trained.member.predict(data.X_test, data.task)
        test = check_predictions(test, len(data.y_test), data.task, "test")
        # a served request may be one row: a member that squeezes it away fails here, not
        # there (where its error would read as the user's input's)
        check_predictions(
            trained.member.predict(_rows(X_val, 1), data.task), 1, data.task, "one row's"
        )
        train_seconds = time.perf_counter() - start
        # every thread of this worker (TensorFlow's, the GBDTs'): what the member cost the
        # machine, which a shared or busy machine does not inflate as it does the wall time
        # (child processes are not counted: every kind here trains in threads)
        train_cpu_seconds = time.process_time() - cpu_start
        predict_ms = _latency_ms_per_1000(trained.member, data)  # timed apart from training
        # what the deadline let a booster's rounds or a forest's trees grow to, if it cut them
        grown = {} if clock is None or clock.rounds is None else {f"{clock.unit}_run": clock.rounds}
        info = {
            **member.to_config(),
            "n_params": None,
            "restored": False,
            **trained.info,
            "fit_seconds": trained.fit_seconds,
            "epochs_run": trained.epochs_run,
            "train_seconds": train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
            "predict_ms_per_1000": predict_ms,
            "model_bytes": model_bytes,
            "stopped_at_deadline": reporter.cut_at is not None or bool(grown),
            **grown,
            "student_targets": targets_from,
            "hostname": socket.gethostname(),
            "gpu_ids": _gpu_ids(),
            "node_id": _node_id(),
            "fingerprint": data.fingerprint,
            "n_features": data.input_spec.n_features,
            "table_columns": list(data.input_spec.feature_names or ())
            if data.input_spec.table
            else None,
            "classes": None if data.task.labels is None else list(data.task.labels),
        }
        TrialResult(val, test, data.fingerprint, info).write(out, y_val, data.y_test)
        val_scores = evaluate(y_val, val)
        held = "train" if member.refit else "val"  # a refit holds no rows out: it scores its own
        final = {
            "final": True,
            "epoch": trained.epochs_run,
            # schedulers such as ASHA need their metric in every result
            "val_loss": val_scores.get("log_loss", val_scores.get("rmse", 0.0) ** 2),
            "train_seconds": train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
            "final_predict_ms_per_1000": predict_ms,
            **{f"final_{held}_{k}": v for k, v in val_scores.items()},
            **{f"final_test_{k}": v for k, v in evaluate(data.y_test, test).items()},
        }
        if pool is not None:  # the searcher and scheduler see what it adds to the ensemble
            from runner.pool import score

            scored = score(pool, tune.get_context().get_trial_id(), val)
            final["final_own_val_loss"] = final["val_loss"]
            # with it minus without it: the ensemble's loss alone falls as the pool grows,
            # whatever a trial brings, and would rank the latest trials best
            final["val_loss"] = -scored["ensemble_gain"]
            final.update({f"final_{k}": v for k, v in scored.items()})
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
