"""The MLflow side of the ensemble stage: log an ensemble run's numbers, tables and pictures,
a servable pyfunc model (the members' saved models + the fitted ensemble) that takes raw
inputs, its registration and the champion/challenger decision."""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param
from mlflow.models import Model
from mlflow.tracking import MlflowClient

import models
from ensembles import plots
from ensembles.conformal import point_predictions
from ensembles.metrics import evaluate, greater_is_better
from ensembles.stage import EnsembleReport
from models import safe_io
from models.store import (
    MANIFEST,
    SPEC_SHA256,
    ArtifactError,
    read_manifest,
    sha256,
    verify_member,
)
from runner.contracts import (
    BEATS_BEST_MEMBER,
    BEST_MEMBER,
    CHAMPION,
    DATA_FINGERPRINT,
    EXPERIMENT,
    MEMBERS,
    MODEL_DIR,
    REFIT,
    ROLE,
    SERVED_MEMBERS,
    SWEEP,
)

log = logging.getLogger(__name__)

PYFUNC_MODEL = Path(__file__).with_name("pyfunc_model.py")  # models from code: no pickle
STUDENT_SERVED = "runner.served_model_logged"  # a student run's served model logged whole


def metric_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric names replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def _metrics(report: EnsembleReport) -> dict[str, float]:
    cf = report.cross_fitted
    out = {
        **{f"final_val_{k}": v for k, v in report.val_scores.items()},
        **{f"final_test_{k}": v for k, v in report.test_scores.items()},
        **{metric_key(f"weight.{name}"): w for name, w in report.weights.items()},
        **{f"cv_ensemble_{k}": v for k, v in cf["ensemble"].items()},
        **{f"cv_best_member_{k}": v for k, v in cf["best_member"].items()},
        "cv_gain": cf["gain"],
        "test_gain": report.test_gain["estimate"],
        "test_gain_ci_low": report.test_gain["ci_low"],
        "test_gain_ci_high": report.test_gain["ci_high"],
        "beats_best_member": float(report.beats_best_member),
    }
    cal = report.calibration or {}
    if cal.get("method") == "temperature":
        out["calibration.temperature"] = cal["temperature"]
        for split in ("val", "test"):
            for when in ("before", "after"):
                for k, v in cal[f"{split}_{when}"].items():
                    out[f"calibration.{split}_{k}_{when}"] = v
    if report.conformal:
        for k, v in report.conformal["test"].items():  # coverage, mean width or set size
            out[f"conformal.test_{k}"] = v
        out["conformal.quantile"] = report.conformal["q"]
    if report.budget:
        b = report.budget
        out["budget.cost"] = b["cost"]
        out["budget.members"] = len(b["members"])
        out["budget.val_loss"] = b["val_loss"]
        out["budget.all_members_cost"] = b["all_members"]["cost"]
        out["budget.all_members_val_loss"] = b["all_members"]["val_loss"]
        for k, v in b["all_members"]["test_scores"].items():
            out[f"budget.all_members_test_{k}"] = v
    for name, loo in report.diversity["leave_one_out"].items():
        out[metric_key(f"loo_val.{name}")] = loo["val"]
        out[metric_key(f"loo_test.{name}")] = loo["test"]
    return out


