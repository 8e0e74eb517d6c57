"""The driver-side MLflow run tree: one parent run per sweep, a nested child per member and one
for the ensemble. The driver is the only MLflow writer; a Tune callback feeds it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from runner.errors import ResumeError, SweepAlreadyFinished
from runner.spec import MemberSpec, RunSpec, config_hash

log = logging.getLogger(__name__)

ROLE, EXPERIMENT, SWEEP, MEMBER, MODEL = (
    "runner.role",
    "runner.experiment",
    "runner.sweep_id",
    "runner.member",
    "runner.model",
)
PARENT = "mlflow.parentRunId"
CONTROL_KEYS = {*AUTO_RESULT_KEYS, "epoch", "final", "done", "trial_id", "experiment_tag"}
MAX_PARAM_CHARS = 6000


def redact_uri(uri: str) -> str:
    """The URI without a password, safe to print and to store."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def store_exists(uri: str) -> bool:
    """False only for a SQLite store whose file does not exist yet (MLflow would create it)."""
    if not uri.startswith("sqlite:///"):
        return True
    return Path(uri[len("sqlite:///") :]).exists()


def warm_store(uri: str, experiment: str) -> None:
    """Open the MLflow store and look up the experiment, so that a new SQLite file's schema
    migrations (about a second) run now; creates no run, and leaves errors for the tracker to
    raise where they can be reported."""
    with contextlib.suppress(Exception):
        MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys, for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _params(values: Mapping[str, Any]) -> list[Param]:
    return [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flatten(values).items()]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class MemberRecord:
    """What the driver knows about a member once its trial ends."""

    name: str
    model: str
    run_id: str
    status: str
    train_seconds: float | None = None
    val: np.ndarray | None = None
    test: np.ndarray | None = None
    fingerprint: str | None = None
    error: str | None = None
    model_path: str | None = None  # the saved model in Tune's storage (local filesystems)


