"""The ensemble stage: pick usable members, learn on validation predictions, report on test
once, with honest estimates and a diversity report beside the scores."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ensembles import Budget, conformal, make
from ensembles.budget import validation_loss
from ensembles.calibration import (
    CalibratedEnsemble,
    calibration_scores,
    fit_temperature,
    scale,
    too_few_errors,
)
from ensembles.diversity import diversity_report
from ensembles.honest import (
    best_member,
    bootstrap_gain,
    cross_fitted_predictions,
    score_cross_fitted,
)
from ensembles.metrics import evaluate, greater_is_better, headline_metric
from ensembles.validation import check_predictions

log = logging.getLogger(__name__)


@dataclass
class MemberPredictions:
    """One member's predictions on the validation and test rows of a split."""

    name: str
    val: np.ndarray
    test: np.ndarray
    fingerprint: str | None = None
    cost: float | None = None  # milliseconds it takes to predict 1000 rows, when measured
    # a bagged regression member's test predictions by each fold's model (folds, rows): the
    # members' spread under its conformal intervals is taken fold by fold (conformal.spread)
    test_folds: np.ndarray | None = None

    def __post_init__(self) -> None:
        # a column of values (rows, 1), as a Keras regressor predicts, is a regression's (rows,)
        for split in ("val", "test"):
            values = np.asarray(getattr(self, split))
            if values.ndim == 2 and values.shape[1] == 1:
                setattr(self, split, values[:, 0])
        if self.test_folds is not None:
            folds = np.asarray(self.test_folds)
            folds = folds[:, :, 0] if folds.ndim == 3 and folds.shape[2] == 1 else folds
            if folds.ndim != 2 or folds.shape[1:] != np.shape(self.test):
                raise ValueError(
                    f"member {self.name!r}: test_folds must be shaped (folds, "
                    f"{len(self.test)}) for a regression's test rows, got {folds.shape}"
                )
            self.test_folds = folds


def usable_members(
    members: Sequence[MemberPredictions], fingerprint: str | None = None
) -> tuple[list[MemberPredictions], dict[str, str]]:
    """Members fit to ensemble, and the reason each other one was left out.

    A member is left out when its split fingerprint differs from ``fingerprint`` (default:
    the most common one), its shapes differ from the most common shapes among the members
    of that split, or its predictions hold NaN or infinite values.
    """
    if not members:
        return [], {}
    if fingerprint is None:
        fingerprint = Counter(m.fingerprint for m in members).most_common(1)[0][0]
    split = [m for m in members if m.fingerprint == fingerprint] or list(members)
    shapes = Counter((np.shape(m.val), np.shape(m.test)) for m in split).most_common(1)[0][0]
    usable, dropped = [], {}
    for m in members:
        if m.fingerprint != fingerprint:
            dropped[m.name] = f"split fingerprint {m.fingerprint} is not {fingerprint}"
        elif (np.shape(m.val), np.shape(m.test)) != shapes:
            dropped[m.name] = (
                f"prediction shapes {np.shape(m.val)}/{np.shape(m.test)} differ from "
                f"{shapes[0]}/{shapes[1]}"
            )
        elif not (np.all(np.isfinite(m.val)) and np.all(np.isfinite(m.test))):
            dropped[m.name] = "predictions contain NaN or infinite values"
        else:
            usable.append(m)
    return usable, dropped


def check_candidates(keep: Any) -> int | None:
    """``keep`` if it is a valid ``max_candidates`` (an integer >= 2, or None), else ValueError."""
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 2):
        raise ValueError(f"max_candidates must be an integer >= 2 or None, got {keep!r}")
    return keep


