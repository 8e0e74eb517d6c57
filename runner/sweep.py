"""One sweep end to end on the driver: Tune trials -> MLflow tree -> ensemble -> summary."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ensembles import export, stage
from ensembles.metrics import evaluate, headline_metric
from ensembles.stage import MemberPredictions
from runner import plan, report
from runner.cluster import ray_session
from runner.data import Dataset
from runner.spec import MemberSpec, RunSpec
from runner.tracking import MemberCallback, MemberRecord, SweepTracker, redact_uri
from runner.trial import MODEL_FILES

log = logging.getLogger(__name__)


class SweepFailed(RuntimeError):
    """No member finished, so there is nothing to ensemble."""


class SweepInterrupted(KeyboardInterrupt):
    """Tune stopped early (Ctrl+C, SIGTERM) with members unfinished."""


def _tune(
    spec: RunSpec,
    data: Dataset,
    members: tuple[MemberSpec, ...],
    callback: MemberCallback,
    stage: str | None = None,
    restore: bool = False,
) -> Any:
    from ray import tune

    from runner.progress import ProgressPrinter
    from runner.trial import train_member

    callbacks = [callback]
    if spec.verbose < 2:
        # Tune's new console output prints its header whatever the verbosity; the classic
        # reporter honours verbose=0, and our ProgressPrinter shows progress instead.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if spec.verbose >= 1:
        metric = headline_metric(data.task.is_classification)
        callbacks.append(ProgressPrinter(len(members), metric))
    trainable = tune.with_resources(
        tune.with_parameters(train_member, data=data), resources=plan.trial_resources
    )
    path = Path(spec.storage_path) / plan.experiment_name(spec, stage)
    if restore and (path / "tuner.pkl").exists():
        tuner = tune.Tuner.restore(str(path), trainable, restart_errored=True)
        # The restored RunConfig holds unpickled copies of the first attempt's callbacks;
        # this attempt's callbacks (live MLflow tracker) replace them.
        tuner._local_tuner.get_run_config().callbacks = callbacks
        return tuner.fit()
    tuner = tune.Tuner(
        trainable,
        param_space=plan.param_space(members),
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            trial_name_creator=plan.trial_name,
            trial_dirname_creator=plan.trial_name,
        ),
        run_config=tune.RunConfig(
            name=plan.experiment_name(spec, stage),
            storage_path=spec.storage_path,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            verbose=0 if spec.verbose < 2 else 1,
        ),
    )
    return tuner.fit()


def _ensemble(
    spec: RunSpec, data: Dataset, tracker: SweepTracker, records: list[MemberRecord]
) -> dict[str, Any] | None:
    """Run the ensemble stage on the finished members and log its run; None if < 2 usable."""
    finished = [r for r in records if r.status == "FINISHED"]
    members = [MemberPredictions(r.name, r.val, r.test, r.fingerprint) for r in finished]
    e = spec.ensemble
    try:
        result = stage.run(
            e.method,
            e.params,
            members,
            data.y_val,
            data.y_test,
            random_state=spec.seed,
            cv_folds=e.cv_folds,
            n_boot=e.n_boot,
            fingerprint=data.fingerprint,
        )
    except ValueError as err:
        log.warning("no ensemble: %s", err)
        return None
    run_id = tracker.child("ensemble", "ensemble", {"runner.members": ",".join(result.names)})
    export.log_report(tracker.client, run_id, result)
    out = {**result.summary(), "run_id": run_id, "model_uri": None, "registered_version": None}
    if e.log_model:
        runs = {r.name: r.run_id for r in finished}
        out["model_uri"] = export.log_pyfunc(
            tracker.client, run_id, result, runs, data.input_spec.n_features
        )
        if e.register_as:
            out["registered_version"] = export.register(tracker.client, run_id, e.register_as)
    tracker.terminate(run_id, "FINISHED")
    return out


def _member_row(r: MemberRecord, data: Dataset, metric: str) -> dict[str, Any]:
    row: dict[str, Any] = {"name": r.name, "model": r.model, "status": r.status, "run_id": r.run_id}
    if r.status == "FINISHED":
        val, test = evaluate(data.y_val, r.val), evaluate(data.y_test, r.test)
        row.update(
            val_metric=val[metric], test_metric=test[metric], val_scores=val, test_scores=test
        )
    row["train_seconds"] = r.train_seconds
    if r.error:
        row["error"] = r.error
    return row


def _train_stage(
    spec: RunSpec,
    data: Dataset,
    members: tuple[MemberSpec, ...],
    tracker: SweepTracker,
    stage: str | None,
) -> list[MemberRecord]:
    """Run one stage's members as Tune trials (restoring Tune's state on resume); raise
    SweepInterrupted if Tune stopped early."""
    callback = MemberCallback(tracker, members, stage)
    results = _tune(spec, data, members, callback, stage, restore=tracker.resumed)
    with tempfile.TemporaryDirectory() as tmp:
        for m in members:
            if m.name in tracker.finished:  # kept from an earlier attempt
                callback.records[m.name] = tracker.finished_record(m.name, m.model, tmp)
    for result in results:  # saved models, also of members restored from Tune's state
        record = callback.records.get(result.config["member"]["name"])
        if record is not None and record.model_path is None and result.checkpoint is not None:
            model_file = MODEL_FILES[result.config["member"]["kind"]]
            if Path(result.checkpoint.path, model_file).is_file():
                record.model_path = str(Path(result.checkpoint.path, model_file))
    unfinished = [m.name for m in members if m.name not in callback.records]
    if unfinished:  # Tune returns normally when stopped by a signal
        raise SweepInterrupted(
            f"sweep {spec.sweep_id} interrupted before {', '.join(unfinished)} finished; "
            f"its MLflow runs are marked KILLED; resume with runner.sweep_id={spec.sweep_id}"
        )
    return [callback.records[m.name] for m in members]


def run(
    spec: RunSpec, data: Dataset, stage_data: dict[str, Dataset] | None = None
) -> dict[str, Any]:
    """Train the earlier stages, then the final members, as Tune trials; ensemble the finished
    final members; return the summary. ``stage_data`` holds each earlier stage's dataset."""
    start = time.perf_counter()
    tracker = SweepTracker(spec, data.fingerprint, data.sizes())
    spec = replace(spec, sweep_id=tracker.sweep_id)
    status = "FAILED"
    try:
        saved: dict[str, str] = {}  # "stage.member" -> saved model path
        stage_rows: dict[str, list[dict[str, Any]]] = {}
        with ray_session(spec.cluster, spec.verbose):
            for st in spec.stages:
                st_data = (stage_data or {})[st.name]
                members = plan.resolve_bases(st.members, saved)
                st_records = _train_stage(spec, st_data, members, tracker, st.name)
                metric = headline_metric(st_data.task.is_classification)
                stage_rows[st.name] = [_member_row(r, st_data, metric) for r in st_records]
                saved.update(
                    {f"{st.name}.{r.name}": r.model_path for r in st_records if r.model_path}
                )
            members = plan.resolve_bases(spec.members, saved)
            records = _train_stage(spec, data, members, tracker, None)
        metric = headline_metric(data.task.is_classification)
        summary: dict[str, Any] = {
            "experiment": spec.experiment,
            "sweep_id": spec.sweep_id,
            "parent_run_id": tracker.parent_run_id,
            "experiment_id": tracker.experiment_id,
            "tracking_uri": redact_uri(spec.tracking_uri),
            "metric": metric,
            "data": {"name": data.name, "fingerprint": data.fingerprint, "rows": data.sizes()},
            "members": [_member_row(r, data, metric) for r in records],
            "stages": stage_rows,
            "ensemble": None,
        }
        if not any(r.status == "FINISHED" for r in records):
            summary["wall_seconds"] = round(time.perf_counter() - start, 2)
            report.write_summary(summary, spec.output_dir)
            raise SweepFailed(
                f"no member finished ({len(records)} tried); see the member runs' runner.error tags"
            )
        summary["ensemble"] = _ensemble(spec, data, tracker, records)
        summary["wall_seconds"] = round(time.perf_counter() - start, 2)
        path = report.write_summary(summary, spec.output_dir)
        tracker.client.log_artifact(tracker.parent_run_id, str(path))
        tracker.client.log_text(
            tracker.parent_run_id, report.leaderboard(summary), "leaderboard.txt"
        )
        status = "FINISHED"
        return summary
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.close(status)