def diversity_markdown(report: EnsembleReport) -> str:
    """The diversity report as a Markdown table: weight, leave-one-out and error correlation."""
    names = report.diversity["names"]
    corr = report.diversity["error_correlation"]
    loo = report.diversity["leave_one_out"]
    head = ["member", "weight", "LOO val", "LOO test", *names]
    rows = [
        [
            n,
            f"{report.weights[n]:.3f}",
            f"{loo[n]['val']:+.4f}",
            f"{loo[n]['test']:+.4f}",
            *(f"{c:.2f}" for c in corr[i]),
        ]
        for i, n in enumerate(names)
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if report.diversity.get("note"):
        lines.insert(0, f"The report {report.diversity['note']}.\n")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    worse = "drop in" if greater_is_better(report.metric) else "rise in"
    note = (
        f"\nLOO: {worse} {report.metric} when the ensemble is refitted without the member "
        "(positive = the member helps). Columns after LOO: correlation of validation errors."
    )
    return "\n".join(lines) + "\n" + note + "\n"


def log_refit(
    client: MlflowClient, run_id: str, refit: dict[str, Any], test_pred: np.ndarray
) -> None:
    """The refitted ensemble's test scores (``refit_test_*``), which runs its members come
    from (``refit.json``), and its test predictions, on the ensemble run."""
    ts = int(1000 * time.time())
    metrics = [Metric(f"refit_test_{k}", float(v), ts, 0) for k, v in refit["test_scores"].items()]
    client.log_batch(run_id, metrics=metrics)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / REFIT).write_text(json.dumps(refit, indent=2))
        np.savez(Path(tmp) / "refit_predictions.npz", test=test_pred)
        client.log_artifacts(run_id, tmp)


def log_report(
    client: MlflowClient,
    run_id: str,
    report: EnsembleReport,
    y_test: np.ndarray | None = None,
    served_coverage: float | None = None,
) -> None:
    """Params, metrics, tables, plots and predictions of one ensemble run; with ``y_test``
    also the confusion matrix (classification) or predicted-vs-true and residuals.
    ``served_coverage``: the test coverage of what is served when it is not the bagged
    members (their refits), marked on the coverage plot."""
    params = {"method": report.method, "members": ",".join(report.names), **report.params}
    for key in ("max_latency_ms", "max_members"):  # the serving budget, beside the method's
        if report.budget and report.budget[key] is not None:
            params[f"budget.{key}"] = report.budget[key]
    if report.conformal:
        params["coverage"] = report.conformal["coverage"]
    ts = int(1000 * time.time())
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), ts, 0) for k, v in _metrics(report).items()],
        params=[Param(k, str(v)[:6000]) for k, v in params.items()],
    )
    client.set_tag(run_id, BEST_MEMBER, report.best_member)
    client.set_tag(run_id, BEATS_BEST_MEMBER, str(report.beats_best_member).lower())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "weights.json").write_text(json.dumps(report.weights, indent=2))
        (out / "report.json").write_text(
            json.dumps({**report.summary(), "diversity": report.diversity}, indent=2)
        )
        (out / "diversity.md").write_text(diversity_markdown(report))
        np.savez(out / "predictions.npz", val=report.val_pred, test=report.test_pred)
        plots.weights_bar(report.weights, out / "weights.png", f"{report.method} ensemble weights")
        plots.heatmap(
            np.array(report.diversity["error_correlation"]),
            report.diversity["names"],
            out / "diversity_heatmap.png",
            "correlation of validation errors",
        )
        if y_test is not None:
            title = f"{report.method} ensemble on test"
            if np.ndim(report.test_pred) == 2:
                plots.confusion_matrix(
                    y_test, report.test_pred, out / "confusion_matrix.png", title
                )
                probas = {"ensemble": report.test_pred}
                if report.uncalibrated_test_pred is not None:
                    probas = {
                        "uncalibrated": report.uncalibrated_test_pred,
                        "temperature-scaled": report.test_pred,
                    }
                plots.reliability_diagram(
                    y_test,
                    probas,
                    out / "reliability.png",
                    f"{report.method} ensemble on test: reliability",
                )
            else:
                plots.predicted_vs_true(y_test, report.test_pred, out / "residuals.png", title)
            if report.conformal:
                target = report.conformal["coverage"]
                title = (
                    f"{report.method} ensemble: conformal coverage (served at {100 * target:g}%)"
                )
                served = None
                if served_coverage is not None:
                    title = f"{report.method} ensemble, bagged members: conformal coverage"
                    served = (target, served_coverage)
                plots.coverage_plot(
                    report.conformal["curve"], out / "coverage.png", title, served=served
                )
        if report.budget:
            (out / "pareto.json").write_text(json.dumps(report.budget, indent=2))
            plots.pareto_plot(
                report.budget, out / "pareto.png", f"{report.method} ensemble within its budget"
            )
        client.log_artifacts(run_id, tmp)


