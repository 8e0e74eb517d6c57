"""``python -m runner +experiment=NAME``: compose -> validate -> sweep -> leaderboard."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from runner import CONF_DIR, IMPORTED_AT, process_env
from runner.hydra_errors import (
    extra_config_dirs,
    given_config_dirs,
    job_started,
    redact_saved_config,
    run_holding_stderr,
)

if TYPE_CHECKING:
    from runner.data import Dataset
    from runner.spec import DataSpec, RunSpec


process_env.apply()  # before MLflow, Ray or TensorFlow is imported

# Library loggers whose INFO/WARNING lines say nothing a user acts on (shown at verbose=2).
CHATTY_LOGGERS = (
    "mlflow.store.db.utils",  # "Creating initial MLflow database tables..."
    "alembic",
    "urllib3.connectionpool",  # "Retrying (Retry(total=...))": MLflow's HTTP retries
    "ray._private.authentication.authentication_token_setup",  # token auth is on: expected
)


def known_experiments(extra_dirs: list[Path] | None = None) -> list[str]:
    """Experiment names: the files in conf/experiment/ and in any extra config dirs."""
    dirs = [Path(d) / "experiment" for d in (CONF_DIR, *(extra_dirs or []))]
    # a file in a sub-folder is chosen by its path: +experiment=team/nested
    return sorted(
        {p.relative_to(d).with_suffix("").as_posix() for d in dirs for p in d.rglob("*.yaml")}
    )


class JobRefused(Exception):
    """A multirun's job stopped (why, said in one line): the next job goes on."""


REFUSED_JOBS: list[int] = []  # the numbers of a multirun's jobs that stopped


def _merged_into_group(raw: Mapping[str, Any], choices: Mapping[str, Any]) -> str | None:
    """A top-level ``training.optimizer`` (or ``schedule``) mapping naming another than its
    config group's choice: Hydra merged the chosen group's options into it, and the check
    would blame options the user never wrote (sgd 'has no option beta_1'). Said here."""
    from models.optimizers import OPTIMIZER_OPTIONS
    from models.schedules import SCHEDULE_DEFAULTS

    training = raw.get("training") or {}
    for group, known in (("optimizer", OPTIMIZER_OPTIONS), ("schedule", SCHEDULE_DEFAULTS)):
        node, choice = training.get(group), choices.get(group)
        if not isinstance(node, Mapping) or not choice or node.get("name") == choice:
            continue
        name = node.get("name")
        if name not in known:
            continue  # the check names the known ones
        # the chosen group's own options only: any other unknown key is the user's to hear of
        foreign = [k for k in node if k in known.get(choice, ()) and k not in known[name]]
        if foreign:
            return (
                f"training.{group} names {name!r} but also holds {', '.join(foreign)} from "
                f"the {choice!r} {group} Hydra chose by default (it merges a mapping into "
                f"it): choose it with {group}={name} (in an experiment file, "
                f"'- override /{group}: {name}' among its defaults) and set its options as "
                f"training.{group}.KEY=VALUE"
            )
    return None


def _fail(message: str, ends_all: bool = False) -> None:
    """Bad input: one ``error:`` line and exit code 2. In a multirun only this job stops
    (JobRefused): the others run, and the command exits 2 once they did; unless
    ``ends_all`` (a store that failed for good fails every later job too)."""
    print(f"error: {message}", file=sys.stderr)
    if ends_all:
        sys.exit(2)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        REFUSED_JOBS.append(HydraConfig.get().job.num)
        raise JobRefused(message)
    sys.exit(2)


def _resolved(cfg: DictConfig) -> dict:
    """The config with every ``${...}`` resolved; SpecError naming the key whose
    interpolation or resolver failed (an unset ``${oc.env:...}``, a key that is not there)."""
    from omegaconf.errors import InterpolationResolutionError

    from runner.spec import SpecError

    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as err:
        written = _unresolved_value(cfg, err.full_key)
        reason = str(err.msg).splitlines()[0]
        key = f"{err.full_key}={written}" if written else err.full_key
        raise SpecError(f"{key}: {reason}" if key else reason) from None


def _unresolved_value(cfg: DictConfig, key: str | None) -> str | None:
    """The text written at ``key`` (e.g. ``${oc.env:X}``), or None where it cannot be read."""
    try:
        node = cfg
        for part in (key or "").split("."):
            node = node._get_node(part)
        written = str(node._value())
        return None if "\n" in written or len(written) > 200 else written
    except Exception:
        return None


