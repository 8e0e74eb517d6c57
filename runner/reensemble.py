"""``python -m ensembles experiment=NAME [method=greedy] [sweeps=latest|all|ID,ID] ...``

Re-ensemble members already tracked in MLflow, without retraining: collect the FINISHED
member runs of an experiment, check their split fingerprints, download their predictions,
fit the chosen method on validation, and log a new ensemble run (with its pyfunc model).
Arguments are ``key=value`` words like Hydra's, parsed with argparse; any key not listed
below is passed to the method (e.g. ``n_steps=100`` for greedy, ``l2=0.1`` for weighted;
``param.KEY=`` for a method parameter named like an option, e.g. weighted's
``param.max_members``), over the defaults a sweep uses (``conf/ensemble/METHOD.yaml``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import ensembles
from ensembles.budget import check_limits
from ensembles.conformal import check_calibration_rows, check_coverage
from ensembles.honest import MIN_BOOT
from ensembles.metrics import METRICS, evaluate, headline_metric
from ensembles.stage import MemberPredictions, check_candidates
from models.registry import CodeNotFound
from models.store import ArtifactError
from runner import sentinel, signals
from runner.contracts import (
    CUT_SHORT,
    DRIVER,
    ENSEMBLE_SETTINGS,
    ERROR,
    EXPERIMENT,
    LEADERBOARDS,
    MEMBER,
    MEMBER_INFO,
    MODEL,
    PARENT,
    PREDICTIONS,
    REENSEMBLE,
    ROLE,
    SOURCE_SWEEPS,
    SWEEP,
    SavedPredictions,
)
from runner.ensemble_defaults import as_default_types, sweep_defaults

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # noise in CLI output

OPTIONS = {
    "experiment": "MLflow experiment name (required)",
    "method": "ensemble method: " + ", ".join(sorted(ensembles.METHODS)) + " (default weighted)",
    "sweeps": "latest (default), all, or comma-separated sweep ids",
    "tracking_uri": "MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    "fingerprint": "only members of this split (default: the most common split)",
    "seed": "random state (default: the sweeps' own, else 0)",
    "cv_folds": "folds of the cross-fitted estimate (default: the sweeps' own, else 5)",
    "n_boot": "bootstrap resamples of the test gain (default: the sweeps' own, else 1000)",
    "log_model": "log the pyfunc model: true/false (default true)",
    "register_as": "also register the model under this name",
    "calibrate": "classification: temperature-scale the probabilities (default: the sweep's)",
    "metric": "what ranks and judges: accuracy, log_loss, rmse, mae (default: the sweep's)",
    "coverage": "conformal intervals or sets at this level, e.g. 0.9 (default: the sweep's)",
    "max_latency_ms": "serve members whose prediction ms per 1000 rows sum to at most this "
    "(default: the sweep's)",
    "max_members": "serve at most this many members (default: the sweep's)",
    "candidates": "ensemble only the best this many members on validation (default 200)",
    "refit": "serve bagged members' refits on all rows where the sweep made them (default true)",
}


COMMAND = "python -m ensembles"
# options whose values are names or ids, kept as typed (not read as numbers or booleans)
TEXT_OPTIONS = frozenset({"experiment", "sweeps", "register_as", "fingerprint"})


class UsageError(ValueError):
    """Bad arguments or an empty selection: one line for the user."""


PROBE_SECONDS = 10.0  # how long the store may take to answer before the command stops


@dataclass
class Args:
    """The parsed command line."""

    experiment: str
    method: str = "weighted"
    sweeps: str = "latest"
    tracking_uri: str = field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    fingerprint: str | None = None
    seed: int | None = None  # None: the sweep's own (SWEEP_DEFAULTS when sweeps differ)
    cv_folds: int | None = None
    n_boot: int | None = None
    log_model: bool = True
    register_as: str | None = None
    calibrate: bool = True
    metric: str | None = None
    coverage: float | None = None
    max_latency_ms: float | None = None
    max_members: int | None = None
    candidates: int | None = 200
    refit: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    given: frozenset[str] = frozenset()  # the keys the command line set (null included)


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# MLflow's answers to a request it understood and refused: not a store that failed
REFUSALS = frozenset(
    {
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_ALREADY_EXISTS",
        "INVALID_PARAMETER_VALUE",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "INVALID_STATE",
        "BAD_REQUEST",
    }
)


def _our_spelling(key: str) -> str | None:
    """This command's key for a key written as the runner's config writes it
    (``tracking.uri``: ``tracking_uri``; ``ensemble.method``: ``method``), or None."""
    for candidate in (
        key.removeprefix("ensemble."),
        key.removeprefix("runner."),
        key.replace(".", "_"),
    ):
        if candidate in OPTIONS:
            return candidate
    return None


def parse(argv: Sequence[str]) -> Args:
    """Parse ``key=value`` words; unknown keys become method params. Validates the method."""
    epilog = "keys:\n" + "\n".join(f"  {k:<15} {v}" for k, v in OPTIONS.items())
    parser = argparse.ArgumentParser(
        prog="python -m ensembles",
        description=__doc__.split("\n\n")[1],
        epilog=epilog + "\n  <other>=...     passed to the method\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("words", nargs="*", metavar="key=value")
    words = parser.parse_args(argv).words
    known: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for word in words:
        key, sep, text = word.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {word!r}")
        if key.startswith("param."):
            params[key[len("param.") :]] = _value(text)
            continue
        if key not in OPTIONS and "." in key:  # the runner's spelling: tracking.uri
            ours = _our_spelling(key)
            if ours is not None:  # the value left out: it may be a URI with a password
                raise UsageError(f"{key}=: this command spells it {ours}=")
        if key in TEXT_OPTIONS:  # names as typed: 2024_01 is no number 202401 here
            unset = key in ("register_as", "fingerprint") and text.lower() in ("null", "none")
            known[key] = None if unset else text
            continue
        (known if key in OPTIONS else params)[key] = _value(text)
    if not known.get("experiment"):
        raise UsageError("experiment=NAME is required")
    args = Args(**known, params=params, given=frozenset(known))
    # a sweep of +experiment=team/nested logs to the MLflow experiment team.nested
    args.experiment = str(args.experiment).replace("/", ".")
    for key, minimum in (("seed", 0), ("cv_folds", 2), ("n_boot", MIN_BOOT)):
        value = getattr(args, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UsageError(f"{key} must be an integer >= {minimum}, got {value!r}")
    for key in ("log_model", "calibrate", "refit"):
        if not isinstance(getattr(args, key), bool):
            raise UsageError(f"{key} must be true or false, got {getattr(args, key)!r}")
    if not str(args.sweeps).strip(" ,"):
        raise UsageError(f"sweeps must be latest, all or sweep ids, got {args.sweeps!r}")
    from runner.spec import NAME_PATTERN, SpecError, parse_tracking_uri

    if args.register_as is not None and not NAME_PATTERN.match(args.register_as):
        raise UsageError(f"register_as {args.register_as!r} must match {NAME_PATTERN.pattern}")
    if args.register_as is not None and not args.log_model:
        raise UsageError(
            f"register_as {args.register_as!r} registers the logged model, and log_model=false "
            "logs none; drop one of them"
        )
    try:
        parse_tracking_uri(args.tracking_uri)
    except SpecError as err:
        raise UsageError(str(err).replace("tracking.uri", "tracking_uri")) from None
    if args.metric is not None and args.metric not in METRICS:
        raise UsageError(
            f"unknown metric {args.metric!r}; known: {', '.join(METRICS)} (or leave it out: "
            "the sweep's)"
        )
    if args.method not in ensembles.METHODS:
        known_methods = ", ".join(sorted(ensembles.METHODS))
        raise UsageError(f"unknown ensemble method {args.method!r}; known: {known_methods}")
    params = args.params = {
        **sweep_defaults(args.method),
        **as_default_types(args.method, params),  # l2=0 read as the float l2 is: 0.0
    }
    try:
        ensembles.make(args.method, **params).check_params()
    except (TypeError, ValueError) as err:
        raise UsageError(f"method {args.method!r}: {err}") from None
    try:
        args.coverage = check_coverage(args.coverage)
        args.max_latency_ms, args.max_members = check_limits(args.max_latency_ms, args.max_members)
        check_candidates(args.candidates)
    except ValueError as err:
        raise UsageError(str(err).replace("max_candidates ", "candidates ", 1)) from None
    return args


def _is_classes(members: Sequence[MemberPredictions]) -> bool:
    """Whether the members predict class probabilities ((rows, classes) arrays)."""
    return bool(members) and np.ndim(members[0].val) == 2


def _sweep_ids(client, experiment_id: str, sweeps: str) -> tuple[list[str], set[str]]:
    """The chosen sweeps' ids, and the run ids of every sweep's parent run that is not
    deleted (a member counts only under one of them)."""
    parents = client.search_runs(
        [experiment_id], f"tags.`{ROLE}` = 'sweep'", order_by=["attributes.start_time DESC"]
    )
    return _chosen(parents, sweeps), {r.info.run_id for r in parents}


def _chosen(parents: list, sweeps: str) -> list[str]:
    """The ids of the sweeps ``sweeps`` names among the parent runs (newest first)."""
    ids = [r.data.tags[SWEEP] for r in parents]
    if sweeps == "latest":  # the latest finished sweep: a running one is still changing
        finished = [r.data.tags[SWEEP] for r in parents if r.info.status == "FINISHED"]
        if not finished and ids:
            raise UsageError(
                f"no sweep of this experiment has finished (latest: {ids[0]}); pass "
                f"sweeps={ids[0]} to ensemble an unfinished one"
            )
        return finished[:1]
    if sweeps == "all":
        return ids
    wanted = [s.strip() for s in str(sweeps).split(",") if s.strip()]
    missing = [s for s in wanted if s not in ids]
    if missing:
        raise UsageError(f"no sweep {missing[0]!r} in this experiment; sweeps: {', '.join(ids)}")
    return wanted


def chosen_split(members: list[MemberPredictions]) -> str:
    """The data split to ensemble when sweeps of several splits are chosen: the one most
    members ran on, the newest of those that tie (``members`` in the order their runs
    started: last week's table lost to this week's only by being first)."""
    latest = {m.fingerprint: i for i, m in enumerate(members)}
    counts = Counter(m.fingerprint for m in members)
    return max(latest, key=lambda fp: (counts[fp], latest[fp]))


def _label(run, several: bool, suffix: str = "") -> str:
    """The name a run's member goes by here: its member tag without ``suffix``, and with
    ``:sweep`` when several sweeps are ensembled (the same name may be in each)."""
    name = run.data.tags[MEMBER].removesuffix(suffix)
    return f"{name}:{run.data.tags[SWEEP]}" if several else name


def collect(client, args: Args, tmp: Path) -> tuple[list[MemberPredictions], dict, dict]:
    """Download the predictions of every FINISHED member of the chosen sweeps (and, with
    ``refit``, the test predictions of their FINISHED refits on all rows)."""
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        names = ", ".join(e.name for e in client.search_experiments())
        raise UsageError(f"no experiment {args.experiment!r} in the store; experiments: {names}")
    if experiment.lifecycle_stage == "deleted":  # its runs are there, but read as none
        raise UsageError(
            f"experiment {args.experiment!r} (id {experiment.experiment_id}) is deleted; restore "
            f"it (mlflow experiments restore --experiment-id {experiment.experiment_id})"
        )
    sweeps, parents = _sweep_ids(client, experiment.experiment_id, args.sweeps)
    runs = sorted(
        (
            r
            for r in client.search_runs(
                [experiment.experiment_id],
                f"tags.`{ROLE}` = 'member' and attributes.status = 'FINISHED'",
                max_results=5000,
            )
            # the members of a parent run deleted in MLflow stay out, though not deleted too
            if r.data.tags.get(SWEEP) in sweeps and r.data.tags.get(PARENT) in parents
        ),
        key=lambda r: (r.info.start_time, r.data.tags[MEMBER]),
    )
    if not runs:
        raise UsageError(
            f"experiment {args.experiment!r} has no finished members in sweeps "
            f"{', '.join(sweeps) or '(none)'}"
        )
    several = len(sweeps) > 1
    members, labels, run_of, sweep_of, facts = [], {}, {}, {}, {}
    for run in runs:
        name = _label(run, several)
        path = client.download_artifacts(run.info.run_id, PREDICTIONS, str(tmp / name))
        saved = SavedPredictions.read(path)
        cost = run.data.metrics.get("final_predict_ms_per_1000")
        fp = saved.fingerprint
        members.append(MemberPredictions(name, saved.val, saved.test, fp, cost, saved.test_folds))
        labels.setdefault(fp, (saved.y_val, saved.y_test))
        run_of[name], sweep_of[name] = run.info.run_id, run.data.tags[SWEEP]
        facts[name] = {
            "model": run.data.tags.get(MODEL, "-"),
            "train_seconds": run.data.metrics.get("train_seconds"),
        }
    refits, costs = (
        _refits(client, experiment.experiment_id, sweeps, run_of, tmp) if args.refit else ({}, {})
    )
    # a bag whose refit is served costs what the refit costs to predict (ensemble.max_latency_ms)
    members = [replace(m, cost=costs.get(m.name, m.cost)) for m in members]
    found = {
        "sweeps": sweeps,
        "runs": run_of,
        "refits": refits,
        "sweep_of": sweep_of,
        "facts": facts,
    }
    return members, labels, found


def _named_as_their_sweep(
    members: list[MemberPredictions], found: dict, fingerprint: str
) -> tuple[list[MemberPredictions], dict]:
    """Members named as in their own sweep (``mlp``, not ``mlp:SWEEP``) when the chosen
    split's members all come from one sweep: the other sweeps' are left out, so this ensemble
    is that sweep's, and a rerun of its settings finds the sweep's own ensemble run."""
    sweeps = {found["sweep_of"][m.name] for m in members if m.fingerprint == fingerprint}
    if len(sweeps) != 1 or not any(":" in m.name for m in members):
        return members, found
    (sweep,) = sweeps
    suffix = f":{sweep}"

    def plain(name: str) -> str:
        return name.removesuffix(suffix) if found["sweep_of"].get(name) == sweep else name

    renamed = {
        key: {plain(k): v for k, v in found[key].items()}
        for key in ("runs", "sweep_of", "refits", "facts")
    }
    return [replace(m, name=plain(m.name)) for m in members], {**found, **renamed}


def _log_leaderboards(
    client,
    summary: dict[str, Any],
    ensemble: dict[str, Any],
    metric: str,
    members: list[MemberPredictions],
    facts: dict[str, dict[str, Any]],
    labels: tuple[np.ndarray, np.ndarray],
    refits: dict[str, tuple[str, np.ndarray]],
) -> None:
    """The leaderboards a sweep logs (text, Markdown, HTML) on the new ensemble run, titled
    by ``summary`` (experiment, sweeps): the ensemble, then the members it weighed (those of
    its data split), best first, with their prediction times and refits' test scores."""
    from runner.report import leaderboard, leaderboard_html, leaderboard_markdown

    rows = []
    for m in members:
        val, test = evaluate(labels[0], m.val), evaluate(labels[1], m.test)
        rows.append(
            {
                "name": m.name,
                "status": "FINISHED",
                **facts.get(m.name, {"model": "-", "train_seconds": None}),
                "val_metric": val[metric],
                "test_metric": test[metric],
                "val_scores": val,
                "predict_ms_per_1000": m.cost,
            }
        )
        if m.name in refits:
            refit_test = evaluate(labels[1], refits[m.name][1])[metric]
            rows[-1]["refit"] = {"status": "FINISHED", "test_metric": refit_test}
    summary = {**summary, "metric": metric, "members": rows, "ensemble": ensemble}
    texts = (leaderboard(summary), leaderboard_markdown(summary), leaderboard_html(summary))
    for name, text in zip(LEADERBOARDS, texts, strict=True):
        client.log_text(ensemble["run_id"], text, name)


