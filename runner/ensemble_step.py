"""The ensemble step, once, for the sweep and for ``python -m ensembles``: fit the method on
the members' validation predictions, score it on test, and log the ensemble run (report,
pictures, the pyfunc model, its registration and the champion decision)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient

from ensembles import stage
from ensembles.metrics import greater_is_better
from ensembles.stage import EnsembleReport, MemberPredictions
from runner import export
from runner.contracts import DATA_FINGERPRINT, MEMBERS
from runner.spec import EnsembleSpec


def fit(
    settings: EnsembleSpec,
    members: Sequence[MemberPredictions],
    y_val: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    fingerprint: str | None,
) -> EnsembleReport:
    """The fitted ensemble and its report; ValueError (one line) if it cannot be built."""
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
    )


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
    n_features: int | None,
) -> dict[str, Any]:
    """Log ``report`` as a new ensemble run (``open_run(tags)`` creates it where the caller
    wants it); returns the summary's ensemble entry. The run ends FAILED if logging fails,
    KILLED if a signal stops it."""
    run_id = open_run({MEMBERS: ",".join(report.names), DATA_FINGERPRINT: fingerprint})
    try:
        export.log_report(client, run_id, report, y_test)
        out = {**report.summary(), "run_id": run_id, "model_uri": None, "registered_version": None}
        if settings.log_model and n_features is not None:
            out["model_uri"] = export.log_pyfunc(client, run_id, report, member_runs, n_features)
            if settings.register_as:
                version = export.register(client, run_id, settings.register_as)
                out["registered_version"] = version
                if settings.champion:
                    metric = report.metric
                    out["champion"] = export.champion_challenger(
                        client,
                        settings.register_as,
                        run_id,
                        version,
                        metric,
                        report.test_scores[metric],
                        greater_is_better(metric),
                        fingerprint,
                    )
    except KeyboardInterrupt:  # SIGINT, or SIGTERM through runner.signals
        end_run(run_id, "KILLED")
        raise
    except BaseException:
        end_run(run_id, "FAILED")
        raise
    end_run(run_id, "FINISHED")
    return out