def _warn_shadowed(argv: list[str]) -> None:
    """Say which of the user's config files Hydra never reads: a file named as one of the
    runner's own (a copy of quickstart.yaml edited in place) loses to it on the search path."""
    shadowed = [
        (folder / rel, rel.as_posix())
        for folder in extra_config_dirs(argv) or []
        for rel in sorted(p.relative_to(folder) for p in folder.rglob("*.yaml"))
        if (CONF_DIR / rel).is_file()
    ]
    for path, rel in shadowed[:5]:
        print(
            f"warning: {path} is not read: the runner's own {rel} of the same name comes "
            "first on Hydra's search path; give yours another name",
            file=sys.stderr,
        )


@contextlib.contextmanager
def _users_experiments_listed(argv: list[str]) -> Iterator[None]:
    """After Hydra's --help, the experiments of the user's config folders: Hydra lists the
    groups of its own search path, without those hydra.searchpath adds."""
    try:
        yield
    finally:
        searched = [a for a in argv if a.lstrip("+").startswith("hydra.searchpath=")]
        dirs = extra_config_dirs(searched) or []  # --config-dir's Hydra lists itself
        own = sorted(set(known_experiments(dirs)) - set(known_experiments()))
        if own:
            print(f"Your experiments ({', '.join(map(str, dirs))}): {', '.join(own)}")


def _check_experiment_override(argv: list[str]) -> None:
    """Reject an unknown +experiment=NAME, or a config folder that is not there, with one
    line, before Hydra composes anything."""
    for folder in given_config_dirs(argv) or []:
        if not folder.is_dir():
            _fail(f"config folder {folder} (--config-dir or hydra.searchpath) is not a folder")
    extra = extra_config_dirs(argv)
    other_primary = ("--config-name", "-cn", "--config-path", "-cp")
    if extra is None or any(a in other_primary or a.startswith(other_primary) for a in argv):
        return  # another primary config may add search paths of its own: Hydra decides
    known = known_experiments(extra)
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        value = value.strip().strip("'\"")
        if key != "experiment" or "(" in value or value.startswith("["):  # Hydra's syntax
            continue
        for name in value.split(","):  # a multirun sweeps over a comma-separated list
            if name.strip().strip("'\"") not in known:
                _fail(f"unknown experiment {name!r}; known experiments: {', '.join(known)}")


def _load(spec: DataSpec, where: str) -> Dataset:
    """Load a dataset; a missing file or bad column becomes a one-line SpecError."""
    from runner.data import load
    from runner.spec import SpecError

    try:
        data = load(spec)
    except (OSError, ValueError) as err:
        raise SpecError(f"{where}: {err}") from None
    for note in data.notes:
        print(f"note: {where}: {note}", file=sys.stderr)
    return data


def _held_out(stage: Dataset, final: Dataset, split_as: str, name: str) -> Dataset:
    """A stage's data without the experiment's validation and test rows (a bagged
    experiment's validation rows are all its pooled rows), said how many, unless the stage is
    split as the experiment's data is (``split_as``, its fingerprint before bagging)."""
    from runner.data.split import held_out_of
    from runner.spec import SpecError

    if stage.fingerprint == split_as:
        return stage
    try:
        stage, removed = held_out_of(stage, final)
    except ValueError as err:
        raise SpecError(f"stages.{name}.data: {err}") from None
    if removed:
        print(
            f"note: stages.{name}.data: {removed} training or validation row(s) that the "
            "experiment validates or tests on are left out",
            file=sys.stderr,
        )
    return stage


def _bagged(data: Dataset, folds: int, seed: int) -> Dataset:
    """The dataset pooled and split into ``folds`` folds; too few rows is a SpecError."""
    from runner.data import bagged
    from runner.spec import SpecError

    try:
        return bagged(data, folds, seed)
    except ValueError as err:
        raise SpecError(f"runner.folds: {err}") from None


def _settle_folds(spec: RunSpec, data: Dataset) -> tuple[RunSpec, str]:
    """``runner.folds=auto`` for this dataset's size, and the note that says what it chose."""
    import numpy as np

    from runner.spec import settle_folds

    pooled = np.concatenate([np.asarray(data.y_train), np.asarray(data.y_val)])
    smallest = (
        int(np.unique(pooled, return_counts=True)[1].min()) if data.task.is_classification else None
    )
    return settle_folds(spec, len(pooled), smallest)


def _probe_store(spec: RunSpec) -> None:
    """The MLflow store answers and can be written, and Tune's storage URI (if a URI)
    answers, within tracking.connect_timeout; with a Ray Client address the sweep writes
    from the head, which this machine cannot probe."""
    from runner.spec import SpecError
    from runner.store_probe import StoreUnavailable, probe

    if (spec.cluster.address or "").startswith("ray://"):
        return
    try:
        probe(spec.tracking_uri, spec.tracking_timeout)
    except StoreUnavailable as err:
        raise SpecError(str(err)) from None
    if "://" in spec.storage_path:
        from runner.storage_probe import StorageUnavailable, probe_storage

        try:
            probe_storage(spec.storage_path, spec.tracking_timeout)
        except StorageUnavailable as err:
            raise SpecError(str(err)) from None


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _main(cfg: DictConfig) -> None:
    with contextlib.suppress(JobRefused):  # said already; a multirun goes on with its next job
        _job(cfg)