# what the command takes when neither it nor the sweeps say (the sweep's own defaults)
SWEEP_DEFAULTS = {"seed": 0, "cv_folds": 5, "n_boot": 1000}
# what the served model offers, as the sweep's ensemble did unless the command says otherwise
SWEEP_SERVING = ("calibrate", "coverage", "max_latency_ms", "max_members")
BUDGET = frozenset({"max_latency_ms", "max_members"})  # given either, the sweep's is replaced


def _sweep_settings(client, experiment_id: str, sweeps: set[str]) -> dict[str, Any]:
    """The metric, seed, cross-fit folds, bootstrap resamples, registered name, calibration,
    coverage and budget the sweeps' own ensembles were made with, each where they agree:
    re-ensembling a sweep the sweep's way (a sweep of ``runner.seed=1`` too, or one that
    registered its ensemble or served prediction sets) finds its run."""
    found: dict[str, set] = {}
    for run in client.search_runs([experiment_id], f"tags.`{ROLE}` = 'ensemble'", max_results=5000):
        tags = run.data.tags
        own = tags.get(SWEEP) in sweeps and tags.get(REENSEMBLE) != "true"
        if own and ENSEMBLE_SETTINGS in tags:
            described = json.loads(tags[ENSEMBLE_SETTINGS])
            for key in ("metric", "register_as", *SWEEP_DEFAULTS, *SWEEP_SERVING):
                found.setdefault(key, set()).add(json.dumps(described.get(key)))
    agreed = {key: json.loads(v.pop()) for key, v in found.items() if len(v) == 1}
    return {key: value for key, value in agreed.items() if value is not None}