def _requirements(kinds: list[str]) -> list[str]:
    """Pinned distributions the served model imports: the stack, plus what members need."""
    wanted = ["mlflow", "numpy", "pandas", "scipy", "scikit-learn", "skops"]
    # Keras and its backend only for a Keras member (or one of a kind unknown here): a
    # served LightGBM ensemble never imports them, and an environment built from these
    # requirements would install TensorFlow for nothing
    found = [models.REGISTRY.get(name) for name in kinds]
    if any(kind is None or getattr(kind, "framework", None) == "keras" for kind in found):
        wanted += ["keras", "tensorflow"]
    for kind in found:
        wanted += [d for d in getattr(kind, "requires", ()) if d not in wanted]
    reqs = []
    for dist in wanted:
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


STUDENT_DIR = "served_model"  # on a student's run: it as a model serving raw rows


@dataclass
class _Solo:
    """One member dressed as a fitted ensemble of one (what ``log_pyfunc`` reads of a
    report), so a distilled student is served by the same model code as ensembles."""

    names: list[str]
    estimator: Any
    val_pred: np.ndarray
    test_pred: np.ndarray
    conformal: None = None


def log_student(
    client: MlflowClient,
    run_id: str,
    name: str,
    preds: tuple[np.ndarray, np.ndarray],
    y_val: np.ndarray,
    inputs: Any,
    classes: Sequence[str] | None = None,
) -> tuple[str, bool]:
    """Log a student's run's model (``model/``) as a pyfunc model under ``served_model/``
    of the same run, unless an earlier attempt did (its tag says it finished: a crash
    midway leaves part of one, logged again); returns its ``runs:/`` URI and whether it was
    logged now."""
    uri = f"runs:/{run_id}/{STUDENT_DIR}"
    if client.get_run(run_id).data.tags.get(STUDENT_SERVED) == "true":
        return uri, False
    from ensembles import make

    val, test = preds
    solo = _Solo([name], make("mean").fit(val[None], y_val), val, test)
    log_pyfunc(client, run_id, solo, {name: run_id}, inputs, STUDENT_DIR, classes)
    client.set_tag(run_id, STUDENT_SERVED, "true")
    return uri, True


