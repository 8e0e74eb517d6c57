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
from ensembles.metrics import evaluate, greater_is_better, headline_metric
from ensembles.stage import MemberPredictions
from runner import plan, report
from runner.data import Dataset
from runner.errors import SweepFailed, SweepInterrupted
from runner.spec import MemberSpec, RunSpec
from runner.tracking import (
    MemberCallback,
    MemberRecord,
    SweepTracker,
    redact_uri,
)
from runner.trial import MODEL_FILES

log = logging.getLogger(__name__)


def _tune(
    spec: RunSpec,
    data: Dataset,
    members: tuple[MemberSpec, ...],
    callback: MemberCallback,
    name: str,
    restore: bool = False,
    searched: MemberSpec | None = None,
) -> Any:
    """One Tune run: a grid over ``members``, or ``search.num_samples`` samples of the
    ``searched`` member; restores Tune's state from an earlier attempt when asked."""
    from ray import tune

    from runner.progress import ProgressView
    from runner.search import searched_config, tune_settings
    from runner.trial import train_member

    callbacks = [callback]
    if spec.verbose < 2:
        # Tune's new console output prints its header whatever the verbosity; the classic
        # reporter honours verbose=0, and our ProgressView shows progress instead.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if spec.verbose >= 1:
        metric = headline_metric(data.task.is_classification)
        total = spec.search.num_samples if searched else len(members)
        callbacks.append(ProgressView(total, metric, verbose=spec.verbose))
    trainable = tune.with_resources(
        tune.with_parameters(train_member, data=data), resources=plan.trial_resources
    )
    path = Path(spec.storage_path) / name
    if restore and (path / "tuner.pkl").exists():
        tuner = tune.Tuner.restore(str(path), trainable, restart_errored=True)
        # The restored RunConfig holds unpickled copies of the first attempt's callbacks;
        # this attempt's callbacks (live MLflow tracker) replace them.
        tuner._local_tuner.get_run_config().callbacks = callbacks
        return tuner.fit()
    if searched is None:
        space, settings = plan.param_space(members), {}
    else:
        space = {"member": searched_config(searched.to_config(), searched.search)}
        settings = tune_settings(spec.search, searched.training.epochs)
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
            name=name,
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
    run_id = tracker.child(
        "ensemble",
        "ensemble",
        {"runner.members": ",".join(result.names), "runner.data_fingerprint": data.fingerprint},
    )
    export.log_report(tracker.client, run_id, result, data.y_test)
    out = {**result.summary(), "run_id": run_id, "model_uri": None, "registered_version": None}
    if e.log_model:
        runs = {r.name: r.run_id for r in finished}
        out["model_uri"] = export.log_pyfunc(
            tracker.client, run_id, result, runs, data.input_spec.n_features
        )
        if e.register_as:
            version = export.register(tracker.client, run_id, e.register_as)
            out["registered_version"] = version
            if e.champion:
                metric = result.metric
                out["champion"] = export.champion_challenger(
                    tracker.client,
                    e.register_as,
                    run_id,
                    version,
                    metric,
                    result.test_scores[metric],
                    greater_is_better(metric),
                    data.fingerprint,
                )
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
    """Run one stage's members as Tune trials: the plain ones in one Tune run, each searched
    member in its own (restoring Tune's state on resume); raise SweepInterrupted if Tune
    stopped early. Returns the records in member order, samples by index."""
    callback = MemberCallback(tracker, members, stage)
    base = plan.experiment_name(spec, stage)
    plain = tuple(m for m in members if not m.search)
    results: list[Any] = []
    if plain:
        results += list(_tune(spec, data, plain, callback, base, tracker.resumed))
    for m in members:
        if m.search:
            name = f"{base}-search-{m.name}"
            results += list(_tune(spec, data, (m,), callback, name, tracker.resumed, m))
    with tempfile.TemporaryDirectory() as tmp:
        for label in tracker.finished:  # kept from an earlier attempt
            member = next((m for m in members if _belongs(label, m)), None)
            if member is not None and label not in callback.records:
                callback.records[label] = tracker.finished_record(label, member.model, tmp)
    for result in results:  # saved models, also of members restored from Tune's state
        if not result.config or not result.metrics:  # an interrupted trial without results
            continue
        config = result.config["member"]
        record = callback.records.get(plan.label(config, result.metrics.get("experiment_tag", "0")))
        if record is not None and record.model_path is None and result.checkpoint is not None:
            model_file = Path(result.checkpoint.path, MODEL_FILES[config["kind"]])
            if model_file.is_file():
                record.model_path = str(model_file)
    unfinished = [
        m.name
        for m in members
        if sum(_belongs(label, m) for label in callback.records)
        < (spec.search.num_samples if m.search else 1)
    ]
    if unfinished:  # Tune returns normally when stopped by a signal
        raise SweepInterrupted(
            f"sweep {spec.sweep_id} interrupted before {', '.join(unfinished)} finished; "
            f"its MLflow runs are marked KILLED; resume with runner.sweep_id={spec.sweep_id}"
        )
    order = {m.name: i for i, m in enumerate(members)}
    return sorted(
        callback.records.values(),
        key=lambda r: (
            order[next(m.name for m in members if _belongs(r.name, m))],
            int(r.name.rsplit("-", 1)[1]) if r.name not in order else -1,
        ),
    )


