"""The typed contracts between the runner's parts: what a trial gets and leaves behind, the
names of artifacts, and the MLflow tag keys. Every other module uses these names; none
repeats the literals.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ------------------------------------------------------------------------- artifact names

MODEL_DIR = "model"  # a member's saved model (models.store), and the ensemble's pyfunc model
PREDICTIONS = "predictions.npz"  # val, test, y_val, y_test, fingerprint
MEMBER_INFO = "member.json"  # the trial input plus where and how the member trained
HISTORY = "history.json"
LEARNING_CURVES = "learning_curves.png"
SUMMARY = "summary.json"
REFIT = "refit.json"  # on an ensemble run serving refitted members: their runs and scores
RESOLVED_CONFIG = "resolved_config.json"  # the sweep's config, compared on every resume
# beside a student's teacher: the ensemble's predictions of the pooled rows of bagged members,
# made from their out-of-fold predictions, which the student fits instead of the teacher's own
HONEST_TARGETS = "honest_targets.npy"
LEADERBOARDS = ("leaderboard.txt", "leaderboard.md", "leaderboard.html")

# ---------------------------------------------------------------------------- MLflow tags

PARENT = "mlflow.parentRunId"
ROLE = "runner.role"  # one of ROLES
# fold: one fit of a bagged member; refit: the bagged member fitted once on all its rows;
# student: one model distilled from the ensemble's predictions (ensemble.distill)
ROLES = ("sweep", "member", "fold", "refit", "ensemble", "student")
EXPERIMENT = "runner.experiment"
SWEEP = "runner.sweep_id"
MEMBER = "runner.member"  # the member's label: its name, NAME-K for a search sample, or
# NAME/foldK for fold K of a bagged member, NAME/refit for its refit on all rows,
# NAME/student for a student
FOLDS = "runner.folds"  # on a bagged member's run: its number of folds
MODEL = "runner.model"
STAGE = "runner.stage"
CONFIG_HASH = "runner.config_hash"
SEARCH_MEMBER = "runner.search_member"
TRIAL_ID = "runner.trial_id"
ATTEMPT = "runner.attempt"
RESOURCES = "runner.resources."  # prefix: runner.resources.cpu, runner.resources.gpu
NODE_IP = "runner.node_ip"
NODE_ID = "runner.node_id"
HOSTNAME = "runner.hostname"
GPU_IDS = "runner.gpu_ids"
ERROR = "runner.error"
STOPPED = "runner.stopped"
SKIPPED = "runner.skipped"  # a member that could not start before runner.time_limit
FOLDS_MISSING = "runner.folds_missing"  # a bag skipped with folds missing: how many of its folds
# epochs (a booster's rounds, a forest's trees) a member trained before runner.time_limit
# stopped it
CUT_SHORT = "runner.cut_short"
NO_ENSEMBLE = "runner.no_ensemble"  # a sweep whose finished members gave no ensemble: why
REPLAYED = "runner.replayed"  # a member logged from Tune's checkpoint after the store failed
RESUMED = "runner.resumed"
RESUME_FORCED = "runner.resume_forced"  # the config keys a forced resume changed
LEASE = "runner.lease"  # the driver holding the sweep, with its last heartbeat (JSON)
DRIVER = "runner.driver"  # a token of the driver process running the sweep now (its sentinel's)
DATA_FINGERPRINT = "runner.data_fingerprint"
CONFIG_DIGEST = "runner.config_digest"  # a sweep's config without how it was run, hashed
CODE_DIGEST = "runner.code_digest"  # the runner's own code that started the sweep, hashed
CODE_DIGEST_RESUMED = "runner.code_digest_resumed"  # ... that last resumed it, if another
# a multirun job's own values of the swept settings the digest leaves out (cluster.num_cpus=2)
MULTIRUN_JOB = "runner.multirun_job"
MEMBERS = "runner.members"  # an ensemble run's candidates, all it weighed
SERVED_MEMBERS = "runner.served_members"  # ... those its model reads (weight, budget)
BEST_MEMBER = "runner.best_member"
BEATS_BEST_MEMBER = "runner.beats_best_member"
REENSEMBLE = "runner.reensemble"
ENSEMBLE_HASH = "runner.ensemble_hash"  # method, params, seed, split and members ensembled
ENSEMBLE_SETTINGS = "runner.ensemble_settings"
SOURCE_SWEEPS = "runner.source_sweeps"
CHAMPION = "runner.champion."  # prefix of the champion/challenger decision's tags

# ------------------------------------------------------------------------------ a trial


@dataclass(frozen=True)
class TrialInput:
    """What a trial trains: built from a ``MemberSpec`` on the driver, carried to the worker
    as Tune's ``config["member"]`` (a plain dict, so search spaces can sit inside it)."""

    name: str
    model: str
    kind: str  # the model's framework (keras, sklearn): recorded with the member
    hparams: dict[str, Any]
    training: dict[str, Any]
    resources: dict[str, float]
    seed: int
    searched: bool = False
    model_modules: tuple[str, ...] = ()  # modules registering kinds from outside models/
    folds: int = 0  # bagged over this many folds (0: not bagged)
    fold: int | None = None  # which fold this trial fits (bagged members only)
    refit: bool = False  # a bagged member's refit on all pooled rows (after its folds)
    teacher: str | None = None  # a student's: the folder of the served ensemble it learns from

    def to_config(self) -> dict[str, Any]:
        """The plain dict Tune carries (and MLflow logs as params)."""
        out = asdict(self)
        out["model_modules"] = list(self.model_modules)
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrialInput:
        """Rebuild from ``to_config`` (with Tune's sampled values in place)."""
        values = {k: v for k, v in config.items() if k in cls.__dataclass_fields__}
        values["model_modules"] = tuple(values.get("model_modules") or ())
        return cls(**values)

    def import_model_modules(self) -> None:
        """Import the modules that register this member's kind (in a fresh worker)."""
        import_modules(self.model_modules)


