"""The ensemble step, once, for the sweep and for ``python -m ensembles``: fit the method on
the members' validation predictions, score it on test, and log the ensemble run (report,
pictures, the pyfunc model, its registration and the champion decision)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient

from ensembles import conformal, stage
from ensembles.metrics import evaluate, greater_is_better
from ensembles.stage import EnsembleReport, MemberPredictions
from runner import export
from runner.contracts import (
    DATA_FINGERPRINT,
    ENSEMBLE_HASH,
    ENSEMBLE_SETTINGS,
    MEMBERS,
    MODEL_DIR,
    REFIT,
    ROLE,
    SERVED_MEMBERS,
)
from runner.spec import EnsembleSpec


def fit(
    settings: EnsembleSpec,
    members: Sequence[MemberPredictions],
    y_val: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    fingerprint: str | None,
    metric: str | None = None,
    set_aside: int = 0,
) -> EnsembleReport:
    """The fitted ensemble and its report (``metric``: the one that ranks and judges, default
    accuracy or RMSE; ``set_aside``: members already let go as outside the candidates);
    ValueError (one line) if it cannot be built."""
    return stage.run(
        settings.method,
        settings.params,
        members,
        y_val,
        y_test,
        random_state=seed,
        cv_folds=settings.cv_folds,
        n_boot=settings.n_boot,
        fingerprint=fingerprint,
        calibrate=settings.calibrate,
        metric=metric,
        coverage=settings.coverage,
        max_latency_ms=settings.max_latency_ms,
        max_members=settings.max_members,
        max_candidates=settings.candidates,
        set_aside=set_aside,
    )


@dataclass(frozen=True)
class Refitted:
    """The ensemble served with its bagged members refitted on all rows: the same estimator
    (weights learned out of fold) on the refits' test predictions. ``member_runs`` names the
    run holding each served member's model: its refit's, or its bag's where the refit did not
    finish (listed in ``fell_back``); ``refit_runs`` every finished refit's run, by member."""

    member_runs: dict[str, str]
    test_pred: np.ndarray
    test_scores: dict[str, float]
    fell_back: list[str]
    refit_runs: dict[str, str]

    def summary(self, metric: str) -> dict[str, Any]:
        """JSON-ready view for summary.json and the ensemble run."""
        return {
            "test_metric": self.test_scores[metric],
            "test_scores": self.test_scores,
            "member_runs": self.member_runs,
            "fell_back": self.fell_back,
        }


def refitted(
    report: EnsembleReport,
    members: Sequence[MemberPredictions],
    member_runs: Mapping[str, str],
    refits: Mapping[str, tuple[str, np.ndarray]],
    y_test: np.ndarray,
) -> Refitted:
    """The fitted ensemble on the refits' test predictions (``refits``: member name -> its
    refit's run and test predictions), each member without a refit on its bag's."""
    bagged = {m.name: m.test for m in members}
    P = np.stack([refits[n][1] if n in refits else bagged[n] for n in report.names])
    P = P.astype(np.float64, copy=False)
    pred = report.estimator.predict(P)
    scores = evaluate(y_test, pred)
    if report.conformal:  # the served intervals or sets, on the refits' predictions
        fitted = conformal.Conformal.from_dict(export.served_conformal(report))
        s = conformal.spread(P, report.estimator.weights_) if P.ndim == 2 else None
        covered = conformal.evaluate_on(fitted, pred, y_test, s)
        scores.update({f"conformal_{k}": v for k, v in covered.items()})
    return Refitted(
        member_runs={n: refits[n][0] if n in refits else member_runs[n] for n in report.names},
        test_pred=pred,
        test_scores=scores,
        # the served members (with weight, for an averaging ensemble) without a refit
        fell_back=[n for n in report.served_names if n not in refits],
        refit_runs={n: run for n, (run, _) in refits.items()},
    )