def registered_from(client: MlflowClient, name: str, run_id: str) -> str | None:
    """The version of registered model ``name`` made from run ``run_id``, if there is one."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:  # no such registered model
        return None
    return str(versions[0].version) if versions else None


def log_pyfunc(
    client: MlflowClient,
    run_id: str,
    report: EnsembleReport | _Solo,
    member_runs: Mapping[str, str],
    inputs: Any,
    artifact_path: str = MODEL_DIR,
    classes: Sequence[str] | None = None,
) -> str:
    """Log the ensemble as a pyfunc model under ``model/``; returns its ``runs:/`` URI.
    ``inputs`` describes what it takes: the feature count, or table rows (a DataFrame of
    example rows, or the column names). ``classes`` names what each probability column
    stands for; the model's metadata and ``ensemble_spec.json`` keep them.

    ``member_runs`` maps each ensembled member to the MLflow run holding its saved model.
    The model ships only the members the ensemble reads: those with weight in an average (a
    search of hundreds of candidates serves the few it kept) or within its budget; stacking
    on all members ships all. The
    model carries the code of every shipped member's kind (``models/``, and the module of any
    kind registered from outside it), so it loads in a fresh process on another machine.
    """
    classification = report.val_pred.ndim == 2
    task = {
        "kind": "classification" if classification else "regression",
        "n_classes": int(report.val_pred.shape[1]) if classification else None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        artifacts, kinds, modules, named = {}, [], set(), None
        used = [int(i) for i in report.estimator.used_members()]
        for i in used:
            name = report.names[i]
            folder = client.download_artifacts(member_runs[name], MODEL_DIR, tmp + f"/{i}")
            try:  # shipped as they are: a model that could never load is refused here
                verify_member(folder)
            except ArtifactError as err:
                raise ArtifactError(f"member {name!r} (run {member_runs[name]}): {err}") from None
            manifest = read_manifest(folder)
            kinds.append(manifest["kind"])
            modules.add(manifest.get("module") or "models")
            named = named or _feature_names(Path(folder), manifest)
            artifacts[f"member_{i}"] = folder
        estimator_path = safe_io.dump(report.estimator, Path(tmp) / "estimator.skops")
        spec_path = Path(tmp) / "ensemble_spec.json"
        spec = {
            "names": report.names,
            "used": used,  # members the model loads; the others have weight 0
            "kinds": kinds,
            # each shipped member's manifest (which pins its files), so that no other
            # member's folder can stand in for it
            "member_sha256": {
                str(i): sha256(Path(artifacts[f"member_{i}"]) / MANIFEST) for i in used
            },
            "n_features": inputs if isinstance(inputs, int) else None,
            "task": task,
            "estimator_sha256": sha256(estimator_path),
            "conformal": served_conformal(report),
            "classes": None if classes is None else list(classes),
        }
        spec_path.write_text(json.dumps(spec))
        artifacts.update(ensemble_spec=str(spec_path), estimator=str(estimator_path))
        signature = _signature(inputs, _served_example(report))
        saved = Path(tmp) / "pyfunc"
        with warnings.catch_warnings():
            # An input example would make MLflow load every member (and TensorFlow) here, on
            # the driver, just to check it; the explicit signature documents the input instead.
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            mlflow.pyfunc.save_model(
                str(saved),
                python_model=str(PYFUNC_MODEL),
                artifacts=artifacts,
                code_paths=_code_paths(modules),
                pip_requirements=_requirements(kinds),
                signature=signature,
                metadata=_metadata(classes, inputs, named),
                # MLmodel pins the spec, which pins the estimator and the members
                model_config={SPEC_SHA256: sha256(spec_path)},
                # a loaded model names its run (model.metadata.run_id), as log_model's do
                mlflow_model=Model(run_id=run_id, artifact_path=artifact_path),
            )
        client.log_artifacts(run_id, str(saved), artifact_path)
    return f"runs:/{run_id}/{artifact_path}"


def served_conformal(report: EnsembleReport) -> dict[str, Any] | None:
    """The conformal predictor the served model applies (its fields only), or None."""
    if not report.conformal:
        return None
    from ensembles.conformal import Conformal

    fields = Conformal.__dataclass_fields__
    return {k: v for k, v in report.conformal.items() if k in fields}


def _served_example(report: EnsembleReport) -> Any:
    """One row of what the served model returns, for its signature: the prediction, or with
    a coverage target the frame holding its interval or prediction set too."""
    pred = report.test_pred[:1]
    served = served_conformal(report)
    if served is None:
        return pred
    from ensembles.conformal import Conformal, served_frame

    return served_frame(Conformal.from_dict(served), pred, np.zeros(1))


def _signature(inputs: Any, pred: Any) -> Any:
    """The model's signature: its outputs and the parameter ``output``: ``proba`` (the
    default) or, for a classifier, ``labels`` (declared for a regressor too, so that asking
    it for labels fails in one line instead of MLflow dropping the parameter). No input
    schema: the model reads what a user has itself (pyfunc_model), where MLflow would refuse
    all but float32 arrays of exactly (n, features), and its server cannot read a CSV request
    against a schema of columns of any type; the metadata names the table's columns or the
    row width instead."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ParamSchema, ParamSpec
    from mlflow.types.utils import _infer_schema

    params = ParamSchema([ParamSpec("output", "string", "proba")])
    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold missing values under an input
        # schema: these are outputs (a conformal set's class codes), checked against none
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column")
        if isinstance(inputs, int):
            inferred = infer_signature(np.zeros((1, inputs), dtype=np.float32), pred)
            return ModelSignature(inputs=None, outputs=inferred.outputs, params=params)
        return ModelSignature(inputs=None, outputs=_infer_schema(pred), params=params)