# Tune keeps a running max, min, mean and last values of every number in a trial's results,
# its config included (about 45 KB a trial of Tune's bookkeeping for a member's ~17 config
# numbers, by tracemalloc), and the config again in every line of its result files. Tune's
# copy of a member's config holds the fixed part as one JSON string, which it neither
# flattens nor tracks.
PACKED = "packed"


def pack_member(config: Mapping[str, Any], searched: Sequence[str] = ()) -> dict[str, Any]:
    """Tune's ``config["member"]`` for a member's trial config: its name and model, the
    ``searched`` paths (``hparams.X``, ``training.Y``, Tune domains in them) and the rest
    as one JSON string (``unpack_member`` gives the config back)."""
    rest = {k: dict(v) if isinstance(v, Mapping) else v for k, v in config.items()}
    out: dict[str, Any] = {"name": config["name"], "model": config["model"]}
    for path in searched:
        section, key = path.split(".", 1)
        out.setdefault(section, {})[key] = rest[section].pop(key)
    out[PACKED] = json.dumps(rest)
    return out


def unpack_member(member: Mapping[str, Any]) -> dict[str, Any]:
    """A member's trial config from Tune's copy (``pack_member``; a config Tune got whole,
    from an earlier version's run, comes back as it is)."""
    if PACKED not in member:
        return dict(member)
    out = json.loads(member[PACKED])
    for section in ("hparams", "training"):
        out[section].update(member.get(section, {}))
    return out


def import_modules(names: Sequence[str]) -> None:
    """Import each named module (model kinds registered from outside ``models/``)."""
    for name in names:
        importlib.import_module(name)


def sample_number(experiment_tag: Any) -> int:
    """A search sample's number: Tune's experiment tag starts with its counter."""
    return int(str(experiment_tag).split("_", 1)[0])


def member_label(name: str, sample: int | None) -> str:
    """The name a trial goes by in MLflow and the ensemble: the member's, or ``NAME-K`` for
    sample K of a searched member."""
    return name if sample is None else f"{name}-{sample}"


def fold_label(name: str, fold: int) -> str:
    """The label of fold ``fold`` of the bagged member ``name``."""
    return f"{name}/fold{fold}"


