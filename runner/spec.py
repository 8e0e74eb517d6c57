"""The run specification: validated, frozen dataclasses built from the composed Hydra config.

This is the one place config is interpreted. Every bad value fails here with a ``SpecError``
(one line: where, the value received, what is allowed) before Ray starts or MLflow is touched.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import models
from models.base import TASK_KINDS, InputSpec, Task
from models.training import TrainingOptions, check_for_task
from runner.contracts import TrialInput, import_modules
from runner.data.tables import SEP_NAMES
from runner.data.types import DataSpec
from runner.folders import unmakeable_folder
from runner.search import DOMAINS, SearchSpec, is_domain, split_domains

TRACKING_KEYS = ("uri", "connect_timeout", "background_writes")

# every key the root config and its `runner:` mapping may hold: a misspelt one (runner.timelimit)
# would otherwise be ignored, and the sweep run without what it asked for
TOP_KEYS = (
    "experiment_name", "metric", "smoke", "stages", "members", "training", "ensemble",
    "resources", "runner", "data", "cluster", "tracking", "search", "hydra",
)  # fmt: skip
RUNNER_KEYS = (
    "seed", "sweep_id", "resume", "storage_path", "max_failures", "verbose", "smoke_rows",
    "smoke_epochs", "model_modules", "lease_timeout", "time_limit", "folds", "refit",
)  # fmt: skip
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "file")
CLUSTER_KINDS = ("local", "address")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SpecError(ValueError):
    """A bad config value; its message is one line meant for the user."""


@dataclass(frozen=True)
class Resources:
    """Ray resources of one trial; ``gpu`` may be a fraction."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member: a registry model, its hyperparameters and how to train it."""

    name: str
    model: str
    kind: str  # the model's framework (keras, sklearn), from its registry entry
    hparams: dict[str, Any]
    training: TrainingOptions
    resources: Resources
    seed: int
    # searched paths ("hparams.width", "training.learning_rate") -> domain, and the values
    # each is validated with; hparams/training hold the first candidate
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidates: dict[str, list[Any]] = field(default_factory=dict, compare=False, repr=False)
    model_modules: tuple[str, ...] = ()  # modules registering kinds from outside models/
    folds: int = 0  # bagged over this many folds of the pooled training and validation rows
    refit: bool = False  # the bagged member's refit on all pooled rows (built after its folds)
    teacher: str | None = None  # a student's: the served ensemble's folder (set at run time)

    def trial_input(self) -> TrialInput:
        """What the member's trial gets."""
        return TrialInput(
            name=self.name,
            model=self.model,
            kind=self.kind,
            hparams=dict(self.hparams),
            training=self.training.as_params(),
            resources=asdict(self.resources),
            seed=self.seed,
            searched=bool(self.search),
            model_modules=self.model_modules,
            folds=self.folds,
            refit=self.refit,
            teacher=self.teacher,
        )

    def to_config(self) -> dict[str, Any]:
        """Plain dict for the Tune trial config (and MLflow params)."""
        return self.trial_input().to_config()

    @property
    def config_hash(self) -> str:
        """Stable hash of everything that determines the trained member (and its space)."""
        return config_hash({**self.to_config(), "search": self.search})