def _refits(
    client, experiment_id: str, sweeps: list[str], run_of: dict[str, str], tmp: Path
) -> tuple[dict[str, tuple[str, np.ndarray]], dict[str, float]]:
    """Member name -> (run, test predictions) of each collected bagged member's FINISHED refit
    on all rows, as the sweep serves them (``runner.refit=true``; not one cut short by the
    time limit), and -> the milliseconds the refit takes to predict 1000 rows, where it
    recorded them."""
    several = len(sweeps) > 1
    found, costs = {}, {}
    for run in client.search_runs(
        [experiment_id],
        f"tags.`{ROLE}` = 'refit' and attributes.status = 'FINISHED'",
        max_results=5000,
    ):
        if run.data.tags.get(SWEEP) not in sweeps or CUT_SHORT in run.data.tags:
            continue  # a refit the time limit cut short is not served: its bag is, as the sweep's
        name = _label(run, several, "/refit")
        if name in run_of and run.data.tags.get(PARENT) == run_of[name]:
            path = client.download_artifacts(
                run.info.run_id, PREDICTIONS, str(tmp / "refit" / name)
            )
            with np.load(path) as npz:
                found[name] = (run.info.run_id, npz["test"])
            if "final_predict_ms_per_1000" in run.data.metrics:
                costs[name] = run.data.metrics["final_predict_ms_per_1000"]
    return found, costs


