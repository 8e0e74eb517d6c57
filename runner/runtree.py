"""The sweep's MLflow run tree: one parent run per sweep, a nested child per member and one
for the ensemble; a bagged member's run holds a nested run per fold. Every MLflow write of a
sweep goes through ``RunTree`` (the driver is the only writer): creating and re-attaching
runs, the members' life (open, epochs, finished, failed, stopped), and ending whatever is
still open when the sweep ends.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_ENTITIES_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from models.base import Task
from models.training import TrainingOptions
from runner import store_seed
from runner.contracts import (
    ATTEMPT,
    CODE_DIGEST,
    CODE_DIGEST_RESUMED,
    CONFIG_DIGEST,
    CONFIG_HASH,
    CUT_SHORT,
    DATA_FINGERPRINT,
    DRIVER,
    ERROR,
    EXPERIMENT,
    FOLDS,
    FOLDS_MISSING,
    GPU_IDS,
    HOSTNAME,
    LEASE,
    MEMBER,
    MEMBER_INFO,
    MODEL,
    MULTIRUN_JOB,
    NO_ENSEMBLE,
    NODE_ID,
    NODE_IP,
    PARENT,
    PREDICTIONS,
    RESOLVED_CONFIG,
    RESOURCES,
    RESUME_FORCED,
    RESUMED,
    ROLE,
    SEARCH_MEMBER,
    SKIPPED,
    STAGE,
    STOPPED,
    SWEEP,
    TRIAL_ID,
    SavedPredictions,
    TrialInput,
    TrialResult,
    cut_short,
    finished_earlier,
)
from runner.errors import ResumeError, SweepAlreadyFinished
from runner.lease import Lease, LeaseHeld, describe, is_stale
from runner.spec import RunSpec, SpecError

log = logging.getLogger(__name__)

_TRAINED = ("member", "fold", "refit", "student")  # the roles of runs that train a model

MAX_PARAM_CHARS = 6000


def store_exists(uri: str) -> bool:
    """False only for a SQLite store whose file does not exist yet (MLflow would create it);
    the file is the URI's path without its ``?options``."""
    if not uri.startswith("sqlite:///"):
        return True
    return Path(uri[len("sqlite:///") :].split("?", 1)[0]).exists()


_SQLITE_TUNED = False


def tune_sqlite() -> None:
    """Open the driver's SQLite connections in write-ahead-log mode with ``synchronous=NORMAL``
    (durable across a crash of the process; a power loss may drop the last commits): half the
    cost of each MLflow write, and readers such as ``mlflow ui`` no longer block the sweep.
    Once per process; other stores are untouched."""
    global _SQLITE_TUNED
    if _SQLITE_TUNED:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        if type(connection).__module__.startswith(("sqlite3", "pysqlite")):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    _SQLITE_TUNED = True


_CHECKPOINTED: set[Path] = set()


def checkpoint_at_exit(uri: str) -> None:
    """When this process exits, fold its SQLite store's write-ahead log into the file. MLflow's
    pooled connections stay open to the end, which leaves the latest writes only in
    ``FILE-wal``: a copy of the file alone showed the last runs RUNNING, or not at all."""
    path = store_seed.sqlite_path(uri)
    if path is not None and path.resolve() not in _CHECKPOINTED:
        _CHECKPOINTED.add(path.resolve())
        atexit.register(_checkpoint, path.resolve())


def _checkpoint(path: Path) -> None:
    if path.is_file():
        with (
            contextlib.suppress(sqlite3.Error),
            contextlib.closing(sqlite3.connect(path, timeout=2)) as db,
        ):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def warm_store(uri: str, experiment: str) -> None:
    """Open the MLflow store and look up the experiment, so that a new SQLite file's schema
    migrations (about a second, unless it starts as a copy of the cached empty database) run
    now; creates no run, and leaves errors for the tracker to raise where they can be
    reported."""
    tune_sqlite()
    store_seed.seed(uri)
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


# keys that may differ between attempts of one sweep: how it is run, not what it computes
VOLATILE_KEYS = ("runner.verbose", "runner.resume", "runner.sweep_id", "runner.lease_timeout")
VOLATILE_GROUPS = ("tracking.", "cluster.", "hydra.")


def is_volatile(key: str) -> bool:
    """Whether a dotted config key says how a sweep is run, not what it computes (the config
    digest leaves it out)."""
    return key in VOLATILE_KEYS or key.startswith(VOLATILE_GROUPS)


def _member_params(member: TrialInput, task: Task | None = None) -> dict[str, Any]:
    """A member's config as MLflow params (its name is the run's; empty extras left out),
    its hyperparameters with its kind's defaults when the task is known."""
    params = {k: v for k, v in member.to_config().items() if k not in ("name", "searched")}
    if task is not None:
        params["hparams"] = {**kind_defaults(member.model, task), **member.hparams}
    if not params.get("model_modules"):
        params.pop("model_modules", None)
    if not params.get("folds"):
        params.pop("folds", None)
        params.pop("fold", None)
    if not params.get("refit"):
        params.pop("refit", None)
    if not params.get("teacher"):
        params.pop("teacher", None)
    if _ignores_training(member.model):
        params.pop("training", None)
    elif member.searched:  # a sampled mapping option ({name: sgd, momentum: 0.9}) logs as
        # the flattened keys an unsearched member's does (training.optimizer: sgd, ...momentum)
        with contextlib.suppress(TypeError, ValueError):
            params["training"] = TrainingOptions.from_params(member.training).as_params()
    return params


# set by the runner when it trains (the seed, the CPUs given), not hyperparameters
RUNNER_SET = frozenset(
    {"random_state", "random_seed", "seed", "n_jobs", "thread_count", "nthread", "verbose"}
    | {"verbosity", "silent", "allow_writing_files"}
)
_DEFAULTS: dict[tuple[str, str, int | None], dict[str, Any]] = {}


def kind_defaults(kind: str, task: Task) -> dict[str, Any]:
    """The hyperparameters a member of ``kind`` trains with when it sets none, as MLflow's
    autolog lists an estimator's (values the library picks itself, None, left out)."""
    key = (kind, task.kind, task.n_classes)
    if key not in _DEFAULTS:
        import models

        try:
            found = models.get(kind).defaults(task)
        except Exception:  # noqa: BLE001 - a user's kind may raise anything: the run logs
            found = {}  # the hyperparameters it set, as before
        _DEFAULTS[key] = {
            k: v
            for k, v in found.items()
            if k not in RUNNER_SET and v is not None and str(v) != "deprecated"
        }
    return _DEFAULTS[key]