class SweepTracker:
    """Creates (or, on resume, re-attaches to) the sweep's parent run and its children;
    nothing is left RUNNING when it closes."""

    def __init__(self, spec: RunSpec, fingerprint: str, dataset_sizes: Mapping[str, int]) -> None:
        self.spec = spec
        self.client = MlflowClient(tracking_uri=spec.tracking_uri)
        experiment = self.client.get_experiment_by_name(spec.experiment)
        self.experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(spec.experiment)
        )
        self.finished: dict[str, str] = {}  # member -> FINISHED run id from an earlier attempt
        parent = self._existing_parent()
        self.sweep_id = parent.data.tags[SWEEP] if parent is not None else spec.sweep_id
        self.base_tags = {EXPERIMENT: spec.experiment, SWEEP: self.sweep_id}
        if parent is not None:
            self._attach(parent, fingerprint)
            return
        parent = self.client.create_run(
            self.experiment_id,
            run_name=f"{spec.experiment}-{spec.sweep_id}",
            tags={**self.base_tags, ROLE: "sweep", "runner.data_fingerprint": fingerprint},
        )
        self.parent_run_id = parent.info.run_id
        self._open: set[str] = {self.parent_run_id}
        self.client.log_batch(
            self.parent_run_id,
            params=_params(
                {
                    "data": {**vars(spec.data), "rows": dict(dataset_sizes)},
                    "ensemble": {"method": spec.ensemble.method, **spec.ensemble.params},
                    "members": ",".join(m.name for m in spec.all_members()),
                    "seed": spec.seed,
                }
            ),
        )

    @staticmethod
    def check_not_finished(spec: RunSpec) -> None:
        """Raise SweepAlreadyFinished if ``runner.sweep_id`` names a finished sweep."""
        if not spec.sweep_id or not store_exists(spec.tracking_uri):
            return
        client = MlflowClient(tracking_uri=spec.tracking_uri)
        experiment = client.get_experiment_by_name(spec.experiment)
        if experiment is None:
            return
        for run in client.search_runs(
            [experiment.experiment_id],
            f"tags.`{ROLE}` = 'sweep' and tags.`{SWEEP}` = '{spec.sweep_id}'",
        ):
            if run.info.status == "FINISHED":
                raise SweepAlreadyFinished(
                    f"sweep {spec.sweep_id} of {spec.experiment!r} already finished "
                    f"(parent run {run.info.run_id}); nothing to do"
                )

    @property
    def resumed(self) -> bool:
        """Whether this tracker re-attached to an earlier attempt of the sweep."""
        return self._resumed

    _resumed = False

    def _existing_parent(self) -> Any:
        """The parent run to re-attach to: the given sweep id's, or with ``runner.resume``
        the latest unfinished sweep of the experiment; None starts a new sweep."""
        spec = self.spec
        if spec.sweep_id:
            runs = self.client.search_runs(
                [self.experiment_id],
                f"tags.`{ROLE}` = 'sweep' and tags.`{SWEEP}` = '{spec.sweep_id}'",
            )
        elif spec.resume:
            runs = [
                r
                for r in self.client.search_runs(
                    [self.experiment_id],
                    f"tags.`{ROLE}` = 'sweep'",
                    order_by=["attributes.start_time DESC"],
                    max_results=50,
                )
                if r.info.status != "FINISHED"
            ][:1]
            if not runs:
                raise ResumeError(
                    f"runner.resume=true but experiment {spec.experiment!r} has no unfinished "
                    "sweep; pass runner.sweep_id=ID or drop runner.resume"
                )
        else:
            return None
        if not runs:
            return None
        parent = runs[0]
        if parent.info.status == "FINISHED":
            raise SweepAlreadyFinished(
                f"sweep {parent.data.tags[SWEEP]} of {spec.experiment!r} already finished "
                f"(parent run {parent.info.run_id}); nothing to do"
            )
        return parent

    def _attach(self, parent: Any, fingerprint: str) -> None:
        """Re-attach to an unfinished sweep: end its stale RUNNING runs as KILLED and note
        which members already FINISHED (they are kept, not trained again)."""
        old = parent.data.tags.get("runner.data_fingerprint")
        if old and old != fingerprint:
            raise ResumeError(
                f"sweep {self.sweep_id} ran on data split {old}, this config gives {fingerprint}; "
                "resume with the same data settings or start a new sweep"
            )
        self._resumed = True
        self.parent_run_id = parent.info.run_id
        self._open = {self.parent_run_id}
        if parent.info.status != "RUNNING":
            self.client.update_run(self.parent_run_id, status="RUNNING")
        hashes = {m.name: m.config_hash for m in self.spec.all_members()}
        children = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{SWEEP}` = '{self.sweep_id}' and tags.`{ROLE}` != 'sweep'",
            max_results=10000,
        )
        for run in children:
            tags = run.data.tags
            if run.info.status in ("RUNNING", "SCHEDULED"):
                self.client.set_tag(
                    run.info.run_id, "runner.error", "the driver stopped before this run ended"
                )
                self.client.set_terminated(run.info.run_id, "KILLED", end_time=_now_ms())
            elif run.info.status == "FINISHED" and tags.get(ROLE) == "member":
                name = tags.get(MEMBER)
                if name in hashes and tags.get("runner.config_hash") != hashes[name]:
                    raise ResumeError(
                        f"member {name!r} changed since sweep {self.sweep_id} started; resume "
                        "with the same config or start a new sweep"
                    )
                self.finished[name] = run.info.run_id
        self.client.set_tag(self.parent_run_id, "runner.resumed", "true")

    def finished_record(self, name: str, model: str, folder: str) -> MemberRecord:
        """Rebuild the record of a member FINISHED in an earlier attempt, from MLflow."""
        run_id = self.finished[name]
        path = self.client.download_artifacts(run_id, "predictions.npz", folder)
        info = json.loads(
            Path(self.client.download_artifacts(run_id, "member.json", folder)).read_text()
        )
        with np.load(path) as npz:
            return MemberRecord(
                name=name,
                model=model,
                run_id=run_id,
                status="FINISHED",
                train_seconds=float(info.get("train_seconds", 0.0)),
                val=npz["val"],
                test=npz["test"],
                fingerprint=str(npz["fingerprint"]),
            )

    def child(self, name: str, role: str, tags: Mapping[str, str] | None = None) -> str:
        """Create a RUNNING child run under the sweep's parent."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={**self.base_tags, ROLE: role, PARENT: self.parent_run_id, **(tags or {})},
        )
        self._open.add(run.info.run_id)
        return run.info.run_id

    def terminate(self, run_id: str, status: str) -> None:
        """End a run with ``status`` (FINISHED, FAILED or KILLED)."""
        self.client.set_terminated(run_id, status=status, end_time=_now_ms())
        self._open.discard(run_id)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log a batch of metrics in one call."""
        ts = _now_ms()
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def close(self, status: str) -> None:
        """End every run still open: children as KILLED (or ``status`` if FAILED), then parent."""
        for run_id in sorted(self._open - {self.parent_run_id}):
            self.terminate(run_id, "KILLED" if status == "FINISHED" else status)
        if self.parent_run_id in self._open:
            self.terminate(self.parent_run_id, status)


def error_reason(trial: Any) -> str:
    """The exception line of a failed trial's error (Tune writes it locally first)."""
    text = ""
    if trial.error_file and Path(trial.error_file).is_file():
        text = Path(trial.error_file).read_text()
    text = text or str(trial.get_error() or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", line):
            return line
    return lines[-1] if lines else "unknown error"


class MemberCallback(Callback):
    """Tune callback on the driver: mirrors each trial into a nested MLflow member run."""

    def __init__(
        self, tracker: SweepTracker, members: Sequence[MemberSpec], stage: str | None = None
    ) -> None:
        self.tracker = tracker
        self.stage = stage
        self.by_name = {m.name: m for m in members}
        self.ignored: set[str] = set()  # trials of members that FINISHED in an earlier attempt
        self.started: set[str] = set()
        self.ended: set[str] = set()
        self.run_ids: dict[str, str] = {}
        self.records: dict[str, MemberRecord] = {}

    def _member(self, trial: Any) -> dict[str, Any]:
        """The trial's member config, with ``label``: its name in MLflow and the ensemble."""
        from runner.plan import member_label

        return {**trial.config["member"], "label": member_label(trial)}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial (or a retry of it) starts: open a fresh member run for this attempt."""
        member = self._member(trial)
        self.started.add(trial.trial_id)
        if member["label"] in self.tracker.finished:
            # Tune lost track of a trial MLflow saw finish (the driver died in between): it
            # trains again, but the sweep keeps the first FINISHED run and logs nothing new.
            self.ignored.add(trial.trial_id)
            return
        searched = {"runner.search_member": member["name"]} if member.get("searched") else {}
        run_id = self.tracker.child(
            member["label"],
            "member",
            {
                MEMBER: member["label"],
                MODEL: member["model"],
                "runner.config_hash": (
                    config_hash(trial.config["member"])
                    if searched
                    else self.by_name[member["name"]].config_hash
                ),
                **searched,
                "runner.trial_id": trial.trial_id,
                "runner.attempt": str(trial.run_metadata.num_failures + 1),
                "runner.resources.cpu": str(member["resources"]["cpu"]),
                "runner.resources.gpu": str(member["resources"]["gpu"]),
                **({"runner.stage": self.stage} if self.stage else {}),
            },
        )
        self.tracker.client.log_batch(
            run_id,
            params=_params(
                {k: v for k, v in member.items() if k not in ("name", "label", "searched")}
            ),
        )
        self.run_ids[trial.trial_id] = run_id

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        """Log one epoch's metrics (step = epoch); the final result is logged on completion."""
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or result.get("final") or trial.trial_id in self.ignored:
            return
        metrics = {
            k: v
            for k, v in result.items()
            if k not in CONTROL_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        self.tracker.log_metrics(run_id, metrics, step=int(result.get("epoch", 0)))
        if result.get("epoch") == 1:
            self.tracker.client.log_batch(
                run_id,
                tags=[
                    RunTag("runner.node_ip", str(result.get("node_ip"))),
                    RunTag("runner.hostname", str(result.get("hostname"))),
                ],
            )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log final scores, the model and predictions from the checkpoint; mark FINISHED."""
        self.ended.add(trial.trial_id)
        if trial.trial_id in self.ignored:
            return
        member = self._member(trial)
        run_id = self.run_ids[trial.trial_id]
        result = trial.last_result or {}
        checkpoint = trial.checkpoint
        if not result.get("final") or checkpoint is None:  # a scheduler stopped it early
            self.tracker.client.set_tag(
                run_id, "runner.stopped", f"stopped early after epoch {result.get('epoch')}"
            )
            self.tracker.terminate(run_id, "KILLED")
            self.records[member["label"]] = MemberRecord(
                name=member["label"],
                model=member["model"],
                run_id=run_id,
                status="STOPPED",
                error=f"stopped early by the scheduler after epoch {result.get('epoch')}",
            )
            return
        model_path = None
        with checkpoint.as_directory() as path:
            folder = Path(path)
            info_json = json.loads((folder / "member.json").read_text())
            if Path(checkpoint.path, info_json["model_file"]).is_file():  # local storage
                model_path = str(Path(checkpoint.path, info_json["model_file"]))
            with np.load(folder / "predictions.npz") as npz:
                val, test = npz["val"], npz["test"]
                fingerprint = str(npz["fingerprint"])
            client = self.tracker.client
            for item in sorted(folder.iterdir()):  # model under model/, the rest as they are
                if item.name == info_json["model_file"]:
                    client.log_artifact(run_id, str(item), "model")
                elif item.is_dir():
                    client.log_artifacts(run_id, str(item), item.name)
                elif not item.name.startswith("."):
                    client.log_artifact(run_id, str(item))
        client.log_batch(
            run_id,
            tags=[
                RunTag("runner.gpu_ids", ",".join(info_json.get("gpu_ids", [])) or "none"),
                RunTag("runner.node_id", str(info_json.get("node_id"))),
            ],
        )
        final = {k: v for k, v in result.items() if k.startswith("final_")}
        final["train_seconds"] = info_json["train_seconds"]
        final["fit_seconds"] = info_json["fit_seconds"]
        self.tracker.log_metrics(run_id, final, step=int(info_json["epochs_run"]))
        self.tracker.terminate(run_id, RunStatus.to_string(RunStatus.FINISHED))
        self.records[member["label"]] = MemberRecord(
            name=member["label"],
            model=member["model"],
            run_id=run_id,
            status="FINISHED",
            train_seconds=float(info_json["train_seconds"]),
            val=val,
            test=test,
            fingerprint=fingerprint,
            model_path=model_path,
        )

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The trial failed and will be retried: this attempt's run ends FAILED."""
        run_id = self.run_ids.pop(trial.trial_id, None)
        if run_id is not None:
            self.tracker.client.set_tag(run_id, "runner.error", "worker failed; retried")
            self.tracker.terminate(run_id, "FAILED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The trial failed for good: mark its run FAILED with the reason."""
        self.ended.add(trial.trial_id)
        if trial.trial_id not in self.ignored:
            self._fail(trial, error_reason(trial))

    def _fail(self, trial: Any, reason: str) -> None:
        member = self._member(trial)
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is not None:
            self.tracker.client.set_tag(run_id, "runner.error", reason[:5000])
            self.tracker.terminate(run_id, "FAILED")
        self.records[member["label"]] = MemberRecord(
            name=member["label"],
            model=member["model"],
            run_id=run_id or "",
            status="FAILED",
            error=reason,
        )
        log.warning("member %s failed: %s", member["label"], reason)
