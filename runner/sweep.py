"""One sweep end to end on the driver: Tune trials -> MLflow tree -> ensemble -> summary."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric

import ensembles
from ensembles.metrics import evaluate, headline_metric
from ensembles.stage import MemberPredictions
from runner import bags, ensemble_step, export, plan, report, sentinel, signals
from runner.callback import MemberCallback
from runner.candidates import HeldPredictions
from runner.contracts import (
    DATA_FINGERPRINT,
    HONEST_TARGETS,
    LEADERBOARDS,
    MODEL_DIR,
    NO_ENSEMBLE,
    cut_short,
    fold_label,
    split_fold_label,
)
from runner.data import Dataset
from runner.driver_memory import MemoryWatch, release_freed
from runner.errors import (
    StoreFailed,
    SweepFailed,
    SweepInterrupted,
    store_error,
    store_error_said,
)
from runner.lease import Lease
from runner.runtree import MemberRecord, RunTree
from runner.spec import MemberSpec, RunSpec
from runner.store_probe import redact_uri
from runner.user_errors import SAID_IN_ONE_LINE

log = logging.getLogger(__name__)


class _NoResultFilesYet(logging.Filter):
    """Drops Tune's warning that trials have no result files when every trial it names has
    none at all: trials that had not started when a run was interrupted, or when a resume
    restored it (they run then). Tune names each on a line of its own: thousands in a big
    sweep. Any other failure to read a trial's results still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Failed to fetch metrics for"):
            return True
        return not all("FileNotFoundError(" in line for line in message.splitlines()[1:])


class _FailedTrialTracebacks(logging.Filter):
    """Drops Tune's traceback of a failed trial and its closing list of the trials that did
    not complete: the progress view names each failed member with its error line, and the
    member's run holds the whole error (``error.txt``). Installed below ``runner.verbose=2``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith(("Trial task failed for trial", "Trials did not complete"))


def _quiet_failed_trials(verbose: int) -> None:
    """Install ``_FailedTrialTracebacks`` on Tune's loggers below verbosity 2, once."""
    if verbose >= 2:
        return
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        tune_log = logging.getLogger(name)
        if not any(isinstance(f, _FailedTrialTracebacks) for f in tune_log.filters):
            tune_log.addFilter(_FailedTrialTracebacks())


class _TuneResumeAdvice(logging.Filter):
    """Drops Tune's advice to resume an interrupted run with ``Tuner.restore(path=...,
    trainable=...)``: a sweep resumes with ``runner.sweep_id=...``, which the runner says."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Experiment has been interrupted")


def _quiet_tune_logs() -> None:
    """Install ``_NoResultFilesYet`` on Tune's analysis logger and ``_TuneResumeAdvice`` on
    its run's, once."""
    for name, kind in (
        ("ray.tune.analysis.experiment_analysis", _NoResultFilesYet),
        ("ray.tune.tune", _TuneResumeAdvice),
    ):
        tune_log = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in tune_log.filters):
            tune_log.addFilter(kind())