def _ignores_training(kind: str) -> bool:
    """Whether a zoo kind trains without the (Keras) training options: a scikit-learn or
    booster member's run would list an optimizer and epochs it never used."""
    import models
    from models.registry import is_zoo

    entry = models.REGISTRY.get(kind)
    return entry is not None and is_zoo(models.module_of(kind)) and not entry.learns_in_epochs


def _computed(config: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved config's dotted keys of what a sweep computes (how it is run, e.g.
    verbosity or the cluster address, may change between attempts)."""
    return {k: v for k, v in flatten(config).items() if not is_volatile(k)}


@functools.cache
def code_digest(modules: tuple[str, ...] = ()) -> str:
    """A hash of the runner's own code (its models, ensembles and runner packages) and of the
    user's ``modules`` registering kinds (with the helpers beside them that a served model
    ships): which version started a sweep, since the config alone does not say how it trains."""
    import ensembles
    import models
    import runner
    from models.registry import users_code

    digest = hashlib.sha256()
    # each package where it is imported from (a Ray Client head holds each in a folder of
    # its own), paths and line ends alike on every system
    for package in (models, ensembles, runner):
        folder = Path(package.__file__).resolve().parent
        for path in sorted(folder.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(folder).as_posix()}".encode())
            digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    for code in users_code(modules) if modules else []:
        files = sorted(code.rglob("*.py")) if code.is_dir() else [code]
        for path in files:
            digest.update(path.relative_to(code.parent).as_posix().encode())
            digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    return digest.hexdigest()[:16]


def config_digest(config: Mapping[str, Any]) -> str:
    """A hash of what a sweep computes (the keys ``config_changes`` compares): a resume finds
    the sweeps of a config by it, however many sweeps the experiment holds."""
    text = json.dumps(_computed(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two resolved configs (``_computed``)."""
    a, b = _computed(old), _computed(new)
    out = {}
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out[key] = (a.get(key), b.get(key))
    return out


def _ran_with(client: MlflowClient, run_id: str, key: str) -> bool:
    """Whether the sweep ``run_id`` recorded the values of a multirun job's key
    (``cluster.num_cpus=2 ...``) in its resolved config."""
    import yaml

    recorded = recorded_config(client, run_id)
    if recorded is None:
        return False
    flat = flatten(recorded)
    for override in key.split():
        name, _, text = override.lstrip("+~").partition("=")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if name not in flat or flat[name] != value:
            return False
    return True