def prune_candidates(
    usable: Sequence[MemberPredictions],
    y_val: np.ndarray,
    metric: str,
    keep: int | None,
    set_aside: int = 0,
) -> tuple[list[MemberPredictions], dict[str, Any] | None]:
    """The ``keep`` members with the lowest validation loss (and the best by ``metric``),
    in their order, and a note of what was pruned (None when nothing was): Caruana et al.
    (2004) select from the best models of a large library, which scores as well or better
    and keeps the stage's time and memory bounded whatever the number of trials.
    ``set_aside`` counts members a ``CandidateLibrary`` already let go of before the stage."""
    check_candidates(keep)
    if keep is None or (len(usable) <= keep and not set_aside):
        return list(usable), None
    losses, scores = np.empty(len(usable)), np.empty(len(usable))
    for i, m in enumerate(usable):  # one float64 copy at a time: thousands fit in float32 only
        losses[i], scores[i] = _loss_and_score(m.val, y_val, metric)
    kept = set(np.argsort(losses, kind="stable")[:keep].tolist())
    kept.add(int(np.argmax(scores) if greater_is_better(metric) else np.argmin(scores)))
    note = {
        "kept": len(kept),
        "of": len(usable) + set_aside,
        "rule": f"the {keep} lowest validation losses and the best validation {metric}",
        "worst_kept_val_loss": float(max(losses[i] for i in kept)),
    }
    return [m for i, m in enumerate(usable) if i in kept], note


def _loss_and_score(val: np.ndarray, y_val: np.ndarray, metric: str) -> tuple[float, float]:
    val = np.asarray(val, dtype=np.float64)
    return validation_loss(val, y_val), evaluate(y_val, val)[metric]


class CandidateLibrary:
    """Says, as members arrive one by one, which of them ``prune_candidates`` can no longer
    keep, so that a caller holding thousands of members' predictions can let go of theirs
    during a sweep: a member is set aside once ``keep`` members of its split and shapes have
    a strictly lower validation loss and one has a strictly better ``metric``. Neither can
    change back as members arrive, so pruning the members left gives the same candidates
    as pruning all of them, in any arrival order."""

    def __init__(self, y_val: np.ndarray, metric: str, keep: int) -> None:
        if check_candidates(keep) is None:
            raise ValueError("a CandidateLibrary needs a number of candidates to keep, got None")
        self.y_val, self.metric, self.keep = y_val, metric, keep
        self._groups: dict[Any, dict[str, tuple[float, float]]] = {}
        self.set_aside = 0

    def add(
        self, name: str, val: np.ndarray, test: np.ndarray, fingerprint: str | None = None
    ) -> list[str]:
        """Take in a member; return the names (of it or of earlier ones) now set aside."""
        if not (np.all(np.isfinite(val)) and np.all(np.isfinite(test))):
            return []  # the stage leaves it out, saying why: it needs the predictions
        held = self._groups.setdefault((fingerprint, np.shape(val), np.shape(test)), {})
        held[name] = _loss_and_score(val, self.y_val, self.metric)
        if len(held) <= self.keep:
            return []
        losses = np.fromiter((loss for loss, _ in held.values()), dtype=np.float64)
        kth = float(np.partition(losses, self.keep - 1)[self.keep - 1])
        sign = 1.0 if greater_is_better(self.metric) else -1.0
        best = max(sign * score for _, score in held.values())
        out = [n for n, (loss, score) in held.items() if loss > kth and sign * score < best]
        for n in out:
            del held[n]
        self.set_aside += len(out)
        return out


