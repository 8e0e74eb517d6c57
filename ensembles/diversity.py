"""How members differ: pairwise error correlation and disagreement, and what each member
adds to the ensemble (leave-one-out).

Pairwise tables grow with the square of the members and leave-one-out refits the ensemble
once per member, so with many candidates (a search of hundreds of trials) the report covers
the members that matter: those with weight in the ensemble and the best few on validation
(``report_members``), and says so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensembles import make
from ensembles.metrics import evaluate, greater_is_better


def residuals(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(members, n) errors: 1 - p(true class) for classes, prediction - y for values."""
    if P.ndim == 3:
        return 1.0 - P[:, np.arange(P.shape[1]), y]
    return P - y


def error_correlation(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of the members' errors; low values mean complementary members."""
    r = residuals(P, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(r) if len(r) > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    return corr


def disagreement(P: np.ndarray) -> np.ndarray | None:
    """Share of rows where two members predict different classes (None for regression)."""
    if P.ndim != 3:
        return None
    labels = P.argmax(axis=2)
    return (labels[:, None, :] != labels[None, :, :]).mean(axis=2)


def leave_one_out(
    method: str,
    params: Mapping[str, Any],
    names: Sequence[str],
    P_val: np.ndarray,
    y_val: np.ndarray,
    P_test: np.ndarray,
    y_test: np.ndarray,
    metric: str,
    random_state: int | None = 0,
    only: Sequence[int] | None = None,
) -> dict[str, dict[str, float]]:
    """Per member (of ``only``, default all): how much the ensemble's score drops (val, test)
    when it is refitted without that member. Positive = the member helps."""
    sign = 1.0 if greater_is_better(metric) else -1.0

    def scores(est: Any, left_out: int | None = None) -> tuple[float, float]:
        out = []
        for P, y in ((P_val, y_val), (P_test, y_test)):
            if getattr(est, "averages", False):  # a weighted average: only members with weight
                w = est.weights_ if left_out is None else np.insert(est.weights_, left_out, 0.0)
                used = np.flatnonzero(w)
                pred = np.tensordot(w[used], P[used], axes=1)
            elif left_out is None:
                pred = est.predict(P)
            else:
                pred = est.predict(np.delete(P, left_out, axis=0))
            out.append(evaluate(y, pred)[metric])
        return out[0], out[1]

    everyone = np.arange(len(names))
    full = make(method, **{"random_state": random_state, **params}).fit(P_val, y_val)
    full_val, full_test = scores(full)
    out = {}
    for i in everyone if only is None else only:
        val, test = scores(full.refit_without(int(i), P_val, y_val), int(i))
        out[names[i]] = {"val": sign * (full_val - val), "test": sign * (full_test - test)}
    return out


TOP_BY_SCORE = 10  # the best members on validation always shown in the diversity report
MOST_SHOWN = 40  # at most this many members in it: a weighted one outranks any other


def report_members(
    weights: np.ndarray, val_scores: Sequence[float], metric: str
) -> tuple[np.ndarray, str | None]:
    """Indices of the members the diversity report covers (the ``TOP_BY_SCORE`` best on
    validation, then those with weight, heaviest first and, among equal weights, best on
    validation, at most ``MOST_SHOWN`` in all, in member order) and a note saying which when
    that is not all of them."""
    m = len(weights)
    if m <= MOST_SHOWN:
        return np.arange(m), None
    scores = np.asarray(val_scores, dtype=np.float64)
    by_score = np.argsort(-scores if greater_is_better(metric) else scores, kind="stable")
    rank = np.empty(m, dtype=np.int64)
    rank[by_score] = np.arange(m)  # 0: the best on validation
    w = np.asarray(weights, dtype=np.float64)
    weighted = [int(i) for i in np.lexsort((rank, -w)) if w[i] > 0]
    best = [int(i) for i in by_score[:TOP_BY_SCORE]]
    chosen = list(dict.fromkeys([*best, *weighted]))[:MOST_SHOWN]
    keep = np.sort(np.array(chosen))
    note = (
        f"covers {len(keep)} of {m} members: the {len(best)} best by validation {metric} and "
        f"{len(chosen) - len(best)} more of the {len(weighted)} with weight in the ensemble "
        f"(the heaviest; at most {MOST_SHOWN} in all); leave-one-out refits the ensemble on "
        "all members but the one left out"
    )
    return keep, note


def diversity_report(
    method: str,
    params: Mapping[str, Any],
    names: Sequence[str],
    P_val: np.ndarray,
    y_val: np.ndarray,
    P_test: np.ndarray,
    y_test: np.ndarray,
    metric: str,
    weights: np.ndarray,
    random_state: int | None = 0,
) -> dict[str, Any]:
    """Error correlation, disagreement and leave-one-out contributions of the members
    ``report_members`` picks."""
    val_scores = [evaluate(y_val, p)[metric] for p in P_val]
    keep, note = report_members(weights, val_scores, metric)
    shown = P_val[keep]
    return {
        "names": [names[i] for i in keep],
        "note": note,
        "error_correlation": error_correlation(shown, y_val).round(4).tolist(),
        "disagreement": None if (d := disagreement(shown)) is None else d.round(4).tolist(),
        "leave_one_out": leave_one_out(
            method, params, names, P_val, y_val, P_test, y_test, metric, random_state, keep
        ),
    }