def config_hash(member_config: Mapping[str, Any]) -> str:
    """Stable hash of a member's trial config, leaving out its name, resources and where its
    kind comes from."""
    skip = ("name", "resources", "model_modules")
    cfg = {k: v for k, v in member_config.items() if k not in skip}
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class EnsembleSpec:
    """Which ensemble method combines the members, and how it is judged and exported."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    cv_folds: int = 5  # folds of the cross-fitted estimate on validation
    n_boot: int = 1000  # bootstrap resamples of the test gain's interval
    log_model: bool = True  # log the ensemble as an MLflow pyfunc model
    register_as: str | None = None  # also register it in the model registry under this name
    champion: bool = False  # with register_as: move alias 'champion' only if better on test
    calibrate: bool = True  # classification: temperature-scale the ensemble's probabilities
    coverage: float | None = None  # split-conformal intervals or prediction sets at this level
    max_latency_ms: float | None = None  # the served members' summed prediction ms per 1000 rows
    max_members: int | None = None  # at most this many members served
    candidates: int | None = 200  # ensemble only the best this many members on validation
    distill: str | None = None  # a member (or model kind) trained on the ensemble's predictions


@dataclass(frozen=True)
class ClusterSpec:
    """Where Ray runs: a local instance the runner starts, or a running cluster to attach to."""

    kind: str = "local"
    num_cpus: int | None = None  # local: CPUs to declare (null: all)
    num_gpus: int | None = None  # local: GPUs to declare (null: what Ray detects)
    include_dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    address: str | None = None  # address: "auto", "HOST:PORT" (the head's GCS) or "ray://..."
    connect_timeout: float = 10.0  # seconds to wait for an unreachable address


@dataclass(frozen=True)
class StageSpec:
    """An earlier stage: members trained first on their own data, not ensembled, whose saved
    models later members can use (a transfer head's pretrained base)."""

    name: str
    data: DataSpec
    members: tuple[MemberSpec, ...]


@dataclass(frozen=True)
class RunSpec:
    """Everything one sweep needs, validated. ``data`` and ``members`` are the final stage:
    the one that is ensembled; ``stages`` run before it, in order."""

    experiment: str
    data: DataSpec
    members: tuple[MemberSpec, ...]
    ensemble: EnsembleSpec
    cluster: ClusterSpec
    tracking_uri: str
    seed: int
    sweep_id: str
    storage_path: str
    max_failures: int
    verbose: int
    output_dir: str
    stages: tuple[StageSpec, ...] = ()
    smoke: bool = False
    resume: bool | str = False  # re-attach to the latest unfinished sweep; "force": even if
    # its config changed (recorded on the parent run)
    search: SearchSpec = field(default_factory=SearchSpec)
    fresh_sweep: bool = False  # the sweep id was made for this run: no earlier attempt exists
    # runner.resume=true picked the sweep id (the latest unfinished sweep): not the user
    picked_by_resume: bool = False
    multirun_job: bool = False  # one job of a Hydra multirun (-m): resumes its own sweep
    # its values of swept settings the config digest leaves out, which tell its sweep apart
    multirun_key: str = ""
    tracking_timeout: float = 10.0  # seconds the store may take to answer the probe
    background_writes: bool = False  # member runs written by a thread, off Tune's loop
    lease_timeout: float = 60.0  # a sweep's lease without a heartbeat for this long is stale
    folds: int = 0  # bag every final member over this many folds (0: off)
    folds_auto: bool = False  # runner.folds=auto: ``settle_folds`` sets folds from the data
    refit: bool = False  # refit each bagged member on all rows after its folds, and serve that
    time_limit: float | None = None  # seconds for the whole command; later members are skipped
    metric: str | None = None  # ranks members and judges the ensemble (null: accuracy / rmse)
    student: MemberSpec | None = None  # ensemble.distill: trained on the ensemble's predictions
    resolved: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def all_members(self) -> tuple[MemberSpec, ...]:
        """Members of every stage, earlier stages first."""
        return tuple(m for st in self.stages for m in st.members) + self.members

    @property
    def model_modules(self) -> tuple[str, ...]:
        """The modules registering the members' kinds from outside ``models/``."""
        every = self.all_members() + ((self.student,) if self.student else ())
        return tuple(dict.fromkeys(n for m in every for n in m.model_modules))


def _fail(where: str, message: str) -> SpecError:
    return SpecError(f"{where}: {message}" if where else message)


def _bool(where: str, value: Any) -> None:
    """Refuse anything but true or false: Hydra reads ``no`` and ``off`` as truthy strings."""
    if not isinstance(value, bool):
        raise _fail(where, f"must be true or false, got {value!r}")


def _build(cls: type, values: Mapping[str, Any], where: str, **extra: Any) -> Any:
    """Construct a dataclass from a mapping, rejecting unknown keys by name."""
    allowed = [f.name for f in fields(cls) if f.name not in extra]
    for key in values:
        if key not in allowed:
            raise _fail(where, f"unknown key {key!r}; allowed: {', '.join(allowed)}")
    required = [
        f.name
        for f in fields(cls)
        if f.name not in extra and f.default is MISSING and f.default_factory is MISSING
    ]
    for key in required:
        if key not in values:  # e.g. deleted with ~KEY
            raise _fail(f"{where}.{key}" if where else key, "missing; it must be set")
    try:
        return cls(**values, **extra)
    except ValueError as err:
        raise _fail(where, str(err) + _domain_hint(values, str(err))) from None


def _domain_hint(values: Mapping[str, Any], message: str) -> str:
    """What to write instead when a refused value is a one-key mapping that reads as a
    search domain of a kind there is not (``{normal: [0, 1]}``)."""
    for value in values.values():
        if (
            isinstance(value, Mapping)
            and len(value) == 1
            and not is_domain(value)
            and isinstance(next(iter(value.values())), (list, tuple))  # a domain's arguments
            and repr(dict(value)) in message
        ):
            return f" ({next(iter(value))!r} is not a search domain; allowed: {', '.join(DOMAINS)})"
    return ""


def _int(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _verbose(value: Any) -> int:
    """``runner.verbose``: 0 (warnings only), 1 (progress) or 2 (Tune's and Ray's logs too)."""
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise _fail("runner.verbose", f"must be 0, 1 or 2, got {value!r}")
    return int(value)


def _check_writable_folder(where: str, path: Path) -> None:
    """``path`` is a folder, or can be made as one."""
    reason = unmakeable_folder(path)
    if reason is not None:
        raise _fail(where, f"cannot make the folder {str(path)!r} ({reason})")


def _number(where: str, value: Any, minimum: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < minimum:
        raise _fail(where, f"must be a finite number >= {minimum}, got {value!r}")
    return float(value)


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a mapping, got {value!r}")
    return dict(value)


DECIMAL_NAMES = {"comma": ",", "dot": ".", "point": "."}
SEPARATOR_NAMES = {"\\t": "\t", **{word: sep for sep, word in SEP_NAMES.items()}}


def parse_data(raw: Mapping[str, Any]) -> DataSpec:
    """Validate the ``data`` group: a known dataset, split fractions in (0, 1) summing < 1."""
    from runner.data import COMMON_KEYS, LOADERS, OWN_KEYS, OWN_TEST_SPLIT

    raw = _mapping("data", raw)
    spec = _build(DataSpec, raw, "data")
    if spec.name not in LOADERS:
        raise _fail(
            "data.name", f"unknown dataset {spec.name!r}; known: {', '.join(sorted(LOADERS))}"
        )
    reads = COMMON_KEYS | OWN_KEYS.get(spec.name, frozenset())
    defaults = {f.name: f.default for f in fields(DataSpec)}
    for key, value in raw.items():
        if key not in reads and value is not None and value != defaults.get(key):
            readers = sorted(n for n, own in OWN_KEYS.items() if key in own)
            hint = f"data={' or data='.join(readers)} reads it"
            if "csv" in readers:
                hint += "; a table of your own: +experiment=tabular data.path=FILE data.target=COL"
            raise _fail(
                f"data.{key}",
                f"{value!r} does not apply to data={spec.name}, which does not read it ({hint})",
            )
    for key in ("val_fraction", "test_fraction"):
        value = getattr(spec, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise _fail(f"data.{key}", f"must be a number in (0, 1), got {value!r}")
    total = spec.val_fraction + spec.test_fraction
    if total >= 1 and spec.name not in OWN_TEST_SPLIT:
        raise _fail(
            "data",
            f"val_fraction + test_fraction must be < 1 to leave training data, got "
            f"{spec.val_fraction} + {spec.test_fraction} = {total:g}",
        )
    _int("data.seed", spec.seed, 0)
    _bool("data.log_target", spec.log_target)
    if spec.max_rows is not None:
        _int("data.max_rows", spec.max_rows, 10)
    if spec.max_train_rows is not None:
        _int("data.max_train_rows", spec.max_train_rows, 2)
    for key in ("row_limit", "column_limit"):
        if getattr(spec, key) is not None:
            _int(f"data.{key}", getattr(spec, key), 1)
    if spec.sep is not None:
        sep = SEPARATOR_NAMES.get(spec.sep, spec.sep) if isinstance(spec.sep, str) else spec.sep
        if not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n':
            raise _fail(
                "data.sep",
                f"must be one character (',', ';', '|', tab) or null (from the header), "
                f"got {spec.sep!r}",
            )
        spec = replace(spec, sep=sep)
    decimal = (
        DECIMAL_NAMES.get(spec.decimal, spec.decimal)
        if isinstance(spec.decimal, str)
        else spec.decimal
    )
    if decimal not in (None, ".", ","):
        raise _fail(
            "data.decimal", f"must be comma, dot (or ',', '.') or null, got {spec.decimal!r}"
        )
    if decimal is not None and decimal == spec.sep:
        raise _fail(
            "data",
            f"data.sep and data.decimal are both {decimal!r}; one character cannot separate "
            "the fields and mark decimals: change one of them",
        )
    spec = replace(spec, decimal=decimal)
    if spec.image_size is not None:
        size = spec.image_size
        if (
            not isinstance(size, (list, tuple))
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)
        ):
            raise _fail(
                "data.image_size", f"must be [HEIGHT, WIDTH] in pixels or null, got {size!r}"
            )
        spec = replace(spec, image_size=(int(size[0]), int(size[1])))
    if spec.task is not None and spec.task not in TASK_KINDS:
        raise _fail("data.task", f"must be one of {list(TASK_KINDS)} or null, got {spec.task!r}")
    if spec.classes is not None:
        classes = spec.classes if isinstance(spec.classes, (list, tuple)) else [spec.classes]
        if (
            len(classes) < 2
            or len(set(classes)) != len(classes)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in classes)
        ):
            raise _fail(
                "data.classes",
                f"must list two or more distinct class ids >= 0, got {spec.classes!r}",
            )
        spec = replace(spec, classes=tuple(classes))
    return spec


def _member_entries(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name, fields) pairs from a mapping name -> fields or a list of fields with ``name``."""
    if isinstance(raw, Mapping):
        return [(str(k), _mapping(f"members.{k}", v)) for k, v in raw.items()]
    if isinstance(raw, (list, tuple)):
        out = []
        for i, item in enumerate(raw):
            item = _mapping(f"members[{i}]", item)
            name = item.pop("name", None) or item.get("model")
            out.append((str(name), item))
        return out
    raise _fail("members", f"must be a mapping name -> member or a list, got {raw!r}")


def _smoke(runner: Mapping[str, Any]) -> tuple[int, int]:
    """(rows, epochs) of a smoke run."""
    return (
        _int("runner.smoke_rows", runner.get("smoke_rows", 600), 10),
        _int("runner.smoke_epochs", runner.get("smoke_epochs", 1), 1),
    )


def _shrink_data(data: DataSpec, shrink: tuple[int, int] | None) -> DataSpec:
    if shrink is None:
        return data
    rows = shrink[0] if data.max_rows is None else min(shrink[0], data.max_rows)
    return replace(data, max_rows=rows)


def parse_stages(
    raw: Any,
    data: DataSpec,
    training: Mapping[str, Any],
    resources: Mapping[str, Any],
    seed: int,
    shrink: tuple[int, int] | None = None,
    model_modules: tuple[str, ...] = (),
) -> tuple[StageSpec, ...]:
    """Validate earlier stages: name -> {data: overrides of the experiment's data, members}."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _fail("stages", f"must be a mapping stage name -> stage, got {raw!r}")
    stages = []
    for name, body in raw.items():
        where = f"stages.{name}"
        if not NAME_PATTERN.match(str(name)):
            raise _fail(where, f"stage name {name!r} must match {NAME_PATTERN.pattern}")
        body = _mapping(where, body)
        for key in body:
            if key not in ("data", "members", "training"):
                raise _fail(where, f"unknown key {key!r}; allowed: data, members, training")
        own = _mapping(f"{where}.data", body.get("data"))
        inherited = asdict(data)
        if own.get("name", data.name) != data.name:  # another dataset: only keys it reads
            from runner.data import COMMON_KEYS, OWN_KEYS

            reads = COMMON_KEYS | OWN_KEYS.get(str(own["name"]), frozenset())
            inherited = {k: v for k, v in inherited.items() if k in reads}
        try:
            stage_data = parse_data({**inherited, **own})
        except SpecError as err:  # its keys are the stage's
            raise SpecError(f"{where}.{err}") from None
        stage_training = {**training, **_mapping(f"{where}.training", body.get("training"))}
        members = parse_members(
            body.get("members"), stage_training, resources, seed, shrink, model_modules
        )
        stages.append(StageSpec(str(name), _shrink_data(stage_data, shrink), members))
    return tuple(stages)


def check_stage_references(stages: tuple[StageSpec, ...], members: tuple[MemberSpec, ...]) -> None:
    """Member names are unique across stages; ``STAGE.MEMBER`` references point backwards
    to a Keras member of an earlier stage."""
    seen: dict[str, str] = {}
    for stage_name, group in [*((s.name, s.members) for s in stages), ("final", members)]:
        for m in group:
            if m.name in seen:
                raise _fail(
                    "members",
                    f"member name {m.name!r} is used in stages {seen[m.name]!r} "
                    f"and {stage_name!r}; names must be unique across stages",
                )
            seen[m.name] = stage_name
    earlier: dict[str, MemberSpec] = {}
    for stage_name, group in [*((s.name, s.members) for s in stages), ("final", members)]:
        for m in group:
            entry = models.get(m.model)
            for key, ref in entry.stage_references(m.hparams).items():
                where = f"members.{m.name}.hparams.{key}"
                if ref not in earlier:
                    known = ", ".join(sorted(earlier)) or "none"
                    raise _fail(
                        where, f"{ref!r} is not a member of an earlier stage; known: {known}"
                    )
                try:
                    entry.check_reference(key, ref, models.get(earlier[ref].model))
                except ValueError as err:
                    raise _fail(where, str(err)) from None
        for m in group:
            earlier[f"{stage_name}.{m.name}"] = m


def _no_shared_domains(training: Mapping[str, Any]) -> None:
    """A search domain in the shared ``training:`` group is refused naming where it goes
    (each member's trials are searched apart), not as a bad number."""
    for key, value in training.items():
        inner = value.items() if isinstance(value, Mapping) and not is_domain(value) else ()
        for path, found in [(key, value), *((f"{key}.{k}", v) for k, v in inner)]:
            if is_domain(found):
                raise _fail(
                    f"training.{path}",
                    f"a search domain ({next(iter(found))}) is searched per member, not in "
                    f"the shared training group: set members.NAME.training.{key}=... with "
                    "search=random or search=optuna",
                )


def parse_members(
    raw: Any,
    training: Mapping[str, Any],
    resources: Mapping[str, Any],
    seed: int,
    shrink: tuple[int, int] | None = None,
    model_modules: tuple[str, ...] = (),
) -> tuple[MemberSpec, ...]:
    """Validate the members: known models, unique names, training and resources merged."""
    _no_shared_domains(training)
    _build(TrainingOptions, training, "training")
    entries = _member_entries(raw)
    if not entries:
        raise _fail("members", "no members to train; an experiment must define at least one")
    seen: set[str] = set()
    members = []
    for name, item in entries:
        where = f"members.{name}"
        if name in seen:
            raise _fail("members", f"duplicate member name {name!r}; give each member its own")
        seen.add(name)
        if not NAME_PATTERN.match(name):
            raise _fail(where, f"member name {name!r} must match {NAME_PATTERN.pattern}")
        if name in RESERVED_NAMES:
            raise _fail(
                where, f"member name {name!r} is the runner's own run's; name the member otherwise"
            )
        allowed = ("model", "hparams", "training", "resources", "seed")
        for key in item:
            if key not in allowed:
                raise _fail(where, f"unknown key {key!r}; allowed: {', '.join(allowed)}")
        if "model" not in item:
            raise _fail(
                where, f"no model given; known models: {', '.join(sorted(models.REGISTRY))}"
            )
        try:
            entry = models.get(item["model"])
        except ValueError as err:
            hint = (
                "; a kind of your own is registered by its module: runner.model_modules=[MODULE]"
                if not model_modules
                else ""
            )
            raise _fail(f"{where}.model", f"{err}{hint}") from None
        own_training = _mapping(f"{where}.training", item.get("training"))
        if own_training and entry.framework in ("sklearn", "boosters"):
            raise _fail(
                f"{where}.training",
                f"{', '.join(map(str, own_training))}: training options apply to Keras "
                f"members, and {item['model']!r} ({entry.framework}) reads none; set its "
                f"settings in {where}.hparams",
            )
        merged_training = {**training, **own_training}
        if shrink is not None:  # smoke: at most a few epochs, also in place of a searched count
            epochs = merged_training.get("epochs", 1)
            if isinstance(epochs, Mapping):
                merged_training["epochs"] = shrink[1]
            elif isinstance(epochs, (int, float)) and not isinstance(epochs, bool):
                merged_training["epochs"] = min(epochs, shrink[1])
        own_hparams = _mapping(f"{where}.hparams", item.get("hparams"))
        try:
            hparams, h_space, h_cands = split_domains(own_hparams, "hparams")
            merged_training, t_space, t_cands = split_domains(merged_training, "training")
        except ValueError as err:
            raise _fail(where, str(err)) from None
        for path, values in t_cands.items():  # every candidate must make valid options
            for value in values:
                try:
                    _build(
                        TrainingOptions,
                        {**merged_training, path.split(".", 1)[1]: value},
                        f"{where}.{path}",
                    )
                except ValueError as err:
                    raise SpecError(str(err) + _sampled_hint(t_space[path], value)) from None
        merged_resources = {**resources, **_mapping(f"{where}.resources", item.get("resources"))}
        res = _build(Resources, merged_resources, f"{where}.resources")
        _number(f"{where}.resources.cpu", res.cpu, 0)
        _number(f"{where}.resources.gpu", res.gpu, 0)
        if res.gpu > 1 and res.gpu != int(res.gpu):
            raise _fail(
                f"{where}.resources.gpu",
                f"above 1 must be a whole number of GPUs (Ray shares only a fraction of one), "
                f"got {res.gpu!r}",
            )
        if res.cpu == 0 and res.gpu == 0:
            raise _fail(f"{where}.resources", "a member needs some cpu or gpu, got cpu=0 gpu=0")
        hparams = _local_files(entry.file_hparams(), hparams, h_space, h_cands)
        members.append(
            MemberSpec(
                name=name,
                model=item["model"],
                kind=entry.framework,
                hparams=hparams,
                training=_build(TrainingOptions, merged_training, f"{where}.training"),
                resources=Resources(float(res.cpu), float(res.gpu)),
                seed=_int(f"{where}.seed", item.get("seed", seed), 0),
                search={**h_space, **t_space},
                candidates={**h_cands, **t_cands},
                model_modules=model_modules,
            )
        )
    return tuple(members)


def _local_file(value: Any) -> Any:
    """A string naming a file here, made absolute (``~`` expanded); anything else as it is:
    the trials run in Ray's workers, whose directory is not the command's."""
    if isinstance(value, str) and value:
        path = Path(value).expanduser()
        if path.exists() or value.startswith("~"):
            return str(path.resolve())
    return value


def _local_files(
    keys: tuple[str, ...],
    hparams: dict[str, Any],
    space: dict[str, dict[str, Any]],
    candidates: dict[str, list[Any]],
) -> dict[str, Any]:
    """``hparams`` with each of ``keys`` that names a file here made absolute; the same for
    the values of a searched ``choice`` of those keys (``space`` and ``candidates`` in place)."""
    out = dict(hparams)
    for key in keys:
        if key in out:
            out[key] = _local_file(out[key])
        path = f"hparams.{key}"
        if path in candidates:
            candidates[path] = [_local_file(v) for v in candidates[path]]
        if "choice" in space.get(path, {}):
            space[path] = {"choice": [_local_file(v) for v in space[path]["choice"]]}
    return out


def check_members_against_data(
    members: tuple[MemberSpec, ...], task: Task, spec: InputSpec, where: str | None = None
) -> None:
    """Check each member's model suits the task and input, and its hyperparameters' values;
    errors name ``where`` (default ``members.NAME``)."""
    for m in members:
        at = where or f"members.{m.name}"
        entry = models.get(m.model)
        if not entry.supports(task):
            raise _fail(f"{at}.model", f"model {m.model!r} does not support {task.kind}")
        if entry.needs_image and spec.image_shape is None:
            raise _fail(f"{at}.model", f"model {m.model!r} needs image data, got flat features")
        variants = [(m.hparams, None)] + [
            ({**m.hparams, path.split(".", 1)[1]: value}, path)
            for path, values in m.candidates.items()
            if path.startswith("hparams.")
            for value in values
        ]
        if entry.framework == "keras":
            for option, options in _training_variants(m):
                try:
                    check_for_task(options, task)
                except ValueError as err:
                    raise _fail(f"{at}.{option}", str(err)) from None
        for hparams, path in variants:
            try:
                entry.check(hparams, task)
                entry.check_input(hparams, spec)
            except (ValueError, TypeError) as err:
                hint = (
                    _domain_hint(hparams, str(err))
                    if path is None
                    else _sampled_hint(m.search[path], hparams[path[8:]])
                )
                raise _fail(f"{at}.hparams", str(err) + hint) from None


def _training_variants(m: MemberSpec) -> list[tuple[str, TrainingOptions]]:
    """The member's training options, and those of each searched training candidate."""
    out = [("training", m.training)]
    for path, values in m.candidates.items():
        if path.startswith("training."):
            key = path.split(".", 1)[1]
            out += [(path, replace(m.training, **{key: value})) for value in values]
    return out


def _sampled_hint(domain: Mapping[str, Any], value: Any) -> str:
    """Why a value the user never wrote was refused: uniform and loguniform sample fractions
    (``runner.search.check_domain`` checks one)."""
    ((kind, bounds),) = domain.items()
    if kind in ("uniform", "loguniform") and value not in bounds:
        return (
            f" ({kind}{list(bounds)} samples fractions such as this; randint gives whole numbers)"
        )
    return ""


def parse_search(
    raw: Any, stages: tuple[StageSpec, ...], members: tuple[MemberSpec, ...]
) -> SearchSpec:
    """Validate the ``search`` group and that searched members have somewhere to go."""
    spec = _build(SearchSpec, _mapping("search", raw), "search")
    try:
        spec.check()
    except ValueError as err:
        raise _fail("", str(err)) from None
    searched = [m.name for m in members if m.search]
    if searched and spec.name == "none":
        raise _fail(
            "search",
            f"members {searched} have search spaces but search=none; pass search=random or "
            "search=optuna",
        )
    for m in members:  # a searched member's samples are NAME-0, NAME-1, ...
        head, _, index = m.name.rpartition("-")
        if index.isdigit() and head in searched:
            raise _fail(
                f"members.{m.name}",
                f"the name is taken by a sample of the searched member {head!r} "
                f"({head}-0, {head}-1, ...); rename it",
            )
    staged = [m.name for st in stages for m in st.members if m.search]
    if staged:
        raise _fail("stages", f"members of earlier stages cannot be searched, got {staged}")
    return spec


def parse_ensemble(raw: Mapping[str, Any]) -> EnsembleSpec:
    """Validate the ``ensemble`` group by constructing the method with its params."""
    import ensembles

    spec = _build(EnsembleSpec, _mapping("ensemble", raw), "ensemble")
    _name_typed("ensemble.register_as", spec.register_as)
    params = _mapping("ensemble.params", spec.params)
    if spec.method not in ensembles.METHODS:
        known = ", ".join(sorted(ensembles.METHODS))
        raise _fail("ensemble.method", f"unknown ensemble method {spec.method!r}; known: {known}")
    from runner.ensemble_defaults import as_default_types

    params = as_default_types(spec.method, params)  # ensemble.params.l2=0 is l2: 0.0
    try:
        ensembles.make(spec.method, **params).check_params()
    except (TypeError, ValueError) as err:
        raise _fail("ensemble.params", str(err)) from None
    _int("ensemble.cv_folds", spec.cv_folds, 2)
    from ensembles.honest import MIN_BOOT

    _int("ensemble.n_boot", spec.n_boot, MIN_BOOT)
    if spec.register_as is not None and not (
        isinstance(spec.register_as, str) and NAME_PATTERN.match(spec.register_as)
    ):
        raise _fail(
            "ensemble.register_as", f"{spec.register_as!r} must match {NAME_PATTERN.pattern}"
        )
    for key in ("calibrate", "log_model", "champion"):
        _bool(f"ensemble.{key}", getattr(spec, key))
    if spec.champion and not spec.register_as:
        raise _fail("ensemble.champion", "needs ensemble.register_as=NAME (the registered model)")
    if spec.register_as and not spec.log_model:
        raise _fail(
            "ensemble.register_as",
            f"{spec.register_as!r} registers the logged model, and ensemble.log_model=false "
            "logs none; drop one of them",
        )
    from ensembles.conformal import check_coverage

    try:
        coverage = check_coverage(spec.coverage)
    except ValueError as err:
        raise _fail("ensemble.coverage", str(err).removeprefix("coverage ")) from None
    from ensembles.budget import check_limits

    try:
        max_latency_ms, max_members = check_limits(spec.max_latency_ms, spec.max_members)
    except ValueError as err:
        key, _, message = str(err).partition(" ")
        raise _fail(f"ensemble.{key}", message) from None
    from ensembles.stage import check_candidates

    try:
        check_candidates(spec.candidates)
    except ValueError as err:
        raise _fail("ensemble.candidates", str(err).removeprefix("max_candidates ")) from None
    return replace(
        spec,
        params=params,
        coverage=coverage,
        max_latency_ms=max_latency_ms,
        max_members=max_members,
    )


def parse_cluster(raw: Mapping[str, Any]) -> ClusterSpec:
    """Validate the ``cluster`` group."""
    spec = _build(ClusterSpec, _mapping("cluster", raw), "cluster")
    if spec.kind not in CLUSTER_KINDS:
        raise _fail(
            "cluster.kind", f"unknown kind {spec.kind!r}; allowed: {', '.join(CLUSTER_KINDS)}"
        )
    for key, least in (("num_cpus", 1), ("num_gpus", 0)):  # no CPU: not a trial could run
        if getattr(spec, key) is not None:
            _int(f"cluster.{key}", getattr(spec, key), least)
    _number("cluster.connect_timeout", spec.connect_timeout, 0.1)
    if spec.kind == "local" and spec.address is not None:
        raise _fail(
            "cluster.address",
            f"{spec.address!r} is for cluster=address (cluster=local starts a Ray of its own on "
            "this machine); add cluster=address to attach to it",
        )
    if spec.kind == "address":
        local_only = {
            f"cluster.{key}={getattr(spec, key)}"
            for key in ("num_cpus", "num_gpus")
            if getattr(spec, key) is not None
        } | ({"cluster.include_dashboard=true"} if spec.include_dashboard is True else set())
        if local_only:
            raise _fail(
                "cluster",
                f"{', '.join(sorted(local_only))} applies to cluster=local only: an attached "
                "cluster's nodes declare their own (ray start --num-cpus/--num-gpus, and its "
                "dashboard)",
            )
    if spec.kind == "address":
        address = spec.address
        if not isinstance(address, str) or not address:
            raise _fail("cluster.address", f"cluster=address needs an address, got {address!r}")
        if address != "auto" and not re.match(r"^(ray://)?[^:/\s]+:\d+$", address):
            raise _fail(
                "cluster.address",
                f"must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}",
            )
    _bool("cluster.include_dashboard", spec.include_dashboard)
    return spec


def check_client_mode(spec: RunSpec) -> None:
    """With ``ray://`` the sweep runs on the head: the MLflow store and Tune's storage must be
    reachable from there, so relative SQLite paths are refused."""
    if not (spec.cluster.address or "").startswith("ray://"):
        return
    uri = spec.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        raise _fail(
            "tracking.uri",
            f"with cluster.address=ray://... the sweep runs on the head, so {uri!r} (a path "
            "relative to this directory) cannot be shared; use an MLflow server "
            "(http://...) or an absolute path the head can reach",
        )


def check_shared_storage(spec: RunSpec) -> None:
    """On a cluster, Tune's storage must be where every node can read and write: a cloud URI
    or an explicitly chosen shared directory (the default ./ray_results is this machine's)."""
    if spec.cluster.kind != "address" or "://" in spec.storage_path:
        return
    if spec.storage_path == str(Path("ray_results").resolve()):
        raise _fail(
            "runner.storage_path",
            "cluster=address needs storage every node shares: a shared directory or a URI "
            f"such as s3://bucket/path, got the local default {spec.storage_path!r}",
        )
    if not Path(spec.storage_path).is_dir():
        raise _fail(
            "runner.storage_path",
            f"shared storage {spec.storage_path!r} is not a directory on this machine",
        )


def _background_writes(tracking: Mapping[str, Any]) -> bool:
    """``tracking.background_writes``: true, false, or auto (a thread for a store across a
    network; a SQLite or file store is written in Tune's loop)."""
    from runner.store_writer import background_by_default

    value = tracking.get("background_writes", "auto")
    if value == "auto":
        return background_by_default(str(tracking.get("uri") or ""))
    if not isinstance(value, bool):
        raise _fail("tracking.background_writes", f"must be true, false or auto, got {value!r}")
    return value


def parse_tracking_uri(uri: Any) -> str:
    """Validate the MLflow tracking URI's scheme."""
    if not isinstance(uri, str) or not uri:
        raise _fail("tracking.uri", f"must be a URI string, got {uri!r}")
    # MLflow's own spelling of a Databricks workspace is the bare word (or databricks://PROFILE)
    scheme = "databricks" if uri == "databricks" else urlparse(uri).scheme.split("+")[0].lower()
    if scheme not in TRACKING_SCHEMES:
        raise _fail(
            "tracking.uri",
            f"unknown scheme {scheme!r} in {uri!r}; allowed: {', '.join(TRACKING_SCHEMES)}",
        )
    return uri


def parse_model_modules(raw: Any) -> tuple[str, ...]:
    """Import the modules that register model kinds from outside ``models/``
    (``runner.model_modules``); each must be importable here and on every worker."""
    if raw is None:
        return ()
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise _fail("runner.model_modules", f"must be a list of module names, got {raw!r}")
    from models.registry import code_path

    for name in names:
        try:
            import_modules([name])
        except Exception as err:  # a missing module or one that fails on import
            raise _fail(
                "runner.model_modules", f"cannot import {name!r} ({type(err).__name__}: {err})"
            ) from None
        try:  # the served model ships it: found now, not after training
            code_path(name)
        except ValueError as err:
            raise _fail("runner.model_modules", str(err)) from None
    return tuple(names)


# names of the sweep's own runs and leaderboard rows, not for members
RESERVED_NAMES = frozenset({"ensemble"})

AUTO_FOLDS = 5  # runner.folds=auto: bag over this many folds ...
AUTO_FOLD_ROWS = 10_000  # ... tables of at most this many training and validation rows
SMOKE_AUTO_FOLDS = 2  # a smoke run bags over two folds: the bagged path, checked quickly


def parse_folds(raw: Any, members: tuple[MemberSpec, ...]) -> int | str:
    """``runner.folds``: 0 (no bagging), K >= 2 folds, or ``auto`` (settled by ``settle_folds``
    once the data's size is known); searched members cannot be bagged."""
    if raw is None or raw == 0:
        return 0
    if raw == "auto":
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 2:
        raise _fail("runner.folds", f"must be 0 (no bagging), an integer >= 2 or auto, got {raw!r}")
    searched = [m.name for m in members if m.search]
    if searched:
        raise _fail(
            "runner.folds",
            f"bagging does not combine with searched members yet, got {raw} folds and searched "
            f"members {searched}; drop their search spaces or set runner.folds=0",
        )
    return raw


def parse_student(
    ensemble: EnsembleSpec,
    members: tuple[MemberSpec, ...],
    training: Mapping[str, Any],
    resources: Mapping[str, Any],
    seed: int,
    shrink: tuple[int, int] | None,
    model_modules: tuple[str, ...],
) -> MemberSpec | None:
    """``ensemble.distill``: the student, a copy of the named plain member (not bagged), or
    a model kind with its defaults; None without one."""
    name = ensemble.distill
    if name is None:
        return None
    where = "ensemble.distill"
    named = {m.name: m for m in members}
    if not isinstance(name, str) or not (name in named or name in models.REGISTRY):
        raise _fail(
            where,
            f"unknown member or model {name!r}; members: {', '.join(named)}; models: "
            f"{', '.join(sorted(models.REGISTRY))}",
        )
    if not ensemble.log_model:
        raise _fail(
            where, "the student learns from the served ensemble; set ensemble.log_model=true"
        )
    if name in named and not (named[name].search and name in models.REGISTRY):
        if named[name].search:
            raise _fail(where, f"member {name!r} is searched; name a plain member or a model kind")
        return replace(named[name], folds=0, refit=False)
    (student,) = parse_members(
        {name: {"model": name}}, training, resources, seed, shrink, model_modules
    )
    return student


def settle_folds(spec: RunSpec, rows: int, smallest_class: int | None) -> tuple[RunSpec, str]:
    """``runner.folds=auto`` settled for a table of ``rows`` training and validation rows
    (``smallest_class``: the rows of its rarest class): small tables, where a validation split
    is too few rows to weigh members on, are bagged; returns the spec and a note saying so."""
    want = SMOKE_AUTO_FOLDS if spec.smoke else AUTO_FOLDS
    searched = any(m.search for m in spec.members) or spec.search.objective == "ensemble"
    k = want if rows <= AUTO_FOLD_ROWS and not searched else 0
    if k and smallest_class is not None:
        k = min(k, smallest_class) if smallest_class >= 2 else 0
    if k:
        note = (
            f"runner.folds=auto: every member is bagged over {k} folds of the {rows} training "
            f"and validation rows (tables of up to {AUTO_FOLD_ROWS:,} rows are); "
            "runner.folds=0 trains each member once"
        )
    else:
        if searched:
            why = "searched members are not bagged"
        elif rows > AUTO_FOLD_ROWS:
            why = f"{rows} rows, more than {AUTO_FOLD_ROWS:,}"
        else:
            why = f"a class has {smallest_class} row(s)"
        note = f"runner.folds=auto: members train once, not bagged ({why})"
        if spec.refit:
            raise _fail(
                "runner.refit",
                f"refits a bagged member, and runner.folds=auto does not bag here ({why}); "
                "set runner.folds=K (K >= 2) or runner.refit=false",
            )
    members = tuple(replace(m, folds=k) for m in spec.members)
    return replace(spec, folds=k, folds_auto=False, members=members), note


def parse_refit(raw: Any, folds: int | str) -> bool:
    """``runner.refit``: true or false; a refit follows the folds of a bagged member."""
    _bool("runner.refit", raw)
    if raw and not folds:
        raise _fail(
            "runner.refit",
            "refits a bagged member on all its rows after its folds, got runner.refit=true "
            "with runner.folds=0; set runner.folds=K (K >= 2) too",
        )
    return raw


def _metric(raw: Any) -> str | None:
    """``metric``: null, or one of the metrics ``ensembles.metrics`` knows."""
    from ensembles.metrics import METRICS

    if raw is not None and raw not in METRICS:
        raise _fail("metric", f"unknown metric {raw!r}; known: {', '.join(METRICS)} or null")
    return raw


def check_coverage_against_rows(coverage: float | None, n_rows: int) -> None:
    """``ensemble.coverage`` must be reachable with the rows that calibrate it (validation,
    or every pooled row when bagged): too few make infinite intervals."""
    from ensembles.conformal import check_calibration_rows

    try:
        check_calibration_rows(coverage, n_rows, "ensemble.coverage")
    except ValueError as err:
        raise _fail("", str(err)) from None


def check_metric_against_task(
    metric: str | None, task: Task, search_metric: str = "val_loss"
) -> None:
    """The chosen metric, and a search's ``final_val_*`` metric, must score the data's task."""
    from ensembles.metrics import METRICS, check_metric
    from runner.search import FINAL_METRICS

    if metric is not None:
        try:
            check_metric(metric, task.is_classification)
        except ValueError as err:
            raise _fail("", str(err)) from None  # it names the metric itself
    kind = "classification" if task.is_classification else "regression"
    scored = search_metric.removeprefix("final_val_")
    if scored != search_metric and METRICS.get(scored) != kind:
        reported = [f"final_val_{m}" for m in FINAL_METRICS if METRICS.get(m) == kind]
        raise _fail(
            "search.metric",
            f"{search_metric} is not reported for {kind}; allowed: val_loss, {', '.join(reported)}",
        )


def _time_limit(raw: Any) -> float | None:
    """``runner.time_limit``: null, or a number of seconds > 0."""
    if raw is None:
        return None
    ok = isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw)
    if not ok or raw <= 0:
        raise _fail("runner.time_limit", f"must be null or a number of seconds > 0, got {raw!r}")
    return float(raw)


def new_sweep_id() -> str:
    """A fresh, sortable, unique sweep id."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _check_keys(cfg: Mapping[str, Any], runner: Mapping[str, Any]) -> None:
    """Refuse a key the root config or ``runner:`` does not have, naming the closest."""
    import difflib

    for where, keys, allowed in (("", cfg, TOP_KEYS), ("runner.", runner, RUNNER_KEYS)):
        for key in keys:
            if key in allowed:
                continue
            if not where and key in ("optimizer", "schedule"):
                hint = f"; the {key} group's settings are training.{key}.KEY=VALUE"
            elif not where and key == "experiment":
                hint = "; an experiment file starts with the line '# @package _global_'"
            elif not where and key == "model":
                hint = "; a model preset goes to a member: +model@members.NAME=PRESET"
            else:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"; did you mean {where}{close[0]}?" if close else ""
            raise _fail(
                f"{where}{key}",
                f"unknown key{hint} (allowed{' under runner' if where else ''}: "
                f"{', '.join(allowed)})",
            )


def _name_typed(key: str, value: Any) -> None:
    """A name Hydra read as a number or a boolean (2024, 2024_01, 1e3, true) fails in one
    line saying how to keep it text: its digits cannot be echoed as typed (2024_01 reads as
    202401)."""
    if value is not None and not isinstance(value, str):
        raise _fail(
            key,
            f"Hydra read the value as the {type(value).__name__} {value!r}, not a name; quote a "
            f"name made of digits or true/false: {key}=\"'NAME'\"",
        )


def from_config(cfg: Mapping[str, Any], experiment: str | None, output_dir: str) -> RunSpec:
    """Build and validate the run spec from a resolved config (a plain dict)."""
    named = cfg.get("experiment_name")
    _name_typed("experiment_name", named)
    if named is not None and not NAME_PATTERN.match(named):
        raise _fail(  # '' fell back to the experiment's name in silence
            "experiment_name", f"{named!r} must match {NAME_PATTERN.pattern} (or be null)"
        )
    from_env = os.environ.get("MLFLOW_EXPERIMENT_NAME") or None  # empty: unset
    if named is None and from_env is not None:
        if not NAME_PATTERN.match(from_env):
            raise _fail(
                "experiment_name",
                f"MLFLOW_EXPERIMENT_NAME={from_env!r} is no name the runner can use (it must "
                f"match {NAME_PATTERN.pattern}); unset it or pass experiment_name=NAME",
            )
        named = from_env
    # an experiment file in a sub-folder (+experiment=team/nested) is named team.nested
    name = named or (str(experiment).replace("/", ".") if experiment else None)
    if not name:
        raise _fail("experiment", "no experiment selected; pass +experiment=NAME")
    if not NAME_PATTERN.match(str(name)):
        if named:
            raise _fail("experiment_name", f"{name!r} must match {NAME_PATTERN.pattern}")
        raise _fail(
            "experiment",
            f"{experiment!r} gives no name matching {NAME_PATTERN.pattern}; pass "
            "experiment_name=NAME",
        )
    runner = _mapping("runner", cfg.get("runner"))
    _check_keys(cfg, runner)
    _name_typed("runner.sweep_id", runner.get("sweep_id"))
    seed = _int("runner.seed", runner.get("seed", 0), 0)
    resume = runner.get("resume", False)
    if not isinstance(resume, bool) and resume != "force":
        raise _fail("runner.resume", f"must be true, false or force, got {resume!r}")
    # with resume and no id, the tracker finds the sweep to resume in MLflow
    if runner.get("sweep_id") == "":
        raise _fail(
            "runner.sweep_id", "must be a name or null (a new id), got '' (an empty variable?)"
        )
    fresh = not runner.get("sweep_id") and not resume
    sweep_id = new_sweep_id() if fresh else (runner.get("sweep_id") or "")
    if sweep_id and not NAME_PATTERN.match(str(sweep_id)):
        raise _fail("runner.sweep_id", f"{sweep_id!r} must match {NAME_PATTERN.pattern}")
    storage = runner.get("storage_path") or "ray_results"
    if not isinstance(storage, str):
        raise _fail("runner.storage_path", f"must be a path, got {storage!r}")
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
        _check_writable_folder("runner.storage_path", Path(storage))
    training = _mapping("training", cfg.get("training"))
    resources = _mapping("resources", cfg.get("resources"))
    smoke = cfg.get("smoke", False)
    _bool("smoke", smoke)
    shrink = _smoke(runner) if smoke else None
    data = parse_data(cfg.get("data") or {})
    tracking = _mapping("tracking", cfg.get("tracking"))
    for key in tracking:
        if key not in TRACKING_KEYS:
            raise _fail("tracking", f"unknown key {key!r}; allowed: {', '.join(TRACKING_KEYS)}")
    modules = parse_model_modules(runner.get("model_modules"))
    stages = parse_stages(cfg.get("stages"), data, training, resources, seed, shrink, modules)
    members = parse_members(cfg.get("members"), training, resources, seed, shrink, modules)
    check_stage_references(stages, members)
    search = parse_search(cfg.get("search"), stages, members)
    folds = parse_folds(runner.get("folds", 0), members)
    if search.objective == "ensemble" and folds and folds != "auto":
        raise _fail(
            "search.objective",
            "ensemble scores whole trials against the ensemble so far; bagged trials are "
            f"folds of a member (runner.folds={folds}); use runner.folds=0 or objective=member",
        )
    if search.objective == "ensemble" and not any(m.search for m in members):
        raise _fail(
            "search.objective",
            "ensemble scores a searched member's samples by what they add to the ensemble, but "
            "no member has a search space (e.g. members.mlp.hparams.width={choice:[64,128]}); "
            "give one a space or drop the option",
        )
    auto = folds == "auto"
    folds = 0 if auto else int(folds)
    members = tuple(replace(m, folds=folds) for m in members)
    ensemble = parse_ensemble(cfg.get("ensemble") or {})
    student = parse_student(ensemble, members, training, resources, seed, shrink, modules)
    spec = RunSpec(
        experiment=str(name),
        data=_shrink_data(data, shrink),
        members=members,
        stages=stages,
        smoke=smoke,
        resume=resume,
        search=search,
        fresh_sweep=fresh,
        ensemble=ensemble,
        student=student,
        cluster=parse_cluster(cfg.get("cluster") or {}),
        tracking_uri=parse_tracking_uri(tracking.get("uri")),
        background_writes=_background_writes(tracking),
        lease_timeout=_number("runner.lease_timeout", runner.get("lease_timeout", 60.0), 1),
        folds=folds,
        folds_auto=auto,
        refit=parse_refit(runner.get("refit", False), "auto" if auto else folds),
        time_limit=_time_limit(runner.get("time_limit")),
        metric=_metric(cfg.get("metric")),
        # logged on the parent run: never the tracking URI (it may hold credentials)
        resolved={k: v for k, v in cfg.items() if k not in ("hydra", "tracking")},
        tracking_timeout=_number(
            "tracking.connect_timeout", tracking.get("connect_timeout", 10.0), 0.1
        ),
        seed=seed,
        sweep_id=str(sweep_id),
        storage_path=storage,
        max_failures=_int("runner.max_failures", runner.get("max_failures", 0), 0),
        verbose=_verbose(runner.get("verbose", 1)),
        output_dir=os.path.abspath(output_dir),
    )
    if student is not None and "://" in storage:
        raise _fail(
            "ensemble.distill",
            f"the student reads the served ensemble from runner.storage_path, which must be a "
            f"filesystem path (shared by the nodes), got {storage!r}",
        )
    check_shared_storage(spec)
    check_client_mode(spec)
    return spec