def split_fold_label(label: str) -> tuple[str, int] | None:
    """(member name, fold) of a fold's label, None for any other label."""
    name, sep, tail = label.rpartition("/fold")
    return (name, int(tail)) if sep and name and tail.isdigit() else None


def refit_label(name: str) -> str:
    """The label of the bagged member ``name``'s refit on all its rows."""
    return f"{name}/refit"


def student_label(name: str) -> str:
    """The label of the student named ``name`` distilled from the sweep's ensemble."""
    return f"{name}/student"


def trial_label(member: Mapping[str, Any], experiment_tag: Any) -> str:
    """The label of the trial training ``member`` (Tune's ``config["member"]``)."""
    if member.get("teacher"):
        return student_label(member["name"])
    if member.get("refit"):
        return refit_label(member["name"])
    if member.get("fold") is not None:
        return fold_label(member["name"], int(member["fold"]))
    sample = sample_number(experiment_tag) if member.get("searched") else None
    return member_label(member["name"], sample)


def cut_short(fit: Mapping[str, Any]) -> dict[str, int] | None:
    """What runner.time_limit let a member's fit train before it stopped it: its epochs,
    a booster's rounds or a forest's trees (None: it trained to its end)."""
    if not fit.get("stopped_at_deadline"):
        return None
    for unit in ("rounds_run", "trees_run"):
        if fit.get(unit) is not None:
            return {unit: int(fit[unit])}
    return {"epochs_run": int(fit.get("epochs_run") or 1)}


def finished_earlier(label: str, name: str, fold: int | None, finished: Collection[str]) -> bool:
    """Whether a trial's member FINISHED in an earlier attempt of the sweep: its own label (a
    fold's, a refit's, a student's) or, for a fold, its whole member (a bag whose member run
    finished keeps every fold)."""
    return label in finished or (fold is not None and name in finished)


@dataclass(frozen=True)
class SavedPredictions:
    """What a member's ``predictions.npz`` holds, read into memory (the file is closed)."""

    val: np.ndarray
    test: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    fingerprint: str
    test_folds: np.ndarray | None  # a bagged regression member's test rows by fold

    @classmethod
    def read(cls, path: str | Path) -> SavedPredictions:
        """Read ``path`` (older files have no ``test_folds``)."""
        with np.load(path) as npz:
            return cls(
                npz["val"],
                npz["test"],
                npz["y_val"],
                npz["y_test"],
                str(npz["fingerprint"]),
                npz["test_folds"] if "test_folds" in npz.files else None,
            )


@dataclass
class TrialResult:
    """What a finished trial leaves in its checkpoint folder for the driver to log: the
    predictions, ``member.json`` and the saved model (``MODEL_DIR``)."""

    val: np.ndarray
    test: np.ndarray
    fingerprint: str
    info: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    test_folds: np.ndarray | None = None  # a bagged regression member's test rows by fold

    def write(self, folder: Path, y_val: np.ndarray, y_test: np.ndarray) -> None:
        """Save predictions and info into ``folder`` (the model is saved beside them)."""
        by_fold = {} if self.test_folds is None else {"test_folds": self.test_folds}
        np.savez(
            folder / PREDICTIONS,
            val=self.val,
            test=self.test,
            y_val=y_val,
            y_test=y_test,
            fingerprint=np.array(self.fingerprint),
            **by_fold,
        )
        (folder / MEMBER_INFO).write_text(json.dumps(self.info, indent=2, default=str))

    @classmethod
    def read(cls, folder: str | Path) -> TrialResult:
        """Read what ``write`` saved."""
        folder = Path(folder)
        saved = SavedPredictions.read(folder / PREDICTIONS)
        info = json.loads((folder / MEMBER_INFO).read_text())
        return cls(saved.val, saved.test, saved.fingerprint, info, folder, saved.test_folds)

    @property
    def model_dir(self) -> Path | None:
        """The saved model's folder, where the checkpoint is on this machine's filesystem."""
        if self.folder is None or not (self.folder / MODEL_DIR).is_dir():
            return None
        return self.folder / MODEL_DIR