def settings_of(
    settings: EnsembleSpec,
    seed: int,
    fingerprint: str,
    member_runs: Mapping[str, str],
    metric: str,
    refit_runs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What determines an ensemble run: the method and its settings, the metric it is judged
    by, the seed, the split and exactly which member runs it combines (and serves refitted)."""
    refit = {"refits": dict(sorted(refit_runs.items()))} if refit_runs else {}
    return {
        **refit,
        "method": settings.method,
        "metric": metric,
        "params": settings.params,
        "cv_folds": settings.cv_folds,
        "n_boot": settings.n_boot,
        "calibrate": settings.calibrate,
        # only when set, so runs logged before coverage existed keep their hash
        **({"coverage": settings.coverage} if settings.coverage is not None else {}),
        **{
            key: getattr(settings, key)
            for key in ("max_latency_ms", "max_members")
            if getattr(settings, key) is not None
        },
        # only when it leaves members out, so runs logged before it existed keep their hash
        **(
            {"candidates": settings.candidates}
            if settings.candidates is not None and len(member_runs) > settings.candidates
            else {}
        ),
        "log_model": settings.log_model,
        "register_as": settings.register_as,
        "seed": seed,
        "fingerprint": fingerprint,
        "members": dict(sorted(member_runs.items())),
    }


def settings_hash(described: Mapping[str, Any]) -> str:
    """A stable short hash of ``settings_of``'s description."""
    blob = json.dumps(described, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def existing_run(client: MlflowClient, experiment_id: str, digest: str) -> str | None:
    """The FINISHED ensemble run made with exactly these settings, if there is one."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{ROLE}` = 'ensemble' and tags.`{ENSEMBLE_HASH}` = '{digest}' "
        "and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def reuse(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The summary's ensemble entry of an ensemble run logged earlier (from its report)."""
    import tempfile
    from pathlib import Path

    logged = {a.path for a in client.list_artifacts(run_id)}
    with tempfile.TemporaryDirectory() as tmp:
        report = json.loads(Path(client.download_artifacts(run_id, "report.json", tmp)).read_text())
        if REFIT in logged:
            report["refit"] = json.loads(
                Path(client.download_artifacts(run_id, REFIT, tmp)).read_text()
            )
    report.pop("diversity", None)
    has_model = MODEL_DIR in logged
    return {
        **report,
        "run_id": run_id,
        "model_uri": f"runs:/{run_id}/{MODEL_DIR}" if has_model else None,
        "registered_version": None,
        "reused": True,
    }


def log(
    client: MlflowClient,
    report: EnsembleReport,
    settings: EnsembleSpec,
    *,
    open_run: Callable[[dict[str, str]], str],
    end_run: Callable[[str, str], None],
    member_runs: Mapping[str, str],
    y_test: np.ndarray,
    fingerprint: str,
    inputs: Any,
    seed: int,
    X_test: Any = None,
    refit: Refitted | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Log ``report`` as a new ensemble run (``open_run(tags)`` creates it where the caller
    wants it); returns the summary's ensemble entry. ``inputs`` (the feature count, or table
    rows) describes the exported model's input; None logs no model; ``classes`` names its
    probability columns. With ``X_test`` a champion decision is taken only after the
    registered version was loaded back and scored on those rows. With ``refit`` the model
    holds the refitted members, and its test scores are the ones the champion decision
    compares. The run ends FAILED if logging fails, KILLED if a signal stops it."""
    refit_runs = None if refit is None else refit.refit_runs
    described = settings_of(settings, seed, fingerprint, member_runs, report.metric, refit_runs)
    run_id = open_run(
        {
            MEMBERS: ",".join(report.names),
            SERVED_MEMBERS: ",".join(report.names[i] for i in report.estimator.used_members()),
            DATA_FINGERPRINT: fingerprint,
            ENSEMBLE_HASH: settings_hash(described),
            ENSEMBLE_SETTINGS: json.dumps({k: v for k, v in described.items() if k != "members"}),
        }
    )
    try:
        served = None if refit is None else refit.test_scores.get("conformal_coverage")
        export.log_report(client, run_id, report, y_test, served_coverage=served)
        out = {**report.summary(), "run_id": run_id, "model_uri": None, "registered_version": None}
        served_pred, served_scores, served_runs = report.test_pred, report.test_scores, member_runs
        if refit is not None:
            out["refit"] = refit.summary(report.metric)
            export.log_refit(client, run_id, out["refit"], refit.test_pred)
            served_pred, served_scores = refit.test_pred, refit.test_scores
            served_runs = refit.member_runs
        if settings.log_model and inputs is not None:
            out["model_uri"] = export.log_pyfunc(
                client, run_id, report, served_runs, inputs, classes=classes
            )
            if settings.register_as:
                version = export.register(client, run_id, settings.register_as)
                out["registered_version"] = version
                if settings.champion:
                    metric = report.metric
                    loaded_back = (
                        None
                        if X_test is None
                        else partial(
                            export.score_loaded_back,
                            client,
                            settings.register_as,
                            version,
                            X_test,
                            y_test,
                            served_pred,
                            metric,
                        )
                    )
                    rescore = (
                        None
                        if X_test is None
                        else partial(
                            export.score_registered,
                            client,
                            settings.register_as,
                            X_test,
                            y_test,
                            metric,
                            classes,
                        )
                    )
                    out["champion"] = export.champion_challenger(
                        client,
                        settings.register_as,
                        run_id,
                        version,
                        metric,
                        served_scores[metric],
                        greater_is_better(metric),
                        fingerprint,
                        loaded_back,
                        rescore,
                    )
    except KeyboardInterrupt:  # SIGINT, or SIGTERM through runner.signals
        end_run(run_id, "KILLED")
        raise
    except BaseException:
        end_run(run_id, "FAILED")
        raise
    end_run(run_id, "FINISHED")
    return out