def _belongs(label: str, member: MemberSpec) -> bool:
    """Whether a record label is this member's (its name, or NAME-K of its samples)."""
    if not member.search:
        return label == member.name
    head, _, index = label.rpartition("-")
    return head == member.name and index.isdigit()


def run(
    spec: RunSpec,
    data: Dataset,
    stage_data: dict[str, Dataset] | None = None,
    start: float | None = None,
) -> dict[str, Any]:
    """Train the earlier stages, then the final members, as Tune trials; ensemble the finished
    final members; return the summary. Runs inside a Ray session (``runner.launch.run`` starts
    one); ``stage_data`` holds each earlier stage's dataset, ``start`` when the sweep began."""
    start = time.perf_counter() if start is None else start
    if (spec.cluster.address or "").startswith("ray://"):
        return _run_on_head(spec, data, stage_data or {}, start)
    return _run(spec, data, stage_data or {}, start)


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
    summary = ray.get(task.remote(spec, data, stage_data))
    summary["wall_seconds"] = round(time.perf_counter() - start, 2)
    report.write_summary(summary, spec.output_dir)
    return summary


def _run_in_scratch(spec: RunSpec, data: Dataset, stage_data: dict[str, Dataset]) -> dict[str, Any]:
    """``_run`` with the output folder in a scratch directory of the machine it runs on."""
    with tempfile.TemporaryDirectory(prefix="runner-") as tmp:
        return _run(replace(spec, output_dir=tmp), data, stage_data, time.perf_counter())


def _run(
    spec: RunSpec, data: Dataset, stage_data: dict[str, Dataset], start: float
) -> dict[str, Any]:
    tracker = SweepTracker(spec, data.fingerprint, data.sizes())
    spec = replace(spec, sweep_id=tracker.sweep_id)
    if spec.verbose:
        verb = "resuming" if tracker.resumed else "sweep"
        print(
            f"{verb} {spec.sweep_id} of {spec.experiment!r}: parent run {tracker.parent_run_id} "
            f"in {redact_uri(spec.tracking_uri)}",
            flush=True,
        )
    status = "FAILED"
    try:
        saved: dict[str, str] = {}  # "stage.member" -> saved model path
        stage_rows: dict[str, list[dict[str, Any]]] = {}
        for st in spec.stages:
            st_data = stage_data[st.name]
            members = plan.resolve_bases(st.members, saved)
            st_records = _train_stage(spec, st_data, members, tracker, st.name)
            metric = headline_metric(st_data.task.is_classification)
            stage_rows[st.name] = [_member_row(r, st_data, metric) for r in st_records]
            saved.update({f"{st.name}.{r.name}": r.model_path for r in st_records if r.model_path})
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
        boards = {
            "leaderboard.txt": report.leaderboard(summary),
            "leaderboard.md": report.leaderboard_markdown(summary),
            "leaderboard.html": report.leaderboard_html(summary),
        }
        ensemble_run = (summary["ensemble"] or {}).get("run_id")
        for name, text in boards.items():
            tracker.client.log_text(tracker.parent_run_id, text, name)
            if ensemble_run and name != "leaderboard.txt":
                tracker.client.log_text(ensemble_run, text, name)
        status = "FINISHED"
        return summary
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.close(status)