_JOBS_BEGUN: list[float] = []  # when each job of this process began (time.time())


def _job_began() -> float:
    """When this job began: the command's start for the first (runner.time_limit counts the
    imports and the data's loading too), now for a multirun's later jobs."""
    _JOBS_BEGUN.append(time.time() if _JOBS_BEGUN else IMPORTED_AT)
    return _JOBS_BEGUN[-1]


def _listed(hydra_cfg: Any) -> list[str]:
    """The +experiment=[a,b] overrides of the job (a list selects no single choice), read
    without resolving the overrides' interpolations."""
    from omegaconf import OmegaConf

    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    return [a.split("=", 1)[1] for a in task or () if str(a).startswith("+experiment=")]


def _swept_volatile(hydra_cfg: Any) -> str:
    """This multirun job's values of the settings the command line or the config's sweeper
    sweeps that a sweep's config digest leaves out (``cluster.num_cpus=1,2``): jobs
    differing only there would otherwise take each other's sweeps for their own on resume."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from runner.runtree import is_volatile

    parser = OverridesParser.create()
    swept = set()
    # swept on the command line, or by the config's hydra.sweeper.params (key: "1,2")
    in_config = getattr(getattr(hydra_cfg, "sweeper", None), "params", None) or {}
    config_sweeps = [f"{key}={value}" for key, value in in_config.items()]
    for arg in [*sys.argv[1:], *config_sweeps]:
        if "=" not in arg or arg.startswith("-"):
            continue
        try:
            override = parser.parse_override(arg)
        except Exception:  # noqa: BLE001 - Hydra took the command line: not one of its sweeps
            continue
        if override.is_sweep_override() and is_volatile(override.key_or_group):
            swept.add(override.key_or_group)
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False) or []
    return " ".join(sorted(str(a) for a in task if str(a).lstrip("+~").split("=")[0] in swept))


def _job(cfg: DictConfig) -> None:
    """One run of the command (one job of a multirun): check, train, ensemble, report."""
    job_started()  # first: whatever fails from here on shows as it is
    began = _job_began()
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from runner.spec import (
        SpecError,
        check_coverage_against_rows,
        check_members_against_data,
        check_metric_against_task,
        from_config,
    )

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.job.chdir:  # relative paths (the store, data, Tune's results) mean where the
        os.chdir(hydra_cfg.runtime.cwd)  # command was typed; the outputs stay in output_dir
    if hydra_cfg.output_subdir is not None:
        redact_saved_config(Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir)
    if hydra_cfg.mode == RunMode.MULTIRUN:  # multirun.yaml in the sweep's folder
        redact_saved_config(Path(hydra_cfg.sweep.dir))
    experiment = hydra_cfg.runtime.choices.get("experiment")
    if experiment is None and not cfg.get("experiment_name") and (chosen := _listed(hydra_cfg)):
        _fail(
            f"+experiment={chosen[0]} selects several experiments: name the MLflow experiment "
            "their runs go to with experiment_name=NAME"
        )
    if experiment is None and not cfg.get("experiment_name"):
        known = ", ".join(known_experiments(extra_config_dirs(sys.argv[1:])))
        _fail(f"no experiment selected; pass +experiment=NAME, one of: {known}")
    try:
        raw = _resolved(cfg)
        merged = _merged_into_group(raw, hydra_cfg.runtime.choices)
        if merged:
            _fail(merged)
        spec = from_config(raw, experiment, hydra_cfg.runtime.output_dir)
        if hydra_cfg.mode == RunMode.MULTIRUN:  # runner.resume=true: each job its own sweep
            spec = replace(spec, multirun_job=True, multirun_key=_swept_volatile(hydra_cfg))
        if spec.verbose < 2:
            for name in CHATTY_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        from runner.cluster import ClusterError, check_local_resources

        try:  # a local Ray's size is known before it starts, before the store and the data
            check_local_resources(spec.cluster, spec.all_members(), spec.student)
        except ClusterError as err:
            _fail(str(err))
        _probe_store(spec)
        data = _load(spec.data, "data")
        unbagged = data
        folds_note = None
        if spec.folds_auto:
            spec, folds_note = _settle_folds(spec, data)
        if spec.folds:
            data = _bagged(data, spec.folds, spec.data.seed)
        check_members_against_data(spec.members, data.task, data.input_spec)
        if spec.student is not None:
            check_members_against_data(
                (spec.student,), data.task, data.input_spec, where="ensemble.distill"
            )
        check_metric_against_task(spec.metric, data.task, spec.search.metric)
        check_coverage_against_rows(spec.ensemble.coverage, len(data.y_val))
        stage_data = {}
        for st in spec.stages:
            stage_data[st.name] = _held_out(
                _load(st.data, f"stages.{st.name}.data"), data, unbagged.fingerprint, st.name
            )
            check_members_against_data(
                st.members, stage_data[st.name].task, stage_data[st.name].input_spec
            )
    except SpecError as err:
        _fail(str(err))
    from runner.cluster import ClusterError, check_reachable

    address = spec.cluster.address
    if spec.cluster.kind == "address" and address != "auto":
        try:  # before MLflow is touched: an unreachable cluster leaves nothing behind
            check_reachable(address, spec.cluster.connect_timeout)
        except ClusterError as err:
            _fail(str(err))
    if folds_note:  # said once the config is known good: bad input stays one line
        print(f"note: {folds_note}", file=sys.stderr)
    if spec.search.name != "none" and not any(m.search for m in spec.all_members()):
        print(
            f"note: search={spec.search.name} has nothing to sample: no member has a search "
            "space (e.g. members.mlp.hparams.width={choice:[64,128]}), so each member trains "
            "once and search.num_samples does not apply",
            file=sys.stderr,
        )

    # MLflow, Ray Tune, scikit-learn and matplotlib (about 3 s of imports) load only once the
    # config is known to be good, so bad input fails fast; they load while Ray starts.
    from runner import launch, signals
    from runner.errors import StoreFailed, SweepAlreadyFinished, SweepInterrupted
    from runner.user_errors import SAID_IN_ONE_LINE

    try:
        summary = launch.run(spec, data, stage_data, began)
    except SweepAlreadyFinished as err:
        print(str(err))
        return
    except SweepInterrupted as err:
        print(f"interrupted ({signals.reason()}): {err}", file=sys.stderr)
        sys.exit(signals.exit_code())
    except KeyboardInterrupt:
        if signals.stopped_by_runner():  # taken over: the other driver runs the sweep now
            print(f"stopped: {signals.reason()}, which runs it now", file=sys.stderr)
            sys.exit(signals.exit_code())
        print(
            f"interrupted ({signals.reason()}): sweep {spec.sweep_id or '(new)'} stopped; its "
            f"open MLflow runs are marked KILLED; resume with runner.sweep_id={spec.sweep_id}",
            file=sys.stderr,
        )
        sys.exit(signals.exit_code())
    except SAID_IN_ONE_LINE as err:
        _fail(str(err), ends_all=isinstance(err, StoreFailed))
    from runner import report

    if spec.verbose:
        print()
        print(report.leaderboard(summary))
        print(f"\nsummary: {Path(spec.output_dir) / 'summary.json'}")
        print(
            f"mlflow:  experiment {spec.experiment!r}, parent run {summary['parent_run_id']}"
            f" in {summary['tracking_uri']}"
        )
    if summary.get("no_ensemble"):  # nothing to serve: a deploy script must not go on
        said = (
            f"no ensemble: {summary['no_ensemble']}; the members are kept (python -m ensembles "
            "re-ensembles them with other settings)"
        )
        if not signals.stop_requested():  # else stopped below, as a stop asks
            _fail(said)
        print(f"error: {said}", file=sys.stderr)
    if signals.stop_requested():  # Ctrl+C or SIGTERM as Ray shut down: a multirun stops too
        print(
            f"stopped ({signals.reason()}) after sweep {summary['sweep_id']} finished; every "
            "run is kept",
            file=sys.stderr,
        )
        sys.exit(signals.exit_code())


MULTIRUN = ("-m", "--multirun")


def _multirun_first(args: list[str]) -> list[str]:
    """``-m`` moved before the overrides: Hydra's parser takes flags only before them, and
    ``+experiment=x -m a=1,2`` failed with 'unrecognized arguments'."""
    return [a for a in args if a in MULTIRUN] + [a for a in args if a not in MULTIRUN]


def main() -> None:
    """Console entry: pre-check the experiment name, then hand over to Hydra."""
    sys.argv[1:] = _multirun_first(sys.argv[1:])
    _check_experiment_override(sys.argv[1:])
    _warn_shadowed(sys.argv[1:])
    try:
        if {"--help", "-h"} & set(sys.argv[1:]):
            with _users_experiments_listed(sys.argv[1:]):
                run_holding_stderr(_main)
            return
        run_holding_stderr(_main)
        if REFUSED_JOBS:
            jobs = ", ".join(f"#{n}" for n in REFUSED_JOBS)
            said = f"multirun job(s) {jobs} stopped (each said why above)"
            print(f"error: {said}", file=sys.stderr)
            sys.exit(2)
    finally:
        # The interpreter's last collection walks every object the imports left (MLflow, Ray,
        # scikit-learn, matplotlib): over 2 s before the process exits. Frozen, it skips them.
        gc.freeze()


if __name__ == "__main__":
    main()