def _feature_names(folder: Path, manifest: Mapping[str, Any]) -> list[str] | None:
    """The named features the member saved in ``folder`` reads (a bag's: its first fold's),
    or None; none for images, whose pixels are read by position."""
    if manifest.get("bag"):
        manifest = read_manifest(folder / manifest["bag"][0]["folder"])
    return None if manifest.get("pixel_range") else manifest.get("feature_names")


def _metadata(
    classes: Sequence[str] | None, inputs: Any, feature_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The model's metadata (what the signature leaves out): the names of its probability
    columns (None for a regressor), and the table's columns or the features' count (and
    their names, in the order of a row, when the data named them)."""
    out: dict[str, Any] = {"classes": None if classes is None else list(classes)}
    if isinstance(inputs, int):
        out["n_features"] = inputs
        if feature_names:
            out["feature_names"] = list(feature_names)
    else:
        out["columns"] = [str(c) for c in getattr(inputs, "columns", inputs)]
    return out


def _code_paths(modules: set[str]) -> list[str]:
    """``models/`` and ``ensembles/`` (what the pyfunc model imports), plus the file or
    package of each kind registered from outside ``models/`` and the helper modules beside
    it that it imports."""
    import ensembles
    from models.registry import shipped_paths

    paths = [str(Path(models.__file__).parent), str(Path(ensembles.__file__).parent)]
    for name in sorted(modules):
        for path in map(str, shipped_paths(name)):
            if path not in paths:  # a kind registered by a module under models/ ships with it
                paths.append(path)
    return paths


def register(
    client: MlflowClient,
    run_id: str,
    name: str,
    artifact_path: str = MODEL_DIR,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register the run's model (the ensemble's by default) under ``name``, tagged as its
    run is (``VERSION_TAGS``, and ``tags``); returns the new version."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    run = client.get_run(run_id)
    tags = {**{k: v for k, v in run.data.tags.items() if k in VERSION_TAGS}, **(tags or {})}
    _drop_dead_versions(client, name, run)
    version = client.create_model_version(
        name,
        f"{run.info.artifact_uri}/{artifact_path}",
        run_id=run_id,
        tags=tags,
        description=_version_description(run, tags),
    )
    return str(version.version)


def _drop_dead_versions(client: MlflowClient, name: str, run: Any) -> None:
    """Delete the versions of ``name`` an earlier attempt of the same sweep registered from
    a run that then died (a crash between registering and finishing): the rerun registers
    its own, and the record would hold both. A version holding an alias or a stage is left
    alone, and so is one this user may not delete (best effort: registering goes on)."""
    sweep, role = run.data.tags.get(SWEEP), run.data.tags.get(ROLE)
    if not sweep:
        return
    aliased = {str(v) for v in (client.get_registered_model(name).aliases or {}).values()}
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.run_id == run.info.run_id or version.tags.get(SWEEP) != sweep:
            continue
        if version.tags.get(ROLE) != role or str(version.version) in aliased:
            continue
        if (version.current_stage or "None") != "None":  # a legacy stage someone set
            continue
        try:
            if client.get_run(version.run_id).info.status in ("KILLED", "FAILED"):
                client.delete_model_version(name, version.version)
        except Exception as err:  # its run deleted, or no right to delete: leave it
            log.warning(
                "registered model %s: version %s of a run that died stays (%s)",
                name,
                version.version,
                type(err).__name__,
            )


# the run's tags a registered version carries: where it came from, on which data, of what
VERSION_TAGS = (
    ROLE,
    SWEEP,
    DATA_FINGERPRINT,
    MEMBERS,
    SERVED_MEMBERS,
    EXPERIMENT,
    "mlflow.runName",
)


def _version_description(run: Any, tags: Mapping[str, str]) -> str:
    """One line for the registry's page: the run's role and sweep, its data split and its
    served test scores."""
    scores = run.data.metrics
    # what the model serves: its refits' scores when it serves refits
    prefix = "refit_test_" if any(k.startswith("refit_test_") for k in scores) else "final_test_"
    served = {
        k.removeprefix(prefix): v
        for k, v in sorted(scores.items())
        if k.startswith(prefix) and "conformal" not in k
    }
    said = ", ".join(f"{k} {v:.4g}" for k, v in served.items())
    role = tags.get(ROLE, "run")
    sweep = f" of sweep {tags[SWEEP]}" if SWEEP in tags else ""
    split = f" on data split {tags[DATA_FINGERPRINT]}" if DATA_FINGERPRINT in tags else ""
    return f"{role} run {run.info.run_id}{sweep}{split}" + (f"; test {said}" if said else "")


def score_loaded_back(
    client: MlflowClient,
    name: str,
    version: str,
    X_test: np.ndarray,
    y_test: np.ndarray,
    expected: np.ndarray,
    metric: str,
) -> float:
    """Load the registered version back from the registry as a user would, predict the test
    rows, and return its score; ValueError if it does not load or predicts otherwise than
    the ensemble that was logged."""
    pred = _registered_predictions(client, name, version, X_test)
    if pred.shape != np.shape(expected) or not np.allclose(pred, expected, rtol=1e-4, atol=1e-6):
        raise ValueError("its predictions differ from the ensemble that was logged")
    return evaluate(y_test, pred)[metric]


class ModelUnavailable(ValueError):
    """A registered version could not be downloaded (the store or the network failed)."""


def _registered_predictions(
    client: MlflowClient,
    name: str,
    version: str,
    X: Any,
    classes: Sequence[str] | None = None,
) -> np.ndarray:
    """A registered version, downloaded and loaded as a user would, predicting ``X``: its
    probabilities or values. ValueError if it fails, or (given ``classes``) predicts other
    classes than those, in another order."""
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        try:
            source = client.get_model_version(name, version).source
            if source.startswith("runs:/") or source.startswith("models:/"):
                source = client.get_model_version_download_uri(name, version)
            local = download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=client.tracking_uri
            )
        except Exception as err:
            said = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(err, "error_code", "")):
                raise ValueError(f"it no longer exists ({said})") from None  # for good
            raise ModelUnavailable(said) from None  # the store or the network, for now
        try:
            model = mlflow.pyfunc.load_model(local)
            theirs = (model.metadata.metadata or {}).get("classes")
            if classes is not None and theirs is not None and list(theirs) != list(classes):
                raise ValueError(
                    f"it predicts the classes {', '.join(map(str, theirs))}, this split has "
                    f"{', '.join(map(str, classes))}"
                )
            # with a coverage target the served frame's probabilities or values
            return point_predictions(model.predict(X))
        except Exception as err:  # any failure to load or predict
            raise ValueError(f"{type(err).__name__}: {str(err).splitlines()[0]}") from None


def score_registered(
    client: MlflowClient,
    name: str,
    X_test: Any,
    y_test: np.ndarray,
    metric: str,
    classes: Sequence[str] | None,
    version: str,
) -> float:
    """A registered version (the champion) scored on this split's test rows; ValueError
    when it cannot be (it fails to load or predict, or knows other classes)."""
    return evaluate(y_test, _registered_predictions(client, name, version, X_test, classes))[metric]


def champion_challenger(
    client: MlflowClient,
    name: str,
    run_id: str,
    version: str,
    metric: str,
    value: float,
    greater_is_better: bool,
    fingerprint: str,
    loaded_back: Callable[[], float] | None = None,
    rescore: Callable[[str], float] | None = None,
) -> dict[str, Any]:
    """Compare a new registered version with the one holding the alias ``champion`` on the
    same test split; move the alias only if the new one is better, and only after
    ``loaded_back()`` (the version loaded back from the registry and scored) confirmed the
    score. A champion tested on another split (last week's table) is scored on this one by
    ``rescore(version)``; one that cannot be (it fails on these rows, knows other classes,
    or no longer exists) gives way, one the store cannot hand over now (ModelUnavailable)
    stays. Records the decision on the new version's run (tags ``runner.champion.*``) and
    returns it."""
    base: dict[str, Any] = {
        "model": name,
        "challenger_version": version,
        "metric": metric,
        "challenger": value,
    }
    failed = None
    if loaded_back is not None:
        try:
            base["challenger_loaded_back"] = value = loaded_back()
        except ValueError as err:
            failed = f"kept: the new version failed when loaded back ({err})"
    seen: set[str | None] = set()
    while True:
        champion = _champion(client, name)
        decision = dict(base)
        if failed is not None:
            decision["decision"] = failed
            break
        _decide(client, decision, champion, value, metric, greater_is_better, fingerprint, rescore)
        if not _moves(decision):
            break
        # another sweep may have moved the alias while this one was loaded back and compared
        # (seconds for a large ensemble): compare again with the champion it holds now
        now = _champion(client, name)
        held = None if now is None else str(now.version)
        if held == (None if champion is None else str(champion.version)):
            client.set_registered_model_alias(name, "champion", version)
            break
        if held in seen:  # moved back and forth: leave it to the next comparison
            decision["decision"] = "kept: the champion changed while they were compared"
            break
        seen.add(held)
    client.log_batch(
        run_id,
        tags=[mlflow.entities.RunTag(f"{CHAMPION}{k}", str(v)) for k, v in decision.items()],
    )
    return decision


def _champion(client: MlflowClient, name: str) -> Any:
    """The version holding the alias ``champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None


def _moves(decision: Mapping[str, Any]) -> bool:
    """Whether a decision gives the challenger the alias."""
    return decision["decision"] == "first champion" or decision["decision"].startswith("promoted")


def _decide(
    client: MlflowClient,
    decision: dict[str, Any],
    champion: Any,
    value: float,
    metric: str,
    greater_is_better: bool,
    fingerprint: str,
    rescore: Callable[[str], float] | None,
) -> None:
    """Fill ``decision`` (its ``decision`` and the champion's score) comparing the challenger's
    ``value`` with ``champion`` (None: there is none)."""
    if champion is None:
        decision["decision"] = "first champion"
        return
    old = client.get_run(champion.run_id)
    decision["champion_version"] = champion.version
    # what the champion serves: its refits' score when it serves refits on all rows
    scores = old.data.metrics
    old_value = scores.get(f"refit_test_{metric}", scores.get(f"final_test_{metric}"))
    decision["champion"] = old_value
    rescored = ""
    other_split = old.data.tags.get(DATA_FINGERPRINT) != fingerprint
    if other_split or old_value is None:
        if rescore is None:
            old_value = None
        else:
            try:
                decision["champion"] = old_value = rescore(str(champion.version))
                # a split drawn anew from a grown table: some of these rows may have
                # been the champion's training rows, which flatters it
                rescored = (
                    " (the champion scored on this split's test rows, some of which it may "
                    "have trained on)"
                    if other_split
                    else " (the champion scored on this split's test rows)"
                )
            except ModelUnavailable as err:
                decision["decision"] = (
                    f"kept: the champion, tested on another split, could not be downloaded "
                    f"to score it on this one ({err})"
                )
                return
            except ValueError as err:
                decision["decision"] = (
                    f"promoted: the champion, tested on another split, cannot be scored "
                    f"on this one ({err})"
                )
                return
    if old_value is None:
        decision["decision"] = "kept: the champion was tested on another split"
    else:
        better = value > old_value if greater_is_better else value < old_value
        decision["decision"] = ("promoted" if better else "kept: not better") + rescored