@dataclass
class EnsembleReport:
    """A fitted ensemble, its scores, honest estimates and diversity."""

    method: str
    params: dict[str, Any]
    metric: str
    names: list[str]
    weights: dict[str, float]
    val_scores: dict[str, float]
    val_cross_fitted: bool
    test_scores: dict[str, float]
    best_member: str
    best_member_test_scores: dict[str, float]
    test_gain: dict[str, float]
    cross_fitted: dict[str, Any]
    diversity: dict[str, Any]
    dropped: dict[str, str]
    estimator: Any = field(repr=False)
    val_pred: np.ndarray = field(repr=False)
    test_pred: np.ndarray = field(repr=False)
    calibration: dict[str, Any] | None = None
    uncalibrated_test_pred: np.ndarray | None = field(default=None, repr=False)
    # with a coverage target: the calibrated conformal predictor, its test coverage and
    # interval width or set size, and the coverage curve over target levels
    conformal: dict[str, Any] | None = None
    # with a latency or size budget: the limits, what the chosen members cost, the same
    # method on all members, and every candidate ensemble the selection weighed
    budget: dict[str, Any] | None = None
    # with more usable members than ``max_candidates``: how many were kept, of how many
    pruned: dict[str, Any] | None = None

    @property
    def served_names(self) -> list[str]:
        """The members the fitted ensemble reads, so the ones a served model holds: those
        with weight in an average, a budget's choice, every member for stacking."""
        return [self.names[i] for i in self.estimator.used_members()]

    @property
    def beats_best_member(self) -> bool:
        """Whether the ensemble scored better than the best (by val) member on test."""
        return self.test_gain["estimate"] > 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready view for summary.json and MLflow."""
        return {
            "method": self.method,
            "params": self.params,
            "weights": self.weights,
            "val_metric": self.val_scores[self.metric],
            "test_metric": self.test_scores[self.metric],
            "val_scores": self.val_scores,
            "val_cross_fitted": self.val_cross_fitted,
            "test_scores": self.test_scores,
            "best_member": self.best_member,
            "best_member_test_metric": self.best_member_test_scores[self.metric],
            "test_gain_over_best_member": self.test_gain,
            "beats_best_member": self.beats_best_member,
            "cross_fitted": self.cross_fitted,
            "left_out": self.dropped,
            "pruned": self.pruned,
            "calibration": self.calibration,
            "conformal": self.conformal,
            "budget": None
            if self.budget is None
            else {k: v for k, v in self.budget.items() if k != "candidates"},
        }


def run(
    method: str,
    params: Mapping[str, Any],
    members: Sequence[MemberPredictions],
    y_val: np.ndarray,
    y_test: np.ndarray,
    random_state: int | None = 0,
    cv_folds: int = 5,
    n_boot: int = 1000,
    fingerprint: str | None = None,
    calibrate: bool = True,
    metric: str | None = None,
    coverage: float | None = None,
    max_latency_ms: float | None = None,
    max_members: int | None = None,
    max_candidates: int | None = None,
    set_aside: int = 0,
) -> EnsembleReport:
    """Ensemble the usable members: weights from validation only; test touched to report.
    With ``calibrate``, class probabilities are temperature-scaled, the temperature fitted
    on the ensemble's cross-fitted validation predictions (rows no weight was fitted on).
    ``metric`` (default accuracy or RMSE) picks the best member and scores the gains. With
    ``coverage`` a split-conformal predictor (intervals or prediction sets) is calibrated on
    the same cross-fitted predictions and its coverage measured on test. With
    ``max_latency_ms`` (the members' summed ``cost``) or ``max_members`` the method is fitted
    on the members forward selection keeps within that budget (``ensembles.budget``), in the
    cross-fitted estimate too. With ``max_candidates``, only that many members (the best on
    validation, ``prune_candidates``) are ensembled; ``set_aside`` counts the members a
    ``CandidateLibrary`` let go of before the stage (they count in the note of what was
    pruned)."""
    usable, dropped = usable_members(members, fingerprint)
    if len(usable) < 2:
        names = ", ".join(m.name for m in usable) or "none"
        raise ValueError(
            f"need at least two usable members to ensemble, got {len(usable)} ({names})"
            + (f"; left out: {dropped}" if dropped else "")
        )
    for name, reason in dropped.items():
        log.warning("member %s left out of the ensemble: %s", name, reason)
    metric = headline_metric(np.ndim(usable[0].val) == 2, metric)
    usable, pruned = prune_candidates(usable, y_val, metric, max_candidates, set_aside)
    if pruned is not None:
        log.info(
            "ensembling the %d best of %d members on validation (ensemble.candidates=%d)",
            pruned["kept"],
            pruned["of"],
            max_candidates,
        )
    names = [m.name for m in usable]
    P_val = np.stack([m.val for m in usable]).astype(np.float64, copy=False)
    P_test = np.stack([m.test for m in usable]).astype(np.float64, copy=False)
    try:  # each split's shapes and values (a column of values taken as (rows,))
        P_val, y_val = check_predictions(P_val, y_val)
    except ValueError as err:
        raise ValueError(f"validation rows: {err}") from None
    try:
        P_test, y_test = check_predictions(P_test, y_test)
    except ValueError as err:
        raise ValueError(f"test rows: {err}") from None
    budget = _budget(usable, max_latency_ms, max_members)
    fit_params = {**params, "budget": budget} if budget is not None else dict(params)
    estimator = make(method, **{"random_state": random_state, **fit_params}).fit(P_val, y_val)
    if getattr(estimator, "capped_", False):
        log.warning(
            "%s ensemble: more than max_members=%d members would take weight; the weights "
            "are the optimum over the %d it kept",
            method,
            estimator.max_members,
            estimator.max_members,
        )
    oof = getattr(estimator, "oof_pred_", None)
    val_pred = estimator.predict(P_val) if oof is None else oof
    test_pred = estimator.predict(P_test)
    best = best_member(P_val, y_val, metric)
    ens_oof, best_oof = cross_fitted_predictions(
        method, fit_params, P_val, y_val, metric, cv_folds, random_state
    )
    budgeted = None
    if budget is not None:
        budgeted = _budget_report(
            estimator, budget, (method, params, random_state), names, (P_val, y_val, P_test, y_test)
        )
    calibration, uncalibrated = None, None
    if calibrate and P_val.ndim == 3:
        reason = too_few_errors(ens_oof, y_val)
        if reason is not None:
            calibration = {"method": "none", "reason": reason}
        else:
            uncalibrated = test_pred
            estimator, calibration = _calibrate(estimator, ens_oof, y_val, test_pred, y_test)
            val_pred, test_pred = scale(val_pred, estimator.temperature), estimator.predict(P_test)
    uncertainty = None
    if coverage is not None:
        if getattr(estimator, "temperature", None) is not None:
            ens_oof = scale(ens_oof, estimator.temperature)
        uncertainty = _conformal(
            coverage,
            estimator.weights_,
            (P_val, ens_oof, y_val),
            (P_test, test_pred, y_test),
            _by_fold(usable),
        )
    return EnsembleReport(
        method=method,
        params=dict(params),
        metric=metric,
        names=names,
        weights={n: float(w) for n, w in zip(names, estimator.weights_, strict=True)},
        val_scores=evaluate(y_val, val_pred),
        val_cross_fitted=oof is not None,
        test_scores=evaluate(y_test, test_pred),
        best_member=names[best],
        best_member_test_scores=evaluate(y_test, P_test[best]),
        test_gain=bootstrap_gain(
            y_test, test_pred, P_test[best], metric, n_boot=n_boot, random_state=random_state
        ),
        cross_fitted=score_cross_fitted(y_val, ens_oof, best_oof, metric, cv_folds),
        diversity=diversity_report(
            method,
            fit_params,
            names,
            P_val,
            y_val,
            P_test,
            y_test,
            metric,
            estimator.weights_,
            random_state,
        ),
        dropped=dropped,
        estimator=estimator,
        calibration=calibration,
        val_pred=val_pred,
        test_pred=test_pred,
        uncalibrated_test_pred=uncalibrated,
        conformal=uncertainty,
        budget=budgeted,
        pruned=pruned,
    )


def _budget(
    usable: Sequence[MemberPredictions], max_latency_ms: float | None, max_members: int | None
) -> Budget | None:
    """The budget the members are selected within, or None without limits. Members' costs
    are their prediction times when all are known; with a latency limit an unknown time
    counts as the slowest known one (said so), and none known is a ValueError."""
    if max_latency_ms is None and max_members is None:
        return None
    known = [m.cost for m in usable if m.cost is not None]
    missing = [m.name for m in usable if m.cost is None]
    costs = None
    if max_latency_ms is not None:
        if not known:
            raise ValueError(
                f"max_latency_ms={max_latency_ms:g} needs the members' prediction times; "
                f"none of {len(usable)} members recorded one"
            )
        if missing:
            log.warning(
                "prediction time of %s unknown: counted as the slowest member's (%.1f ms)",
                ", ".join(missing),
                max(known),
            )
    if known:
        costs = tuple(float(m.cost if m.cost is not None else max(known)) for m in usable)
    return Budget(costs, max_latency_ms, max_members)


def _budget_report(
    estimator: Any,
    budget: Budget,
    method_of: tuple[str, Mapping[str, Any], int | None],
    names: Sequence[str],
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """What the budget chose beside the same method on all members (its validation loss,
    test scores and cost), and every candidate the selection weighed, for the Pareto plot.
    Losses are log loss (classes) or RMSE (values); costs milliseconds per 1000 rows, or
    the number of members when prediction times are unknown."""
    method, params, random_state = method_of
    P_val, y_val, P_test, y_test = rows
    classification = P_val.ndim == 3

    def shown(loss: float) -> float:
        return loss if classification else float(np.sqrt(loss))

    def cost(members: np.ndarray) -> float:
        return float(np.asarray(budget.costs)[members].sum())

    full = make(method, **{"random_state": random_state, **params}).fit(P_val, y_val)
    oof = getattr(full, "oof_pred_", None)
    everyone = full.used_members()
    chosen = estimator.used_members()
    in_ms = budget.costs is not None
    return {
        "max_latency_ms": budget.max_cost,
        "max_members": budget.max_members,
        "cost_unit": "ms per 1000 rows" if in_ms else "members",
        "loss": "log_loss" if classification else "rmse",
        "members": [names[i] for i in chosen],
        "cost": cost(chosen) if in_ms else len(chosen),
        "val_loss": shown(estimator.loss_),
        "all_members": {
            "members": len(everyone),
            "cost": cost(everyone) if in_ms else len(everyone),
            "val_loss": shown(validation_loss(full.predict(P_val) if oof is None else oof, y_val)),
            "test_scores": evaluate(y_test, full.predict(P_test)),
        },
        "note": None
        if len(names) <= estimator.POOL
        else f"candidates: the {estimator.POOL} best members alone of {len(names)}",
        "candidates": [
            {
                "members": [names[i] for i in c["members"]],
                "cost": c["cost"] if in_ms else len(c["members"]),
                "val_loss": shown(c["loss"]),
            }
            for c in estimator.candidates_
        ],
    }


def _by_fold(usable: Sequence[MemberPredictions]) -> np.ndarray | None:
    """The members' test predictions by fold (folds, members, rows) when every member is
    bagged over the same number of folds, else None."""
    folds = [m.test_folds for m in usable]
    if any(f is None for f in folds) or len({np.shape(f) for f in folds}) != 1:
        return None
    return np.stack(folds, axis=1).astype(np.float64, copy=False)


def _conformal(
    coverage: float,
    weights: np.ndarray,
    cal: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    test_by_fold: np.ndarray | None = None,
) -> dict[str, Any]:
    """Calibrate the conformal predictor on (members' predictions, ensemble's cross-fitted
    prediction, targets) of validation; measure it, and its coverage curve, on test (the
    members' spread there from ``test_by_fold`` when they are bagged)."""
    (P_val, cal_pred, y_val), (P_test, test_pred, y_test) = cal, test
    regression = P_val.ndim == 2
    s_val = conformal.spread(P_val, weights) if regression else None
    spread_from = P_test if test_by_fold is None else test_by_fold
    s_test = conformal.spread(spread_from, weights) if regression else None
    fitted = conformal.calibrate(coverage, cal_pred, y_val, s_val)
    if regression and test_by_fold is not None:
        fitted = replace(fitted, spread_by_fold=True)
    return {
        **fitted.to_dict(),
        "calibrated_on": "cross-fitted validation predictions",
        "test": conformal.evaluate_on(fitted, test_pred, y_test, s_test),
        "curve": conformal.coverage_curve((cal_pred, y_val, s_val), (test_pred, y_test, s_test)),
    }


def _calibrate(
    estimator: Any,
    held_out: np.ndarray,
    y_held_out: np.ndarray,
    test_pred: np.ndarray,
    y_test: np.ndarray,
) -> tuple[CalibratedEnsemble, dict[str, Any]]:
    """The ensemble followed by the temperature that fits ``held_out`` best, and the scores
    before and after on those rows and on test."""
    temperature = fit_temperature(held_out, y_held_out)
    calibrated = CalibratedEnsemble(estimator, temperature)
    return calibrated, {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": "cross-fitted validation predictions",
        "val_before": calibration_scores(y_held_out, held_out),
        "val_after": calibration_scores(y_held_out, scale(held_out, temperature)),
        "test_before": calibration_scores(y_test, test_pred),
        "test_after": calibration_scores(y_test, scale(test_pred, temperature)),
    }