def _tune(
    spec: RunSpec,
    data: Dataset,
    run: plan.TuneRun,
    callback: MemberCallback,
    restore: bool = False,
    deadline: float | None = None,
    pool: str | None = None,
    done: frozenset[str] = frozenset(),
    view: Any = None,
) -> Any:
    """Execute one planned Tune run; restore Tune's state from an earlier attempt when asked.
    Trials that start after ``deadline`` (a wall-clock time) are skipped; with ``pool`` (an
    ensemble pool actor's name) trials are scored by what they add to the ensemble; trials
    of members in ``done`` (FINISHED in an earlier attempt) end at once. ``view``: the
    stage's progress view, one over all its Tune runs."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from runner.trial import train_member

    _quiet_tune_logs()
    _quiet_failed_trials(spec.verbose)
    # Tune's own per-trial files: the JSON and CSV results its analysis reads, not the
    # TensorBoard copy of each trial's scores (MLflow has them; about 4 ms of driver a trial)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    callbacks = [callback, JsonLoggerCallback(), CSVLoggerCallback()]
    if spec.verbose < 2:
        # Tune's new console output prints its header whatever the verbosity; the classic
        # reporter honours verbose=0, and our ProgressView shows progress instead.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if view is not None:
        view.next_run()
        callbacks.append(view)
    trainable = tune.with_resources(
        tune.with_parameters(train_member, data=data, deadline=deadline, pool=pool, done=done),
        resources=plan.trial_resources,
    )
    # a bucket's URI joined as text: Path("s3://b/x") is "s3:/b/x", where no state ever is
    path = (
        f"{spec.storage_path.rstrip('/')}/{run.name}"
        if "://" in spec.storage_path
        else str(Path(spec.storage_path) / run.name)
    )
    if restore and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable, restart_errored=True)
        # The restored RunConfig holds unpickled copies of the first attempt's callbacks;
        # this attempt's callbacks (the live run tree) replace them.
        tuner._local_tuner.get_run_config().callbacks = callbacks
        return _fit(tuner, callback)
    space, settings = run.search_space(spec, rows=len(data.y_train))
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            trial_name_creator=plan.trial_name,
            trial_dirname_creator=plan.trial_name,
            **settings,
        ),
        run_config=tune.RunConfig(
            name=run.name,
            storage_path=spec.storage_path,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            verbose=0 if spec.verbose < 2 else 1,
        ),
    )
    return _fit(tuner, callback)


def _fit(tuner: Any, callback: MemberCallback) -> Any:
    """``tuner.fit()``, then every member-run write of its events done (their failure
    raised); when it fails, the writes not started are given up (a resume replays them).
    Tune leaves its SIGINT handler installed when no signal came: it is put back to what it
    was, or a Ctrl+C or SIGTERM after the trials (while writes finish, during the ensemble
    stage) would only set the finished Tune run's flag."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT)
    usr1 = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
    catches = main and not int(os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0"))
    try:
        try:
            results = tuner.fit()
            if catches and signal.getsignal(signal.SIGINT) is handler:
                signals.note_tune_stopped()  # Tune's handler ran: it puts back the one it replaced
        finally:
            if main and handler is not None:
                signal.signal(signal.SIGINT, handler)
            if main and usr1 is not None:  # Tune stops on SIGUSR1 too, and leaves its handler
                signal.signal(signal.SIGUSR1, usr1)
        callback.flush()
    except BaseException:  # Ctrl+C while flushing gives up the rest too
        callback.drop()
        raise
    return results


class NoEnsemble(ValueError):
    """The finished members gave no ensemble (a budget none fits, too few usable members)."""


def _ensemble(
    spec: RunSpec,
    data: Dataset,
    tree: RunTree,
    records: list[MemberRecord],
    refits: dict[str, MemberRecord],
) -> tuple[dict[str, Any] | None, np.ndarray | None]:
    """Run the ensemble step on the finished members and log its run: its summary entry
    (NoEnsemble, saying why, if the members give none), and, for a student of bagged
    members, the served ensemble's predictions of the pooled rows from the members'
    out-of-fold predictions (targets no member saw). With ``refits`` (bagged members
    refitted on all rows, by name) the served model holds them. A resumed sweep whose
    ensemble run already FINISHED with these settings (the driver died after it) reuses that
    run instead of logging a second one."""
    finished = [r for r in records if r.status == "FINISHED"]
    member_runs = {r.name: r.run_id for r in finished}
    refit_runs = served_refits(refits, member_runs)
    done = None
    if tree.resumed:
        described = ensemble_step.settings_of(
            spec.ensemble,
            spec.seed,
            data.fingerprint,
            member_runs,
            headline_metric(data.task.is_classification, spec.metric),
            refit_runs if spec.refit else None,  # as ensemble_step.log describes it
        )
        done = ensemble_step.existing_run(
            tree.client, tree.experiment_id, ensemble_step.settings_hash(described)
        )
    served = {r.name: (refits[r.name] if r.name in refit_runs else r) for r in finished}
    members = [
        MemberPredictions(
            r.name,
            r.val,
            r.test,
            r.fingerprint,
            served[r.name].fit.get("predict_ms_per_1000"),
            r.test_folds,
        )
        for r in finished
        if r.val is not None
    ]
    set_aside = len(finished) - len(members)  # outside the candidates, let go during the sweep
    wants_targets = spec.student is not None and data.folds is not None
    result = None
    if done is None or wants_targets:  # a reused run is refitted only for the student's targets
        try:
            result = ensemble_step.fit(
                spec.ensemble,
                members,
                data.y_val,
                data.y_test,
                spec.seed,
                data.fingerprint,
                spec.metric,
                set_aside,
            )
        except ValueError as err:
            if done is None:
                raise NoEnsemble(str(err)) from None
    targets = result.val_pred if wants_targets and result is not None else None
    if done is not None:
        entry = ensemble_step.reuse(tree.client, done)
        names = _reused_served_names(entry)
        for fact in ("predict_ms_per_1000", "model_bytes"):
            values = [served[n].fit.get(fact) if n in served else None for n in names]
            entry[fact] = None if None in values or not names else float(sum(values))
        return entry, targets
    refit = None
    held = {name: (refits[name].run_id, refits[name].test) for name in refit_runs}
    used = result.served_names
    if spec.refit and any(name in held for name in used):  # else the bags are served
        refit = ensemble_step.refitted(result, members, member_runs, held, data.y_test)
    out = ensemble_step.log(
        tree.client,
        result,
        spec.ensemble,
        open_run=lambda tags: tree.child("ensemble", "ensemble", tags),
        end_run=tree.terminate,
        member_runs=member_runs,
        y_test=data.y_test,
        fingerprint=data.fingerprint,
        inputs=data.X_train.head(20) if data.input_spec.table else data.input_spec.n_features,
        seed=spec.seed,
        X_test=data.X_test,
        refit=refit,
        classes=data.task.labels,
    )
    if spec.refit and refit is None:  # asked for refits, serves the bags: said so
        out["refit_missing"] = sorted(used)
    out["predict_ms_per_1000"] = _served_sum(result, served, "predict_ms_per_1000")
    out["model_bytes"] = _served_sum(result, served, "model_bytes")
    return out, targets


def served_refits(
    refits: Mapping[str, MemberRecord], member_runs: Mapping[str, str]
) -> dict[str, str]:
    """The refits a served model holds, by member: those that finished whole. A refit the
    time limit cut short (1 epoch of 40) is not served: its bag, fully trained, stands in
    for it, as for a refit that did not finish."""
    return {
        name: r.run_id
        for name, r in refits.items()
        if name in member_runs and r.status == "FINISHED" and not cut_short(r.fit)
    }


def _reused_served_names(entry: dict[str, Any]) -> list[str]:
    """The members an ensemble run logged earlier serves: a budget's choice, those with weight
    in an average, every member for stacking (as ``used_members`` says of a fitted one)."""
    if entry.get("budget"):  # a budget serves the members it chose
        return list(entry["budget"]["members"])
    weights = entry.get("weights") or {}
    if not getattr(ensembles.METHODS.get(entry.get("method")), "averages", True):
        return list(weights)
    return [name for name, w in weights.items() if w]


def _served_sum(result: Any, served: dict[str, MemberRecord], fact: str) -> float | None:
    """A fit fact summed over the served ensemble's members (those it reads: an averaging
    ensemble serves only the members with weight): milliseconds to predict 1000 rows, or
    bytes on disk; None if one member's is unknown."""
    values = [served[name].fit.get(fact) for name in result.served_names]
    return None if None in values else float(sum(values))


def _distill(
    spec: RunSpec,
    data: Dataset,
    tree: RunTree,
    ens: dict[str, Any],
    deadline: float | None,
    targets: np.ndarray | None = None,
) -> dict[str, Any]:
    """``ensemble.distill``: train the student as a Tune trial on the served ensemble's
    predictions (the model copied to Tune's storage, where workers read it), then log it as
    a model of its own that serves raw rows (registered beside the ensemble when that is).
    With ``targets`` (bagged members: the ensemble's predictions of the pooled rows from
    out-of-fold predictions) they are saved beside the model and the student fits those."""
    assert spec.student is not None
    teacher = (
        Path(spec.storage_path) / f"{plan.experiment_name(spec, None)}-teacher" / ens["run_id"]
    )
    if not (teacher / MODEL_DIR / "MLmodel").is_file():
        teacher.mkdir(parents=True, exist_ok=True)
        tree.client.download_artifacts(ens["run_id"], MODEL_DIR, str(teacher))
    if targets is not None:
        np.save(teacher / HONEST_TARGETS, np.asarray(targets))
    student = replace(spec.student, teacher=str(teacher / MODEL_DIR))
    (record,) = _train_stage(spec, data, (student,), tree, None, deadline)
    metric = headline_metric(data.task.is_classification, spec.metric)
    # the rows the student was watched on: validation, or fold 0 of pooled rows
    y_watch = data.y_val if data.folds is None else data.y_val[data.folds == 0]
    row = _member_row(record, replace(data, y_val=y_watch), metric)
    if record.status != "FINISHED":
        return row
    row["model_uri"], _ = export.log_student(
        tree.client,
        record.run_id,
        spec.student.name,
        (record.val, record.test),
        y_watch,
        data.X_train.head(20) if data.input_spec.table else data.input_spec.n_features,
        data.task.labels,
    )
    facts = {
        **{f"student.test_{k}": v for k, v in row.get("test_scores", {}).items()},
        "student.predict_ms_per_1000": row.get("predict_ms_per_1000"),
        "student.model_bytes": row.get("model_bytes"),
    }
    logged_before = tree.client.get_run(ens["run_id"]).data.metrics  # by an earlier attempt
    new_facts = [
        Metric(k, float(v), int(1000 * time.time()), 0)
        for k, v in facts.items()
        if v is not None and k not in logged_before
    ]
    if new_facts:
        tree.client.log_batch(ens["run_id"], metrics=new_facts)
    # the student is served from its own run now: the teacher's copy has done its job
    shutil.rmtree(teacher, ignore_errors=True)
    with contextlib.suppress(OSError):
        teacher.parent.rmdir()  # only when no other sweep's teacher is in it
    if spec.ensemble.register_as:  # unless an earlier attempt registered this student
        name = f"{spec.ensemble.register_as}-student"
        row["registered_as"] = name
        row["registered_version"] = export.registered_from(
            tree.client, name, record.run_id
        ) or export.register(
            tree.client,
            record.run_id,
            name,
            export.STUDENT_DIR,
            {DATA_FINGERPRINT: data.fingerprint},  # the split its scores are on
        )
    return row


def _member_row(r: MemberRecord, data: Dataset, metric: str) -> dict[str, Any]:
    row: dict[str, Any] = {"name": r.name, "model": r.model, "status": r.status, "run_id": r.run_id}
    if r.status == "FINISHED":
        val, test = r.scores or (evaluate(data.y_val, r.val), evaluate(data.y_test, r.test))
        row.update(
            val_metric=val[metric], test_metric=test[metric], val_scores=val, test_scores=test
        )
    row["train_seconds"] = r.train_seconds
    row["train_cpu_seconds"] = r.fit.get("train_cpu_seconds")
    row["predict_ms_per_1000"] = r.fit.get("predict_ms_per_1000")
    row["model_bytes"] = r.fit.get("model_bytes")
    if cut := cut_short(r.fit):  # runner.time_limit stopped it early
        row["cut_short"] = cut
    if r.fit.get("folds_missing"):  # a bag whose late folds runner.time_limit skipped
        row["folds_missing"] = {"missing": r.fit["folds_missing"], "folds": r.fit["folds"]}
    if r.error:
        row["error"] = r.error
    return row


def _flag_worse_than_constant(summary: dict[str, Any], data: Dataset) -> None:
    """Record the validation loss of predicting every row alike (the training rows' class
    shares, or their mean), and mark the finished members that do worse: a member that
    diverged (a boosting run whose loss grew after its best round) still finishes, and an
    ensemble that averages every member (``mean``) would take it in."""
    key = "log_loss" if data.task.is_classification else "rmse"
    y_train, y_val = np.asarray(data.y_train), np.asarray(data.y_val)
    if data.task.is_classification:
        counts = np.bincount(y_train, minlength=data.task.n_classes) + 1.0  # a class unseen
        shares = counts / counts.sum()  # in training is no certainty that it never comes
        constant = np.tile(shares, (len(y_val), 1))
    else:
        constant = np.full(len(y_val), float(np.mean(y_train)))
    loss = evaluate(y_val, constant).get(key)
    if loss is None:
        return
    summary["constant_val"] = {key: loss}
    for row in summary["members"]:
        if (row.get("val_scores") or {}).get(key, -np.inf) > loss:
            row["worse_than_constant"] = True


def _refit_row(r: MemberRecord, data: Dataset, metric: str) -> dict[str, Any]:
    """A member's refit on all rows, for its row of the summary."""
    row: dict[str, Any] = {
        "status": r.status,
        "run_id": r.run_id,
        "train_seconds": r.train_seconds,
        "train_cpu_seconds": r.fit.get("train_cpu_seconds"),
        "predict_ms_per_1000": r.fit.get("predict_ms_per_1000"),
    }
    if r.status == "FINISHED":
        test = evaluate(data.y_test, r.test)
        row.update(test_metric=test[metric], test_scores=test)
    if cut := cut_short(r.fit):
        row["cut_short"] = cut
    if r.error:
        row["error"] = r.error
    return row


def _refit(
    spec: RunSpec,
    data: Dataset,
    members: tuple[MemberSpec, ...],
    records: list[MemberRecord],
    tree: RunTree,
    deadline: float | None,
) -> dict[str, MemberRecord]:
    """``runner.refit``: every bagged member that finished fits once more on all pooled rows,
    for as long as its folds trained (its kind's ``refit_params``), as trials of a Tune run
    after the folds. Returns each refit's record by member name, whatever its status."""
    import models
    from models.training import TrainingOptions

    finished = {r.name for r in records if r.status == "FINISHED"}
    refits = []
    for m in members:
        if m.name not in finished or not m.folds:
            continue
        fits = [tree.records[fold_label(m.name, k)].fit for k in range(m.folds)]
        hparams, training = models.get(m.model).refit_params(
            m.hparams, m.training.as_params(), fits
        )
        options = TrainingOptions.from_params(training)
        refits.append(replace(m, hparams=hparams, training=options, folds=0, refit=True))
    if not refits:
        return {}
    done = _train_stage(spec, data, tuple(refits), tree, None, deadline)
    return {r.name.removesuffix("/refit"): r for r in done}


def _ensemble_pool(spec: RunSpec, data: Dataset, tree: RunTree, handles: list[Any]) -> str:
    """The name of the ensemble pool actor of an ensemble-aware search (its handle kept in
    ``handles``), holding every member of the final stage that finished so far."""
    import ray

    from runner import pool

    name = f"ensemble-pool-{spec.sweep_id}"
    metric = headline_metric(data.task.is_classification, spec.metric)
    actor = pool.start(name, data.y_val, spec.seed, metric, spec.ensemble.candidates)
    handles.append(actor)
    finished = {
        label: r.val
        for label, r in tree.records.items()
        if r.status == "FINISHED"
        and r.val is not None
        and plan.member_of(label, spec.members) is not None
    }
    ray.get(actor.sync.remote(finished))
    return name


def _resume_retrains(spec: RunSpec, records: list[MemberRecord]) -> bool:
    """Whether a resume with a larger budget would train some member the time limit skipped
    or left a bag short of (``_skipped_earlier``'s sweeps: one stage, no refits, no student,
    not a searched member's samples)."""
    if spec.stages or spec.refit or spec.student:
        return False
    for r in records:
        member = plan.member_of(r.name, spec.members)
        cut = r.status == "SKIPPED" or bool(r.fit.get("folds_missing"))
        if cut and member is not None and not member.search:
            return True
    return False


def _skipped_earlier(
    spec: RunSpec, tree: RunTree, members: tuple[MemberSpec, ...], stage: str | None
) -> set[str]:
    """The members that an earlier attempt's ``runner.time_limit`` skipped before they (or
    some of a bag's folds) started and that have not finished since, in a one-stage sweep
    without refits or a student (whose later Tune runs and saved models a retry would change
    under Tune's restored state). A searched member's skipped samples stay skipped: Tune's
    restored search knows them as done."""
    if stage is not None or spec.stages or spec.refit or spec.student:
        return set()
    found = set()
    for label, (_, status, _) in tree.ended.items():
        member = plan.member_of(label, members)
        if status == "SKIPPED" and member and label not in tree.finished and not member.search:
            found.add(member.name)
    return found


def _train_stage(
    spec: RunSpec,
    data: Dataset,
    members: tuple[MemberSpec, ...],
    tree: RunTree,
    stage: str | None,
    deadline: float | None = None,
    candidates: int | None = None,
) -> list[MemberRecord]:
    """Run one stage's members as Tune trials: the plain ones in one Tune run, each searched
    member in its own (restoring Tune's state on resume); raise SweepInterrupted if Tune
    stopped early. Returns the records in member order, samples by number. With
    ``candidates`` (the ensemble's), members that cannot be among them let go of their
    predictions as they finish."""
    held = None
    if candidates is not None:
        metric = headline_metric(data.task.is_classification, spec.metric)
        held = HeldPredictions(tree.records, data.y_val, data.y_test, metric, candidates)
    callback = MemberCallback(tree, members, stage, held, spec.background_writes)
    # kept from an earlier attempt, loaded first: an ensemble-aware search's pool holds them
    with tempfile.TemporaryDirectory() as tmp:
        for label in tree.finished:
            member = plan.member_of(label, members)
            if member is not None and label not in tree.records:
                tree.records[label] = tree.finished_record(label, member.model, tmp)
                if held is not None and split_fold_label(label) is None:
                    held.add(tree.records[label])
        # skipped by an earlier attempt's time limit: never started, so trained now (by a
        # fresh Tune run of the members, or a bag's folds: Tune's state holds them as done)
        retry = _skipped_earlier(spec, tree, members, stage)
        for label in tree.ended:  # stopped early by a scheduler: done, and not trained again
            member = plan.member_of(label, members)
            if member is None or label in tree.records or label in tree.finished:
                continue
            if member.name not in retry:
                tree.records[label] = tree.ended_record(label, member.model)
    results: list[Any] = []
    pools: list[Any] = []  # the pool actors' handles, alive while trials ask them
    runs = plan.tune_runs(spec, members, stage)
    view = None
    if spec.verbose >= 1:  # one view over the stage: its counts, best and clock go on
        from runner.progress import ProgressView

        metric = headline_metric(data.task.is_classification, spec.metric)
        view = ProgressView(
            sum(r.trials(spec) for r in runs),
            metric,
            verbose=spec.verbose,
            deadline=deadline,
            began=None if deadline is None else deadline - float(spec.time_limit or 0),
        )
    try:
        for run in runs:
            pool = None
            if run.searched is not None and spec.search.objective == "ensemble":
                pool = _ensemble_pool(spec, data, tree, pools)
            # Tune's state may lag MLflow's: members it would train again are FINISHED there
            done = frozenset(tree.finished)
            restore = tree.resumed and not {m.name for m in run.members} & retry
            results += list(_tune(spec, data, run, callback, restore, deadline, pool, done, view))
            if signals.stop_requested():  # Tune returns normally when a signal stops it
                break
    finally:
        callback.writer.close()
    for result in results:  # finished in Tune, never logged: the store had failed
        callback.replay(result)
    for result in results:  # saved models, also of members restored from Tune's state
        found = plan.saved_model(result)
        if found is not None and (record := tree.records.get(found[0])) is not None:
            record.model_path = record.model_path or found[1]
    mine = [r for label, r in tree.records.items() if plan.member_of(label, members)]
    unfinished = [
        m.name
        for m in members
        if sum(plan.belongs(r.name, m) for r in mine) < plan.trials_of(m, spec)
    ]
    if unfinished:  # Tune returns normally when stopped by a signal
        raise SweepInterrupted(
            f"sweep {spec.sweep_id} interrupted before {', '.join(unfinished)} finished; "
            f"its MLflow runs are marked KILLED; resume with runner.sweep_id={spec.sweep_id}"
        )
    if signals.stop_requested():  # the signal came as the last trials ended
        raise SweepInterrupted(
            f"sweep {spec.sweep_id} interrupted as its trials finished; resume with "
            f"runner.sweep_id={spec.sweep_id} to finish it"
        )
    _assemble_bags(data, members, tree)
    mine = [
        r
        for label, r in tree.records.items()
        if plan.member_of(label, members) and split_fold_label(label) is None
    ]
    return sorted(mine, key=lambda r: plan.order_key(r.name, members))


def _assemble_bags(data: Dataset, members: tuple[MemberSpec, ...], tree: RunTree) -> None:
    """Each bagged member whose folds all finished becomes one member record (logged on its
    run, FINISHED); one with a fold that did not finish ends FAILED, saying which."""
    for m in members:
        if not m.folds or m.name in tree.records:  # not bagged, or finished earlier
            continue
        folds, missing, skipped = bags.fold_records(m, tree.records)
        if missing:
            reason = f"{len(missing)} of {m.folds} folds did not finish: {'; '.join(missing)}"
            if skipped:
                cut = {"folds_missing": len(missing), "folds": m.folds}
                tree.skip_member(tree.bags[m.name], m.name, m.model, reason, cut)
            else:
                tree.fail_bag(m.name, m.model, reason)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            result, final = bags.assemble(tree, data, m, folds, Path(tmp))
            tree.finish_bag(m.name, m.model, result, final)


def run(
    spec: RunSpec,
    data: Dataset,
    stage_data: dict[str, Dataset] | None = None,
    start: float | None = None,
    lease: Lease | None = None,
) -> dict[str, Any]:
    """Train the earlier stages, then the final members, as Tune trials; ensemble the finished
    final members; return the summary. Runs inside a Ray session (``runner.launch.run`` starts
    one); ``stage_data`` holds each earlier stage's dataset, ``start`` when the sweep began,
    ``lease`` the sweep's lease (its heartbeats are copied onto the parent run)."""
    start = time.perf_counter() if start is None else start
    if (spec.cluster.address or "").startswith("ray://"):
        return _run_on_head(spec, data, stage_data or {}, start)
    return _run(spec, data, stage_data or {}, start, lease)


CANCEL_SECONDS = 60.0  # how long a stopped Ray Client sweep may take to end its runs


def _run_on_head(
    spec: RunSpec, data: Dataset, stage_data: dict[str, Dataset], start: float
) -> dict[str, Any]:
    """Ray Client (``ray://``): Tune would run its loop on the head anyway, so the whole sweep
    runs there, as one zero-CPU task pinned to the head node; the MLflow writer (the task)
    stays single. summary.json is written here, where the user ran the command."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next(
        n["NodeID"]
        for n in ray.nodes()
        if n["Alive"] and "node:__internal_head__" in n.get("Resources", {})
    )
    task = ray.remote(num_cpus=0)(_run_in_scratch).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)
    )
    ref = task.remote(spec, data, stage_data, time.perf_counter() - start)
    try:
        summary = ray.get(ref)
    except ray.exceptions.RayTaskError as err:  # the runner's own error, not Ray's traceback
        cause = getattr(err, "cause", None)
        if isinstance(cause, SAID_IN_ONE_LINE):
            raise cause from None
        raise  # anything else keeps the head's traceback
    except KeyboardInterrupt:  # Ctrl+C or SIGTERM here: the sweep on the head stops as one
        ray.cancel(ref)  # raises KeyboardInterrupt in the task: its open runs end KILLED
        with contextlib.suppress(Exception):
            ray.get(ref, timeout=CANCEL_SECONDS)
        raise
    summary["wall_seconds"] = round(time.perf_counter() - start, 2)
    report.write_summary(summary, spec.output_dir)
    return summary


def _store_failed(err: Exception, started: bool, spec: RunSpec) -> StoreFailed | None:
    """StoreFailed saying in one line (and how to resume) that the MLflow store caused
    ``err`` as the sweep started or, ``started``, mid-sweep; None when something else did."""
    cause = store_error(err)
    if cause is None:
        return None
    said = store_error_said(cause)
    if not started:
        return StoreFailed(
            f"the tracking store failed as the sweep started ({said}); "
            "nothing was trained: run the command again (runner.sweep_id="
            f"{spec.sweep_id}) once the store answers"
        )
    return StoreFailed(
        f"the tracking store failed mid-sweep ({said}); what "
        f"finished is kept in Tune's storage ({spec.storage_path}); resume with "
        f"runner.sweep_id={spec.sweep_id} once the store answers"
    )


def _run_in_scratch(
    spec: RunSpec, data: Dataset, stage_data: dict[str, Dataset], elapsed: float = 0.0
) -> dict[str, Any]:
    """``_run`` with the output folder in a scratch directory of the machine it runs on,
    after probing the MLflow store from there (the client could not); ``elapsed``: the
    seconds the command had run before (runner.time_limit counts them)."""
    from runner.store_probe import StoreUnavailable, probe

    try:
        probe(spec.tracking_uri, spec.tracking_timeout)
    except StoreUnavailable as err:
        raise StoreFailed(f"from the head: {err}") from None
    with tempfile.TemporaryDirectory(prefix="runner-") as tmp:
        return _run(replace(spec, output_dir=tmp), data, stage_data, time.perf_counter() - elapsed)


def _run(
    spec: RunSpec,
    data: Dataset,
    stage_data: dict[str, Dataset],
    start: float,
    lease: Lease | None = None,
) -> dict[str, Any]:
    from runner.cluster import check_resources, node_resources

    nodes, local = node_resources(), spec.cluster.kind == "local"
    check_resources(spec.all_members(), nodes, local)  # before any MLflow run
    if spec.student is not None:
        check_resources([spec.student], nodes, local, student=True)
    signals.clear_tune_stopped()  # a sweep before this one in the process (Hydra's -m) stopped
    deadline = None  # runner.time_limit counts from the start of the command, as wall time
    if spec.time_limit is not None:
        deadline = time.time() - (time.perf_counter() - start) + spec.time_limit
    try:
        tree = RunTree(spec, data.fingerprint, data.sizes(), lease, task=data.task)
    except Exception as err:  # the store went away since the command probed it
        failed = _store_failed(err, False, spec)
        if failed is None:
            raise
        raise failed from None
    spec = replace(spec, sweep_id=tree.sweep_id)
    status, guard = "FAILED", None
    try:  # from here the parent run exists: a Ctrl+C at any point ends it KILLED
        # ends the runs left open if this process dies without its finally (SIGKILL, head lost)
        guard = sentinel.start(
            spec.tracking_uri,
            tree.experiment_id,
            tree.sweep_id,
            tree.parent_run_id,
            tree.driver_token,
        )
        if spec.verbose:
            verb = "resuming" if tree.resumed else "sweep"
            print(
                f"{verb} {spec.sweep_id} of {spec.experiment!r}: parent run {tree.parent_run_id} "
                f"in {redact_uri(spec.tracking_uri)}",
                flush=True,
            )
        memory = MemoryWatch.start()
        saved: dict[str, str] = {}  # "stage.member" -> saved model path
        stage_rows: dict[str, list[dict[str, Any]]] = {}
        for st in spec.stages:
            st_data = stage_data[st.name]
            members = plan.resolve_bases(st.members, saved)
            st_records = _train_stage(spec, st_data, members, tree, st.name, deadline)
            metric = headline_metric(st_data.task.is_classification)
            stage_rows[st.name] = [_member_row(r, st_data, metric) for r in st_records]
            saved.update({f"{st.name}.{r.name}": r.model_path for r in st_records if r.model_path})
        members = plan.resolve_bases(spec.members, saved)
        records = _train_stage(spec, data, members, tree, None, deadline, spec.ensemble.candidates)
        refits = _refit(spec, data, members, records, tree, deadline) if spec.refit else {}
        release_freed()  # what thousands of trials' results left free, before the ensemble
        metric = headline_metric(data.task.is_classification, spec.metric)
        summary: dict[str, Any] = {
            "experiment": spec.experiment,
            "sweep_id": spec.sweep_id,
            "parent_run_id": tree.parent_run_id,
            "experiment_id": tree.experiment_id,
            "tracking_uri": redact_uri(spec.tracking_uri),
            "metric": metric,
            "data": {
                "name": data.name,
                "fingerprint": data.fingerprint,
                "rows": data.sizes(),
                "classes": None if data.task.labels is None else list(data.task.labels),
            },
            "members": [
                {
                    **_member_row(r, data, metric),
                    **(
                        {"refit": _refit_row(refits[r.name], data, metric)}
                        if r.name in refits
                        else {}
                    ),
                }
                for r in records
            ],
            "stages": stage_rows,
            "ensemble": None,
        }
        _flag_worse_than_constant(summary, data)
        finished = sum(r.status == "FINISHED" for r in records)
        limited = any(r.status == "SKIPPED" or r.fit.get("folds_missing") for r in records)
        if not finished or (finished < 2 and limited):
            # too few to ensemble because of the time limit: not finished, so a resume with a
            # larger budget trains what was skipped (a FINISHED sweep would refuse it)
            summary["wall_seconds"] = round(time.perf_counter() - start, 2)
            report.write_summary(summary, spec.output_dir)
            skipped = sum(r.status == "SKIPPED" for r in records)
            why = (
                f"{skipped} skipped by runner.time_limit (their runs' runner.skipped tags)"
                if skipped
                else ""
            )
            failed = len(records) - skipped - finished
            why += ("; " if why and failed else "") + (
                f"{failed} failed or stopped (their runs' runner.error tags)" if failed else ""
            )
            if skipped and not _resume_retrains(spec, records):
                why += (
                    "; a resume would not train them (a sweep with refits, a student, stages "
                    "or a searched member): start a new sweep with a larger runner.time_limit"
                )
            if not finished:
                raise SweepFailed(f"no member finished of {len(records)}: {why}")
            raise SweepFailed(
                f"only {finished} member of {len(records)} finished, too few to ensemble: {why}"
            )
        try:
            summary["ensemble"], targets = _ensemble(spec, data, tree, records, refits)
        except NoEnsemble as err:
            summary["ensemble"], targets = None, None
            if len(records) < 2:  # one member asked for: no ensemble, as asked
                log.warning("no ensemble: %s", err)
            else:  # the members are kept; the command says so and exits 2
                summary["no_ensemble"] = str(err)
                tree.client.set_tag(tree.parent_run_id, NO_ENSEMBLE, str(err)[:5000])
        if spec.student is not None and (summary["ensemble"] or {}).get("model_uri"):
            summary["student"] = _distill(spec, data, tree, summary["ensemble"], deadline, targets)
        elif spec.student is not None and spec.verbose:
            print(f"student {spec.student.name}: not distilled, there is no served ensemble")
        summary["wall_seconds"] = round(time.perf_counter() - start, 2)
        summary["driver"] = memory.report(len(tree.records))
        driver = {f"driver_{key}": value for key, value in summary["driver"].items()}
        tree.log_metrics(tree.parent_run_id, driver)
        path = report.write_summary(summary, spec.output_dir)
        texts = (
            report.leaderboard(summary),
            report.leaderboard_markdown(summary),
            report.leaderboard_html(summary),
        )
        tree.log_sweep_outputs(
            path,
            dict(zip(LEADERBOARDS, texts, strict=True)),
            (summary["ensemble"] or {}).get("run_id"),
        )
        status = "FINISHED"
        return summary
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as err:
        failed = _store_failed(err, True, spec)
        if failed is None:
            raise
        raise failed from None
    finally:
        closed = tree.close(status, None if status != "KILLED" else signals.reason())
        if guard is not None and closed:  # else the sentinel ends what stayed open
            guard.disarm()