def _inputs(client, run_id: str, tmp: str) -> tuple[int | list[str] | None, list[str] | None]:
    """What a member recorded of its input (the pyfunc model's signature: the table's
    columns, or the feature count) and the names of its classes."""
    info = json.loads(Path(client.download_artifacts(run_id, MEMBER_INFO, tmp)).read_text())
    classes = info.get("classes")
    if classes is None and info.get("fold_runs"):  # a bag assembled before it kept them
        fold = Path(client.download_artifacts(info["fold_runs"][0], MEMBER_INFO, f"{tmp}/fold"))
        classes = json.loads(fold.read_text()).get("classes")
    return info.get("table_columns") or info.get("n_features"), classes


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (130 or 143 when a signal stopped it)."""
    signals.install()
    try:
        code = _main(argv)
        signals.raise_if_stopped()
    except KeyboardInterrupt:
        print(
            f"interrupted ({signals.reason()}); an ensemble run it had open is marked KILLED",
            file=sys.stderr,
        )
        return signals.exit_code()
    except Exception as err:
        from runner.errors import store_error, store_error_said

        cause = store_error(err)
        if cause is None:
            raise
        said = store_error_said(cause)
        if str(getattr(cause, "error_code", "")) in REFUSALS:  # asking again will not help
            print(f"error: the tracking store refused a request ({said})", file=sys.stderr)
        else:
            print(
                f"error: the tracking store failed ({said}); run the command again once it answers",
                file=sys.stderr,
            )
        return 2
    return code


def _main(argv: Sequence[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from mlflow.tracking import MlflowClient

    from runner import ensemble_step
    from runner.runtree import checkpoint_at_exit
    from runner.spec import EnsembleSpec

    settings = EnsembleSpec(
        method=args.method,
        params=args.params,
        cv_folds=SWEEP_DEFAULTS["cv_folds"],  # until the sweeps' own are known, below
        n_boot=SWEEP_DEFAULTS["n_boot"],
        log_model=bool(args.log_model),
        register_as=args.register_as,
        calibrate=bool(args.calibrate),
        coverage=args.coverage,
        max_latency_ms=args.max_latency_ms,
        max_members=args.max_members,
        candidates=args.candidates,
    )
    from runner.runtree import store_exists
    from runner.store_probe import StoreUnavailable, probe

    if not store_exists(args.tracking_uri):  # MLflow would create an empty store, folders too
        print(
            f"error: tracking_uri {args.tracking_uri}: no MLflow store there (no such file); "
            "point it at the store the sweeps wrote",
            file=sys.stderr,
        )
        return 2
    try:  # a dead server: one line in seconds, not MLflow's minutes of retries
        probe(args.tracking_uri, PROBE_SECONDS)
    except StoreUnavailable as err:  # worded for the runner's config: tracking.uri
        print(f"error: {str(err).replace('tracking.uri', 'tracking_uri')}", file=sys.stderr)
        return 2
    client = MlflowClient(args.tracking_uri)
    checkpoint_at_exit(args.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            members, labels, found = collect(client, args, Path(tmp))
            fingerprint = args.fingerprint or chosen_split(members)
            if fingerprint not in labels:
                raise UsageError(f"no member of split {fingerprint!r}; splits: {list(labels)}")
            y_val, y_test = labels[fingerprint]
            members, found = _named_as_their_sweep(members, found, fingerprint)
            experiment_id = client.get_experiment_by_name(args.experiment).experiment_id
            own = _sweep_settings(
                client,
                experiment_id,
                {found["sweep_of"][m.name] for m in members if m.fingerprint == fingerprint},
            )
            ensembled = [m for m in members if m.fingerprint == fingerprint]
            metric = headline_metric(_is_classes(ensembled), args.metric or own.get("metric"))
            for key, default in SWEEP_DEFAULTS.items():  # not given: the sweep's own
                if getattr(args, key) is None:
                    setattr(args, key, own.get(key, default))
            for key in SWEEP_SERVING:  # not given: as the sweep served its ensemble
                budget = key in BUDGET and bool(BUDGET & args.given)  # a budget given anew
                if key not in args.given and key in own and not budget:
                    setattr(args, key, own[key])
            check_calibration_rows(args.coverage, len(y_val))
            settings = replace(
                settings,
                cv_folds=args.cv_folds,
                n_boot=args.n_boot,
                **{key: getattr(args, key) for key in SWEEP_SERVING},
            )
            split_runs = {
                m.name: found["runs"][m.name] for m in members if m.fingerprint == fingerprint
            }
            refits = {n: held for n, held in found["refits"].items() if n in split_runs}
            refit_runs = {name: run_id for name, (run_id, _) in refits.items()}
            described = ensemble_step.settings_of(
                settings, args.seed, fingerprint, split_runs, metric, refit_runs or None
            )
            done = ensemble_step.existing_run(
                client, experiment_id, ensemble_step.settings_hash(described)
            )
            if done is None and args.register_as is None and own.get("register_as"):
                # the sweep registered the same ensemble: not asking to register is no reason
                # to log it again
                done = ensemble_step.existing_run(
                    client,
                    experiment_id,
                    ensemble_step.settings_hash({**described, "register_as": own["register_as"]}),
                )
            if done is not None:
                other = len(members) - len(split_runs)
                print(
                    f"ensemble run {done} already combines these members with these settings; "
                    "nothing new to log"
                    + (f" ({other} member(s) of another data split left out)" if other else "")
                )
                return 0
            report = ensemble_step.fit(
                settings, members, y_val, y_test, args.seed, fingerprint, metric
            )
            refit = (
                ensemble_step.refitted(report, members, found["runs"], refits, y_test)
                if any(name in refits for name in report.names)  # else the bags are served
                else None
            )
        except (UsageError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        used = {found["sweep_of"][name] for name in report.names}  # not sweeps left out
        sweeps = [sweep for sweep in found["sweeps"] if sweep in used]
        tags = {
            ROLE: "ensemble",
            EXPERIMENT: args.experiment,
            REENSEMBLE: "true",
            SOURCE_SWEEPS: ",".join(sweeps),
        }
        if len(sweeps) == 1:  # nest under the sweep it came from
            (parent,) = client.search_runs(
                [experiment_id], f"tags.`{ROLE}` = 'sweep' and tags.`{SWEEP}` = '{sweeps[0]}'"
            )
            tags.update({SWEEP: sweeps[0], PARENT: parent.info.run_id})
        inputs, classes = _inputs(client, found["runs"][report.names[0]], tmp)
        if settings.log_model and inputs is None:
            logging.warning("no pyfunc model: members were logged without n_features")
        run_name = f"ensemble-{args.method}-{time.strftime('%H%M%S')}"
        signals.raise_if_stopped()
        # a SIGKILL runs no cleanup: a sentinel ends the run KILLED instead
        token = secrets.token_hex(8)
        guard = sentinel.guard_runs(args.tracking_uri, experiment_id, token, COMMAND)

        opened: list[str] = []

        def open_run(more: dict[str, str]) -> str:
            run_tags = {**tags, **more, DRIVER: token}
            opened.append(
                client.create_run(experiment_id, run_name=run_name, tags=run_tags).info.run_id
            )
            return opened[-1]

        def failed(message: str) -> int:
            """Say why on stderr and on the run that ends FAILED (a browser of runs reads it)."""
            print(f"error: {message} (this ensemble run ends FAILED)", file=sys.stderr)
            for run_id in opened:
                with contextlib.suppress(Exception):
                    client.set_tag(run_id, ERROR, message[:5000])
            return 2

        def finish(run_id: str, status: str) -> None:
            client.set_terminated(run_id, status)
            if guard is not None:
                guard.disarm()

        def end_run(run_id: str, status: str) -> None:
            if status != "FINISHED":  # a finished run ends once its leaderboards are on it
                finish(run_id, status)

        try:
            out = ensemble_step.log(
                client,
                report,
                settings,
                open_run=open_run,
                end_run=end_run,
                member_runs=split_runs,  # what the settings' hash names (other splits left out)
                y_test=y_test,
                fingerprint=fingerprint,
                inputs=inputs,
                seed=args.seed,
                refit=refit,
                classes=classes,
            )
        except CodeNotFound as err:  # a kind registered from outside models/, not found here
            return failed(
                f"{err}: a member's model kind is registered by it; make it importable "
                "here (PYTHONPATH), or pass log_model=false"
            )
        except ArtifactError as err:  # a member's saved model changed in the store
            return failed(str(err))
        summary = {"experiment": args.experiment, "sweep_id": ", ".join(sweeps)}
        try:
            _log_leaderboards(
                client,
                summary,
                out,
                report.metric,
                [m for m in members if m.name in split_runs],
                found["facts"],
                (y_val, y_test),
                refits,
            )
        except KeyboardInterrupt:
            finish(out["run_id"], "KILLED")
            raise
        except BaseException:
            finish(out["run_id"], "FAILED")
            raise
        finish(out["run_id"], "FINISHED")
    metric = report.metric
    print(
        f"ensemble run {out['run_id']} ({args.method}, {len(report.names)} members from "
        f"{len(sweeps)} sweep(s)): val {metric} {report.val_scores[metric]:.4f}, "
        f"test {metric} {report.test_scores[metric]:.4f}"
    )
    if refit is not None:
        served = [n for n, w in report.weights.items() if w > 0 and n in refit.refit_runs]
        print(
            f"served with {len(served)} member(s) refitted on all rows: test {metric} "
            f"{refit.test_scores[metric]:.4f}"
            + (f"; without a refit: {', '.join(refit.fell_back)}" if refit.fell_back else "")
        )
    if report.pruned:
        from runner.report import pruned_line

        print(pruned_line(report.pruned, "candidates"))
    if report.conformal:
        from runner.report import conformal_line, refit_conformal_figures

        served = (
            None if refit is None else refit_conformal_figures({"test_scores": refit.test_scores})
        )
        print(conformal_line(report.conformal, served))
    if report.budget:
        from runner.report import budget_line

        print(budget_line(report.summary(), metric))
    if out.get("registered_version"):
        print(f"registered {args.register_as} v{out['registered_version']}")
    return 0  # members left out were said as they were (a warning from the stage)


if __name__ == "__main__":
    sys.exit(main())
