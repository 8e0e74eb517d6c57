"""The driver lets go of the predictions of members outside the ensemble's candidates."""

from __future__ import annotations

import numpy as np

from ensembles.metrics import evaluate
from runner.candidates import HeldPredictions
from runner.runtree import MemberRecord


def test_members_outside_the_candidates_keep_their_scores_and_drop_their_predictions():
    rng = np.random.default_rng(0)
    y_val, y_test = rng.normal(size=50), rng.normal(size=30)
    records: dict[str, MemberRecord] = {}
    held = HeldPredictions(records, y_val, y_test, "rmse", keep=3)
    expected = {}
    for i, noise in enumerate([0.1, 2.0, 0.2, 3.0, 0.3, 4.0, 0.4]):
        val = (y_val + rng.normal(0, noise, 50)).astype(np.float32)
        test = (y_test + rng.normal(0, noise, 30)).astype(np.float32)
        records[f"m{i}"] = MemberRecord(f"m{i}", "ridge", f"run{i}", "FINISHED", val=val, test=test)
        expected[f"m{i}"] = (evaluate(y_val, val), evaluate(y_test, test))
        held.add(records[f"m{i}"])
    records["failed"] = MemberRecord("failed", "ridge", "run9", "FAILED")
    held.add(records["failed"])
    let_go = sorted(n for n, r in records.items() if r.scores is not None)
    assert let_go == ["m1", "m3", "m5", "m6"] and held.library.set_aside == 4  # all but the best 3
    for name, r in records.items():
        if name in let_go:
            assert r.val is None and r.test is None and r.scores == expected[name]
        elif name != "failed":
            assert r.val is not None and r.scores is None


def test_the_driver_holds_predictions_as_the_trial_scored_them():
    """A bag's averaged kNN probabilities held as float32 tied two classes the trial told
    apart: the leaderboard's test accuracy (0.9750) differed from the member run's (0.9778)."""
    from runner.runtree import _held

    proba = np.array([[0.4, 0.4 + 1e-9, 0.2 - 1e-9], [0.5, 0.25, 0.25]])
    held = _held(proba)
    assert (held.argmax(axis=1) == proba.argmax(axis=1)).all()
    np.testing.assert_array_equal(held, proba)