def recorded_config(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    """The resolved config a sweep's parent run recorded, or None (a sweep started before
    configs were recorded)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, RESOLVED_CONFIG, tmp)
        except Exception:
            return None
        return json.loads(Path(path).read_text())


def live_experiment(client: MlflowClient, name: str) -> Any:
    """The MLflow experiment ``name``, or None; SpecError if it was deleted (MLflow keeps the
    name: the experiment can neither be written to nor made anew)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None and experiment.lifecycle_stage == "deleted":
        raise SpecError(
            f"experiment_name: MLflow experiment {name!r} (id {experiment.experiment_id}) is "
            f"deleted; restore it (mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}) or pass experiment_name=NAME"
        )
    return experiment


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of the live experiment ``name``, made if there is none (or by another sweep
    starting at the same moment: a team's two first sweeps of a new experiment)."""
    from mlflow.exceptions import MlflowException

    experiment = live_experiment(client, name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    experiment = live_experiment(client, name)
    if experiment is None:  # made and deleted again meanwhile: as MLflow said
        raise SpecError(f"experiment_name: MLflow experiment {name!r} cannot be made now")
    return experiment.experiment_id


def _check_not_renamed(client: MlflowClient, spec: RunSpec) -> None:
    """ResumeError if ``runner.sweep_id`` names a sweep of this experiment (which the store no
    longer holds by this name) that now lives in an experiment of another name (renamed in
    the MLflow UI): started again here, the whole sweep would train anew under the same id."""
    others, token = {}, None
    while True:  # every page: a store may hold more experiments than one page shows
        page = client.search_experiments(max_results=1000, page_token=token)
        others.update({e.experiment_id: e for e in page})
        token = page.token
        if not token:
            break
    ids = list(others)
    for start in range(0, len(ids), 100):  # in as few requests as the store takes
        found = client.search_runs(
            ids[start : start + 100],
            f"tags.`{ROLE}` = 'sweep' and tags.`{SWEEP}` = '{spec.sweep_id}' and "
            f"tags.`{EXPERIMENT}` = '{spec.experiment}'",
            max_results=1,
        )
        if found:
            other = others[found[0].info.experiment_id]
            raise ResumeError(
                f"sweep {spec.sweep_id} of experiment {spec.experiment!r} is in the MLflow "
                f"experiment {other.name!r} (id {other.experiment_id}; renamed?): pass "
                f"experiment_name={other.name} to resume it there, or another runner.sweep_id"
            )


def _other_data(parent: Any, fingerprint: str | None) -> str | None:
    """The data split a sweep ran on when it is not ``fingerprint``'s (None: the same, or
    not known)."""
    old = parent.data.tags.get(DATA_FINGERPRINT)
    return old if fingerprint and old and old != fingerprint else None


def _already_finished(
    client: MlflowClient, parent: Any, spec: RunSpec, fingerprint: str | None = None
) -> Exception:
    """What to raise for a sweep id whose sweep finished: nothing to do with its config
    (SweepAlreadyFinished); with another config, or on other data than ``fingerprint``'s
    (the same path holding a new table), a ResumeError naming what changed (the change
    would otherwise be silently skipped, say by a nightly job reusing its id)."""
    sweep = parent.data.tags[SWEEP]
    old = _other_data(parent, fingerprint)
    if old:
        return ResumeError(
            f"sweep {sweep} of {spec.experiment!r} already finished on other data (split "
            f"{old}; this config's data gives {fingerprint}: the table or split changed); "
            "start a new sweep (another runner.sweep_id) to train on it"
        )
    recorded = recorded_config(client, parent.info.run_id)
    changed = config_changes(recorded, spec.resolved) if recorded is not None else {}
    if changed:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        again = (
            f", or ensemble its members again: python -m ensembles experiment={spec.experiment} "
            f"sweeps={sweep} with the ensemble settings (README: Re-ensembling)"
            if all(k.startswith("ensemble.") for k in changed)
            else ""
        )
        return ResumeError(
            f"sweep {sweep} of {spec.experiment!r} already finished with another config "
            f"({listed[:1000]}); start a new sweep (another runner.sweep_id) to run this one"
            f"{again}"
        )
    if parent.data.tags.get(NO_ENSEMBLE):  # a rerun must not report success with nothing served
        return ResumeError(
            f"sweep {sweep} of {spec.experiment!r} finished without an ensemble "
            f"({parent.data.tags[NO_ENSEMBLE]}); python -m ensembles re-ensembles its members "
            "with other settings"
        )
    return SweepAlreadyFinished(
        f"sweep {sweep} of {spec.experiment!r} already finished (parent run "
        f"{parent.info.run_id}); nothing to do"
    )


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
    test_folds: np.ndarray | None = None  # a bagged regression member's test rows by fold
    model_path: str | None = None  # the saved model in Tune's storage (local filesystems)
    fit: dict[str, Any] = field(default_factory=dict)  # what a refit needs of a fold's fit
    # validation and test scores, kept when the predictions are let go (``runner.candidates``)
    scores: tuple[dict[str, float], dict[str, float]] | None = None


# the facts of a trial's member.json the driver keeps: what a bagged member's refit reads
# from its folds, the member's prediction time per 1000 rows and saved model's size, and
# whether runner.time_limit cut its training short
FIT_FACTS = (
    "stopped_at_deadline",
    "epochs_run",
    "rounds_run",
    "trees_run",
    "best_epoch",
    "best_iteration",
    "predict_ms_per_1000",
    "model_bytes",
    "train_cpu_seconds",
    "fit_seconds",
)


def _fit_facts(info: Mapping[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in FIT_FACTS if info.get(k) is not None}


def _folds_missing(tags: Mapping[str, str]) -> dict[str, int]:
    """How many of a skipped bag's folds are missing: its ``runner.folds_missing`` tag, or,
    on a run logged before that tag, the count its skipped reason starts with."""
    if FOLDS not in tags:
        return {}
    if FOLDS_MISSING in tags:
        return {"folds_missing": int(tags[FOLDS_MISSING]), "folds": int(tags[FOLDS])}
    said = re.match(r"(\d+) of (\d+) folds did not finish", tags.get(SKIPPED, ""))
    return {"folds_missing": int(said[1]), "folds": int(said[2])} if said else {}


def _held(pred: np.ndarray) -> np.ndarray:
    """Predictions as the driver keeps them until the ensemble stage: in float64, as the
    trial scored them (float32 copies broke near-ties of a bag's averaged probabilities
    the other way: a leaderboard accuracy that differed from the member run's). Members that
    can no longer be ensemble candidates let theirs go (``runner.candidates``)."""
    return np.asarray(pred, dtype=np.float64)


def _chunks(
    metrics: list[Metric], params: list[Param], tags: list[RunTag]
) -> list[tuple[list[Metric], list[Param], list[RunTag]]]:
    """The entries split into LogBatch requests within MLflow's limits (1000 metrics, 100
    params, 100 tags, 1000 entries in one request)."""
    out = []
    while metrics or params or tags or not out:
        p, t = params[:MAX_PARAMS_TAGS_PER_BATCH], tags[:MAX_PARAMS_TAGS_PER_BATCH]
        m = metrics[: MAX_ENTITIES_PER_BATCH - len(p) - len(t)]
        out.append((m, p, t))
        metrics, params, tags = metrics[len(m) :], params[len(p) :], tags[len(t) :]
    return out


@dataclass
class _PendingRun:
    """A member run not yet in MLflow: what it will be created with, and what was logged to
    it meanwhile."""

    name: str
    role: str
    tags: dict[str, str]
    parent: str | None
    params: list[Param]
    start_ms: int
    metrics: list[Metric] = field(default_factory=list)
    late_tags: list[RunTag] = field(default_factory=list)


class RunTree:
    """Creates (or, on resume, re-attaches to) the sweep's parent run and its children;
    nothing is left RUNNING when it closes.

    A member's run is created once its trial has run for ``DEFER_SECONDS`` (``create_due``,
    called from Tune's loop) or when it ends, whichever comes first; until then what is
    logged to it is kept and written with its creation. A sub-second trial of a search of
    thousands is then three store requests (create, one LogBatch, end), and a trial the
    driver never saw end leaves no run behind."""

    DEFER_SECONDS = 1.0
    # when the event being written happened (ms), if it was written later than that
    event_ms: int | None = None

    def now_ms(self) -> int:
        """The time of the event being written: ``event_ms``, else now."""
        return self.event_ms or _now_ms()

    def __init__(
        self,
        spec: RunSpec,
        fingerprint: str,
        dataset_sizes: Mapping[str, int],
        lease: Lease | None = None,
        task: Task | None = None,
    ) -> None:
        self.spec = spec
        self.task = task  # fills each member's logged hyperparameters with its kind's defaults
        # the lease itself stays out: Tune pickles its callbacks, which hold this tree
        self._lease_token = lease.me["token"] if lease is not None else None
        self.driver_token = secrets.token_hex(8)  # this process's claim on the sweep's runs
        tune_sqlite()
        store_seed.seed(spec.tracking_uri)
        checkpoint_at_exit(spec.tracking_uri)
        self.client = MlflowClient(tracking_uri=spec.tracking_uri)
        self.experiment_id = ensure_experiment(self.client, spec.experiment)
        self.finished: dict[str, str] = {}  # member -> FINISHED run id from an earlier attempt
        # member -> (run id, STOPPED or SKIPPED, why): ended for good in an earlier attempt by
        # the scheduler or the time limit; Tune does not run those trials again
        self.ended: dict[str, tuple[str, str, str]] = {}
        self.ended_facts: dict[str, dict[str, int]] = {}  # a skipped bag's folds missing
        self._artifact_uris: dict[str, str] = {}  # open run -> its artifact URI, from creation
        self.bags: dict[str, str] = {}  # bagged member -> its run (its folds' runs nest in it)
        self.records: dict[str, MemberRecord] = {}  # label -> record of this attempt's end
        self._pending: dict[str, _PendingRun] = {}  # handle -> member run not created yet
        self._created: dict[str, str] = {}  # handle -> the run it became
        parent = self._existing_parent()
        self.sweep_id = parent.data.tags[SWEEP] if parent is not None else spec.sweep_id
        self.base_tags = {EXPERIMENT: spec.experiment, SWEEP: self.sweep_id}
        if parent is not None:
            self._check_lease(parent)
            self._attach(parent, fingerprint)
            try:
                self._record_lease(lease)
            except BaseException:  # the parent is RUNNING under this driver: not left so
                with contextlib.suppress(Exception):
                    self.client.set_terminated(parent.info.run_id, "KILLED", end_time=_now_ms())
                raise
            return
        parent = self.client.create_run(
            self.experiment_id,
            run_name=f"{spec.experiment}-{spec.sweep_id}",
            tags={
                **self.base_tags,
                ROLE: "sweep",
                DATA_FINGERPRINT: fingerprint,
                CONFIG_DIGEST: config_digest(spec.resolved),
                CODE_DIGEST: code_digest(spec.model_modules),
                DRIVER: self.driver_token,
                **({MULTIRUN_JOB: spec.multirun_key} if spec.multirun_key else {}),
            },
        )
        self.parent_run_id = parent.info.run_id
        self._open: set[str] = {self.parent_run_id}
        try:
            self.client.log_batch(
                self.parent_run_id,
                params=_params(
                    {
                        "data": {**vars(spec.data), "rows": dict(dataset_sizes)},
                        # the config's own keys: ensemble.params.max_members (weighted's) is
                        # not ensemble.max_members (the budget); options left unset are not
                        "ensemble": {k: v for k, v in vars(spec.ensemble).items() if v is not None},
                        "members": ",".join(m.name for m in spec.all_members()),
                        "seed": spec.seed,
                    }
                ),
            )
            self.client.log_dict(self.parent_run_id, dict(spec.resolved), RESOLVED_CONFIG)
            self._record_lease(lease)
        except BaseException as err:  # Ctrl+C, or the store failing: the new run is not left
            # open, nor found by a resume, which would take it for a sweep of before configs
            # were recorded: it holds nothing yet, so it goes to MLflow's trash
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            with contextlib.suppress(Exception):
                self.client.set_terminated(self.parent_run_id, status)
                self.client.delete_run(self.parent_run_id)
            raise

    def _check_lease(self, parent: Any) -> None:
        """A live holder recorded on the parent run (another driver, maybe with other Tune
        storage) stops this one before it touches the tree."""
        recorded = parent.data.tags.get(LEASE)
        holder = json.loads(recorded) if recorded else None
        timeout = self.spec.lease_timeout
        if holder and holder.get("token") != self._lease_token and not is_stale(holder, timeout):
            raise LeaseHeld(
                f"sweep {self.sweep_id} is running in another driver ({describe(holder)}); "
                f"wait for it, or stop it: a lease older than {timeout:g}s is taken over"
            )

    def _check_config(self, parent: Any) -> None:
        """A resume must run the config the sweep started with: ResumeError naming the keys
        that changed, unless ``runner.resume=force`` (then recorded on the parent)."""
        recorded = recorded_config(self.client, parent.info.run_id)
        if recorded is None:  # a sweep started before configs were recorded
            return
        changed = config_changes(recorded, self.spec.resolved)
        if not changed:
            return
        lines = {k: f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items()}
        listed = "; ".join(lines.values())
        searched = "; ".join(line for k, line in lines.items() if k.startswith("search."))
        if searched:  # Tune restores the trials it sampled: a changed search cannot apply
            raise ResumeError(
                f"sweep {self.sweep_id} was started with another search ({searched}); Tune "
                "resumes the trials it sampled, even with runner.resume=force: resume with the "
                "same search or start a new sweep"
            )
        if self.spec.picked_by_resume and self.spec.resume != "force":  # maybe a teammate's
            raise ResumeError(
                f"runner.resume={str(self.spec.resume).lower()} found no unfinished sweep with "
                f"this config in experiment {self.spec.experiment!r}; the latest unfinished "
                f"one, {self.sweep_id}, ran another config ({listed}): drop runner.resume to "
                f"start a new sweep, or resume {self.sweep_id} by its id with its own config"
            )
        if self.spec.resume != "force":
            raise ResumeError(
                f"sweep {self.sweep_id} was started with another config ({listed}); resume with "
                "the same values, start a new sweep, or pass runner.resume=force"
            )
        self.client.set_tag(parent.info.run_id, RESUME_FORCED, listed[:5000])
        # the sweep now runs this config: a rerun of the first one is another config, not a
        # sweep with nothing left to do (members the forced one dropped never trained)
        self.client.set_tag(parent.info.run_id, CONFIG_DIGEST, config_digest(self.spec.resolved))
        self.client.log_dict(parent.info.run_id, dict(self.spec.resolved), RESOLVED_CONFIG)
        log.warning("resuming sweep %s with a changed config (forced): %s", self.sweep_id, listed)

    def _record_lease(self, lease: Lease | None) -> None:
        """Copy the lease, and each of its heartbeats, onto the parent run."""
        if lease is None:
            return
        client, parent = self.client, self.parent_run_id

        def copy(record: Mapping[str, Any]) -> None:
            client.set_tag(parent, LEASE, json.dumps(record))

        copy({**lease.me, "heartbeat": time.time()})
        lease.on_heartbeat = copy

    @staticmethod
    def check_not_finished(spec: RunSpec, fingerprint: str | None = None) -> None:
        """Raise SweepAlreadyFinished if ``runner.sweep_id`` names a finished sweep (a
        ResumeError if it finished with another config, or on data other than
        ``fingerprint``'s), and ResumeError if ``runner.resume`` asks to resume an id no
        sweep has (a typo would otherwise train the whole sweep anew)."""
        if not spec.sweep_id:
            return
        client = experiment = None
        if store_exists(spec.tracking_uri):
            client = MlflowClient(tracking_uri=spec.tracking_uri)
            experiment = live_experiment(client, spec.experiment)
        runs = (
            []
            if experiment is None
            else client.search_runs(
                [experiment.experiment_id],
                f"tags.`{ROLE}` = 'sweep' and tags.`{SWEEP}` = '{spec.sweep_id}'",
            )
        )
        for run in runs:
            if run.info.status == "FINISHED":
                raise _already_finished(client, run, spec, fingerprint)
        if experiment is None and client is not None:  # a renamed one leaves its name free
            _check_not_renamed(client, spec)
        if spec.resume and not runs:
            unfinished = (
                []
                if experiment is None
                else [
                    r.data.tags[SWEEP]
                    for r in RunTree._unfinished_sweeps(client, experiment.experiment_id)
                ]
            )
            raise ResumeError(
                f"runner.resume={str(spec.resume).lower()} but experiment {spec.experiment!r} "
                f"has no sweep {spec.sweep_id!r} (unfinished: "
                f"{', '.join(unfinished[:10]) or 'none'}); drop runner.resume to start it anew"
            )

    @property
    def resumed(self) -> bool:
        """Whether this tracker re-attached to an earlier attempt of the sweep."""
        return self._resumed

    _resumed = False

    @staticmethod
    def _recent_sweeps(client: MlflowClient, experiment_id: str) -> list[Any]:
        """The experiment's latest 50 sweep runs, newest first."""
        return client.search_runs(
            [experiment_id],
            f"tags.`{ROLE}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )

    @staticmethod
    def _unfinished_sweeps(client: MlflowClient, experiment_id: str) -> list[Any]:
        return [
            r for r in RunTree._recent_sweeps(client, experiment_id) if r.info.status != "FINISHED"
        ]

    @staticmethod
    def resumable_sweep_id(spec: RunSpec, fingerprint: str | None = None) -> str | None:
        """With ``runner.resume=true`` and no id: the latest unfinished sweep run with this
        config, else the latest finished one with it (nothing to do: a nightly job resuming
        after a good night; not with ``runner.resume=force``), else the latest unfinished one
        (its config check names what changed), else ResumeError. A job of a multirun resumes
        only its own sweep: the latest with its config, finished or not (then nothing is
        done), or None: it never started, so it starts now (the jobs before an interruption
        finished, the ones after never ran). None too when the sweeps with this config ran
        on other data than ``fingerprint``'s only (the file at the same path changed): a new
        sweep trains on it, where a rerun found nothing to do (or, after an interrupted one,
        failed every night on its data split)."""
        client = MlflowClient(tracking_uri=spec.tracking_uri)
        experiment = live_experiment(client, spec.experiment)
        found = experiment is not None
        same = (
            client.search_runs(
                [experiment.experiment_id],
                f"tags.`{ROLE}` = 'sweep' and "
                f"tags.`{CONFIG_DIGEST}` = '{config_digest(spec.resolved)}'",
                order_by=["attributes.start_time DESC"],
            )
            if found
            else []
        )
        if spec.multirun_job:  # its own: jobs may differ only in settings the digest omits
            keyed = [r for r in same if r.data.tags.get(MULTIRUN_JOB, "") == spec.multirun_key]
            if not keyed and spec.multirun_key:
                # a sweep of a release that keyed jobs by command-line sweeps alone (a
                # config's hydra.sweeper.params untagged): its recorded config says its values
                keyed = [
                    r
                    for r in same
                    if not r.data.tags.get(MULTIRUN_JOB)
                    and _ran_with(client, r.info.run_id, spec.multirun_key)
                ]
            same = keyed
        # this config's sweeps on other data (the table at the same path changed) are not
        # this sweep: finished or not, a new one trains on this data
        other = [r for r in same if _other_data(r, fingerprint)]
        same = [r for r in same if not _other_data(r, fingerprint)]
        mine = same if spec.multirun_job else [r for r in same if r.info.status != "FINISHED"]
        if mine:
            return mine[0].data.tags[SWEEP]
        if same and spec.resume != "force":  # this config's sweeps all finished: nothing to do
            return same[0].data.tags[SWEEP]
        if other and not same:
            return None
        # sweeps of older versions carry no digest: the latest 50, by their recorded configs
        runs = RunTree._recent_sweeps(client, experiment.experiment_id) if found else []
        unfinished = [r for r in runs if r.info.status != "FINISHED"]
        candidates = runs if spec.multirun_job else unfinished
        for run in candidates:
            if CONFIG_DIGEST in run.data.tags:  # its digest did not match: another config
                continue
            recorded = recorded_config(client, run.info.run_id)
            if recorded is not None and not config_changes(recorded, spec.resolved):
                return run.data.tags[SWEEP]
        if spec.multirun_job:
            return None
        if not unfinished:
            raise ResumeError(
                f"runner.resume={str(spec.resume).lower()} but experiment {spec.experiment!r} "
                "has no unfinished sweep; pass runner.sweep_id=ID or drop runner.resume"
            )
        return unfinished[0].data.tags[SWEEP]

    def _existing_parent(self) -> Any:
        """The parent run to re-attach to: the given sweep id's, or with ``runner.resume``
        the latest unfinished sweep of the experiment; None starts a new sweep."""
        spec = self.spec
        # runner.launch resolves runner.resume=true to an id first; direct callers may not
        sweep_id = spec.sweep_id or (self.resumable_sweep_id(spec) if spec.resume else None)
        if not sweep_id:
            return None
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{ROLE}` = 'sweep' and tags.`{SWEEP}` = '{sweep_id}'",
        )
        if not runs:
            return None
        parent = runs[0]
        if parent.info.status == "FINISHED":
            raise _already_finished(self.client, parent, spec)
        return parent

    def _attach(self, parent: Any, fingerprint: str) -> None:
        """Re-attach to an unfinished sweep: end its stale RUNNING runs as KILLED and note
        which members already FINISHED (they are kept, not trained again)."""
        old = parent.data.tags.get(DATA_FINGERPRINT)
        if old and old != fingerprint:
            raise ResumeError(
                f"sweep {self.sweep_id} ran on data split {old}, this config gives {fingerprint}; "
                "resume with the same data settings or start a new sweep (a runner of before "
                "2026-12-07 split a class of a few rows otherwise: such a sweep starts anew)"
            )
        self._check_config(parent)
        hashes = {m.name: m.config_hash for m in self.spec.all_members()}
        children = self._children()
        for run in children:  # every refusal before anything is written
            tags = run.data.tags
            if run.info.status == "FINISHED" and tags.get(ROLE) in _TRAINED:
                name = tags.get(MEMBER)
                changed = name in hashes and tags.get(CONFIG_HASH) != hashes[name]
                if changed and self.spec.resume != "force":  # forced: keep what finished
                    raise ResumeError(
                        f"member {name!r} changed since sweep {self.sweep_id} started; resume "
                        "with the same config or start a new sweep"
                    )
        if parent.data.tags.get(CODE_DIGEST) != code_digest(
            self.spec.model_modules
        ):  # kept: the version it began
            log.warning(
                "sweep %s was started by another version of the runner's code (or of the kinds' "
                "modules in runner.model_modules): the members it "
                "finished are kept as they were trained (a bag's folds too), the rest train "
                "with this version; for all of them alike start a new sweep (another "
                "runner.sweep_id)",
                self.sweep_id,
            )
            self.client.set_tag(
                parent.info.run_id, CODE_DIGEST_RESUMED, code_digest(self.spec.model_modules)
            )
        try:
            self._reopen(parent, children)
        except BaseException:  # a store error midway: the parent is not left RUNNING
            with contextlib.suppress(Exception):
                self.client.set_terminated(parent.info.run_id, "KILLED", end_time=_now_ms())
            raise

    def _children(self) -> list[Any]:
        """Every run of this sweep but its parent, page by page (a search of thousands of
        trials, bagged, can pass one page's 10,000)."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                f"tags.`{SWEEP}` = '{self.sweep_id}' and tags.`{ROLE}` != 'sweep'",
                max_results=10000,
                page_token=token,
            )
            runs.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return runs

    def _reopen(self, parent: Any, children: list[Any]) -> None:
        """The writes of re-attaching: the parent RUNNING under this driver, stale runs
        KILLED; what earlier attempts ended or finished noted."""
        # first: the dead driver's sentinel, if still at work, now leaves this sweep alone
        self.client.set_tag(parent.info.run_id, DRIVER, self.driver_token)
        self._resumed = True
        self.parent_run_id = parent.info.run_id
        self._open = {self.parent_run_id}
        if parent.info.status != "RUNNING":
            self.client.update_run(self.parent_run_id, status="RUNNING")
        if ERROR in parent.data.tags:  # why an earlier attempt stopped: not this one's
            self.client.delete_tag(self.parent_run_id, ERROR)
        for run in children:
            tags = run.data.tags
            if tags.get(ROLE) == "member" and tags.get(FOLDS) and run.info.status != "FINISHED":
                self.bags[tags[MEMBER]] = run.info.run_id  # re-opened when a fold starts
            if run.info.status in ("RUNNING", "SCHEDULED"):
                self.client.set_tag(
                    run.info.run_id, ERROR, "the driver stopped before this run ended"
                )
                self.client.set_terminated(run.info.run_id, "KILLED", end_time=_now_ms())
            elif run.info.status == "KILLED" and (STOPPED in tags or SKIPPED in tags):
                status = "STOPPED" if STOPPED in tags else "SKIPPED"
                self.ended[tags.get(MEMBER)] = (
                    run.info.run_id,
                    status,
                    tags.get(STOPPED) or tags[SKIPPED],
                )
                facts = _folds_missing(tags)
                if facts:
                    self.ended_facts[tags[MEMBER]] = facts
            elif run.info.status == "FINISHED" and tags.get(ROLE) in _TRAINED:
                self.finished[tags.get(MEMBER)] = run.info.run_id
        self.client.set_tag(self.parent_run_id, RESUMED, "true")

    def ended_record(self, name: str, model: str) -> MemberRecord:
        """The record of a member stopped or skipped for good in an earlier attempt."""
        run_id, status, why = self.ended[name]
        facts = dict(self.ended_facts.get(name, {}))
        return MemberRecord(
            name=name, model=model, run_id=run_id, status=status, error=why, fit=facts
        )

    def finished_record(self, name: str, model: str, folder: str) -> MemberRecord:
        """Rebuild the record of a member FINISHED in an earlier attempt, from MLflow."""
        run_id = self.finished[name]
        path = self.client.download_artifacts(run_id, PREDICTIONS, folder)
        info = json.loads(
            Path(self.client.download_artifacts(run_id, MEMBER_INFO, folder)).read_text()
        )
        saved = SavedPredictions.read(path)
        return MemberRecord(
            name=name,
            model=model,
            run_id=run_id,
            status="FINISHED",
            train_seconds=float(info.get("train_seconds", 0.0)),
            val=_held(saved.val),
            test=_held(saved.test),
            fingerprint=saved.fingerprint,
            fit=_fit_facts(info),
            test_folds=None if saved.test_folds is None else _held(saved.test_folds),
        )

    def child(
        self,
        name: str,
        role: str,
        tags: Mapping[str, str] | None = None,
        parent: str | None = None,
        start_ms: int | None = None,
    ) -> str:
        """Create a RUNNING child run under the sweep's parent (or under ``parent``)."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            start_time=start_ms,
            tags={
                **self.base_tags,
                ROLE: role,
                PARENT: parent or self.parent_run_id,
                **(tags or {}),
            },
        )
        self._open.add(run.info.run_id)
        self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        return run.info.run_id

    def terminate(self, run_id: str, status: str) -> None:
        """End a run with ``status`` (FINISHED, FAILED or KILLED)."""
        run_id = self._resolve(run_id)
        self.client.set_terminated(run_id, status=status, end_time=self.now_ms())
        self._open.discard(run_id)
        self._artifact_uris.pop(run_id, None)

    def _artifacts(self, run_id: str) -> ArtifactRepository:
        """Where ``run_id``'s artifacts go. MlflowClient.log_artifacts fetches the whole run
        to learn its artifact URI (about 5 ms a member on SQLite); a run this tree created
        was told it at creation."""
        uri = self._artifact_uris.get(run_id) or self.client.get_run(run_id).info.artifact_uri
        return get_artifact_repository(uri, tracking_uri=self.spec.tracking_uri)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log a batch of metrics in one call (kept for a run not created yet)."""
        self.log_batch(run_id, metrics, step=step)

    def log_batch(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        step: int = 0,
    ) -> None:
        """Metrics (at ``step``) and tags in as few LogBatch requests as MLflow allows; kept
        with a member run not created yet, to be written with its creation."""
        ts = self.now_ms()
        batch = [Metric(k, float(v), ts, step) for k, v in (metrics or {}).items()]
        run_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        pending = self._pending.get(run_id)
        if pending is not None:
            pending.metrics += batch
            pending.late_tags += run_tags
            return
        run_id = self._created.get(run_id, run_id)
        if batch or run_tags:
            for m, _, t in _chunks(batch, [], run_tags):
                self.client.log_batch(run_id, metrics=m, tags=t)

    def _resolve(self, handle: str, tags: Mapping[str, str] | None = None) -> str:
        """The MLflow run behind ``handle``, created now (with ``tags`` and everything kept
        for it) if it was still pending."""
        pending = self._pending.pop(handle, None)
        if pending is None:
            run_id = self._created.get(handle, handle)
            if tags:
                self.log_batch(run_id, tags=tags)
            return run_id
        run_id = self.child(
            pending.name,
            pending.role,
            {**pending.tags, **{t.key: t.value for t in pending.late_tags}, **(tags or {})},
            parent=pending.parent,
            start_ms=pending.start_ms,
        )
        for m, p, _ in _chunks(pending.metrics, pending.params, []):
            self.client.log_batch(run_id, metrics=m, params=p)
        self._created[handle] = run_id
        return run_id

    def create_due(self, now: float | None = None) -> None:
        """Create the member runs whose trials have run for ``DEFER_SECONDS`` by now."""
        cutoff = 1000 * ((time.time() if now is None else now) - self.DEFER_SECONDS)
        for handle in [h for h, p in self._pending.items() if p.start_ms <= cutoff]:
            self._resolve(handle)

    # ------------------------------------------------------------- a member's life

    def open_member(
        self,
        label: str,
        member: TrialInput,
        *,
        trial_id: str,
        attempt: int,
        config_hash: str,
        stage: str | None = None,
    ) -> str | None:
        """A member's trial (or a retry) starts: a handle to a fresh run for this attempt,
        with its config as params, created in MLflow as RUNNING by ``create_due`` or when the
        trial ends; None for a member that FINISHED in an earlier attempt (Tune lost track of
        it when the driver died: it trains again, but the sweep keeps the first FINISHED run
        and logs nothing new)."""
        if finished_earlier(label, member.name, member.fold, self.finished):
            return None
        tags = {
            MEMBER: label,
            MODEL: member.model,
            CONFIG_HASH: config_hash,
            TRIAL_ID: trial_id,
            ATTEMPT: str(attempt),
            **self._member_tags(member, stage),
        }
        if member.searched:
            tags[SEARCH_MEMBER] = member.name
        parent, role = None, "member"
        if member.fold is not None:
            parent, role = self._bag_run(member, config_hash, stage), "fold"
        elif member.refit:  # nests in its bagged member's run, FINISHED by now
            parent, role = self.bags.get(member.name) or self.finished.get(member.name), "refit"
        elif member.teacher:
            role = "student"
        handle = f"pending:{trial_id}:{attempt}"
        self._pending[handle] = _PendingRun(
            label, role, tags, parent, _params(_member_params(member, self.task)), self.now_ms()
        )
        return handle

    @staticmethod
    def _member_tags(member: TrialInput, stage: str | None) -> dict[str, str]:
        tags = {
            f"{RESOURCES}cpu": str(member.resources["cpu"]),
            f"{RESOURCES}gpu": str(member.resources["gpu"]),
        }
        if stage:
            tags[STAGE] = stage
        return tags

    def _bag_run(self, member: TrialInput, config_hash: str, stage: str | None) -> str:
        """The run of a bagged member, which its folds' runs nest in: created when its first
        fold starts, or re-opened when a resume trains its missing folds."""
        run_id = self.bags.get(member.name)
        if run_id is None:
            tags = {
                MEMBER: member.name,
                MODEL: member.model,
                CONFIG_HASH: config_hash,
                FOLDS: str(member.folds),
                **self._member_tags(member, stage),
            }
            run_id = self.child(member.name, "member", tags)
            params = {k: v for k, v in _member_params(member, self.task).items() if k != "fold"}
            self.client.log_batch(run_id, params=_params(params))
            self.bags[member.name] = run_id
        elif run_id not in self._open:
            self.client.update_run(run_id, status="RUNNING")
            # tagged only if an attempt stopped in it, or the time limit left it short of folds
            for tag in (ERROR, SKIPPED, FOLDS_MISSING):
                with contextlib.suppress(Exception):
                    self.client.delete_tag(run_id, tag)
            self._open.add(run_id)
        return run_id

    def log_epoch(
        self,
        run_id: str,
        metrics: Mapping[str, float],
        epoch: int,
        where: Mapping[str, Any] | None = None,
    ) -> None:
        """One epoch's metrics (step = epoch); with ``where`` (the first epoch) the node."""
        tags = None
        if where:
            tags = {NODE_IP: str(where.get("node_ip")), HOSTNAME: str(where.get("hostname"))}
        self.log_batch(run_id, metrics, tags, step=epoch)

    def tag(self, run_id: str, key: str, value: str) -> None:
        """Set one tag (kept for a member run not created yet)."""
        self.log_batch(run_id, tags={key: value})

    def finish_member(
        self,
        run_id: str,
        label: str,
        model: str,
        result: TrialResult,
        final: Mapping[str, float],
        *,
        local: bool,
    ) -> MemberRecord:
        """Log a finished trial's checkpoint (model under ``model/``, the rest as it is) and
        final scores, end the run FINISHED and keep the member's record."""
        info = result.info
        scores = {
            **final,
            "train_seconds": info["train_seconds"],
            "fit_seconds": info["fit_seconds"],
            **(
                {"train_cpu_seconds": info["train_cpu_seconds"]}
                if "train_cpu_seconds" in info
                else {}
            ),
        }
        self.log_batch(
            run_id,
            scores,
            {
                GPU_IDS: ",".join(info.get("gpu_ids", [])) or "none",
                # a bag's folds ran where each was placed: their own runs name the node
                **({NODE_ID: str(info["node_id"])} if info.get("node_id") else {}),
                **({CUT_SHORT: str(*cut.values())} if (cut := cut_short(info)) else {}),
            },
            step=int(info["epochs_run"]),
        )
        run_id = self._resolve(run_id)
        items = sorted(result.folder.iterdir())
        artifacts = self._artifacts(run_id)
        if not any(item.name.startswith(".") for item in items):
            artifacts.log_artifacts(str(result.folder))  # one request for them all
        else:
            for item in items:
                if item.is_dir():
                    artifacts.log_artifacts(str(item), item.name)
                elif not item.name.startswith("."):
                    artifacts.log_artifact(str(item))
        self.terminate(run_id, "FINISHED")
        model_dir = result.model_dir if local else None
        record = MemberRecord(
            name=label,
            model=model,
            run_id=run_id,
            status="FINISHED",
            train_seconds=float(info["train_seconds"]),
            val=_held(result.val),
            test=_held(result.test),
            fingerprint=result.fingerprint,
            model_path=None if model_dir is None else str(model_dir),
            fit=_fit_facts(info),
            test_folds=None if result.test_folds is None else _held(result.test_folds),
        )
        self.records[label] = record
        return record

    def finish_bag(
        self, name: str, model: str, result: TrialResult, final: Mapping[str, float]
    ) -> MemberRecord:
        """A bagged member whose folds all finished: log its out-of-fold and averaged
        predictions, its bagged model and scores on its own run, and end it FINISHED."""
        run_id = self.bags[name]
        if self._resumed:  # why an earlier attempt left it open: not this one's end
            for tag in (ERROR, SKIPPED, FOLDS_MISSING):
                with contextlib.suppress(Exception):
                    self.client.delete_tag(run_id, tag)
        return self.finish_member(run_id, name, model, result, final, local=False)

    def fail_bag(self, name: str, model: str, reason: str) -> None:
        """A bagged member with a fold that did not finish: its run ends FAILED."""
        self.fail_member(self.bags.get(name), name, model, reason)

    def stop_member(self, run_id: str, label: str, model: str, epoch: Any) -> None:
        """A scheduler stopped the trial early: the run ends KILLED, tagged why."""
        run_id = self._resolve(run_id, {STOPPED: f"stopped early after epoch {epoch}"})
        self.terminate(run_id, "KILLED")
        self.records[label] = MemberRecord(
            name=label,
            model=model,
            run_id=run_id,
            status="STOPPED",
            error=f"stopped early by the scheduler after epoch {epoch}",
        )

    def skip_member(
        self, run_id: str, label: str, model: str, reason: str, fit: dict[str, Any] | None = None
    ) -> None:
        """The member could not start before the sweep's time limit (or, with ``fit`` saying
        how many folds are missing, a bag could not finish): its run ends KILLED, tagged why,
        and the sweep goes on without it."""
        tags = {SKIPPED: reason}
        if fit:
            tags[FOLDS_MISSING] = str(fit["folds_missing"])
        run_id = self._resolve(run_id, tags)
        self.terminate(run_id, "KILLED")
        self.records[label] = MemberRecord(
            name=label, model=model, run_id=run_id, status="SKIPPED", error=reason, fit=fit or {}
        )

    def fail_attempt(self, run_id: str, reason: str, error_file: str | None = None) -> None:
        """The trial failed and Tune retries it (``runner.max_failures``): this attempt's run
        ends FAILED with the reason and the trial's error so far (``error.txt``)."""
        self._end_failed(run_id, f"{reason[:4900]} (retried)", error_file)

    def _end_failed(self, run_id: str, error: str, error_file: str | None) -> str:
        """End a member's run FAILED, tagged with ``error`` and holding ``error_file``; the
        run's id (created now if it was pending)."""
        run_id = self._resolve(run_id, {ERROR: error})
        if error_file and Path(error_file).is_file():
            self._artifacts(run_id).log_artifact(error_file)
        self.terminate(run_id, "FAILED")
        return run_id

    def fail_member(
        self,
        run_id: str | None,
        label: str,
        model: str,
        reason: str,
        error_file: str | None = None,
    ) -> None:
        """The trial failed for good: its run ends FAILED with the reason, and the trial's
        whole error (its traceback, from Tune's ``error_file``) as ``error.txt``. Said on
        stderr only without the progress view (which says it itself)."""
        if run_id is not None:
            run_id = self._end_failed(run_id, reason[:5000], error_file)
        self.records[label] = MemberRecord(
            name=label, model=model, run_id=run_id or "", status="FAILED", error=reason
        )
        if not self.spec.verbose:
            log.warning("member %s failed: %s", label, reason)

    # ----------------------------------------------------------------- the sweep's end

    def log_sweep_outputs(
        self, summary_path: Path, boards: Mapping[str, str], ensemble_run: str | None
    ) -> None:
        """summary.json and the leaderboards on the parent (and the ensemble) run."""
        self.client.log_artifact(self.parent_run_id, str(summary_path))
        for name, text in boards.items():
            self.client.log_text(self.parent_run_id, text, name)
            if ensemble_run and not name.endswith(".txt"):
                self.client.log_text(ensemble_run, text, name)

    def _still_ours(self) -> bool:
        """Whether this driver still runs the sweep: another that took it over (its lease
        gone stale under this one) has set its own token on the parent, which it runs now."""
        tags = self.client.get_run(self.parent_run_id).data.tags
        return tags.get(DRIVER) in (None, self.driver_token)

    def close(self, status: str, reason: str | None = None) -> bool:
        """End every run still open: children as KILLED (or ``status`` if FAILED), then the
        parent; ``reason`` (why the sweep stopped) is tagged on each run ended here. Best
        effort when the store itself failed (False then: the sentinel, or a resume, marks
        what stayed RUNNING as KILLED); True when every run was ended."""
        try:
            for run_id in sorted(self._open - {self.parent_run_id}):
                if reason:
                    self.client.set_tag(run_id, ERROR, reason)
                self.terminate(run_id, "KILLED" if status == "FINISHED" else status)
            if self.parent_run_id in self._open and self._still_ours():
                if reason:
                    self.client.set_tag(self.parent_run_id, ERROR, reason)
                self.terminate(self.parent_run_id, status)
        except Exception as err:  # the store is down: the runs are ended on resume
            log.warning("could not end the open MLflow runs (%s: %s)", type(err).__name__, err)
            return False
        return True
