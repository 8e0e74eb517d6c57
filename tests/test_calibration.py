"""Calibration: temperature scaling fitted on held-out predictions, the scores that judge it,
and the calibrated ensemble as the stage fits, reports and saves it."""

from __future__ import annotations

import numpy as np
import pytest

from ensembles import stage
from ensembles.calibration import (
    CalibratedEnsemble,
    brier_score,
    calibration_scores,
    expected_calibration_error,
    fit_temperature,
    reliability,
    scale,
)
from ensembles.stage import MemberPredictions
from models import safe_io


def calibrated_draws(n: int, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, classes))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=p) for p in proba])
    return proba, y


def test_temperature_scaling_undoes_known_over_confidence():
    proba, y = calibrated_draws(6000)
    sharp = scale(proba, 0.5)  # log-probabilities doubled: over-confident
    temperature = fit_temperature(sharp, y)
    assert temperature == pytest.approx(2.0, rel=0.1)
    fixed = scale(sharp, temperature)
    before, after = calibration_scores(y, sharp), calibration_scores(y, fixed)
    assert after["log_loss"] < before["log_loss"] - 0.05
    assert after["ece"] < 0.5 * before["ece"] and after["brier"] < before["brier"]
    np.testing.assert_array_equal(fixed.argmax(axis=1), sharp.argmax(axis=1))  # same accuracy
    np.testing.assert_allclose(fixed.sum(axis=1), 1.0)


def test_calibration_scores_known_answers():
    y = np.array([0, 1, 1, 0])
    perfect = np.eye(2)[y]
    assert brier_score(y, perfect) == 0.0 and expected_calibration_error(y, perfect) == 0.0
    coin = np.full((4, 2), 0.5)  # 50% confident, right half the time: calibrated
    assert expected_calibration_error(y, coin) == pytest.approx(0.0)
    assert brier_score(y, coin) == pytest.approx(0.5)
    wrong = np.eye(2)[1 - y] * 0.9 + 0.05  # 95% confident, always wrong
    assert expected_calibration_error(y, wrong) == pytest.approx(0.95)
    bins = reliability(y, wrong, n_bins=10)
    assert bins["count"].sum() == 4 and bins["count"][9] == 4 and bins["accuracy"][9] == 0.0


def test_fit_temperature_refuses_mismatched_input_by_shape():
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(2,\)"):
        fit_temperature(np.full((3, 2), 0.5), np.array([0, 1]))


def over_confident_members(seed: int) -> tuple[list[MemberPredictions], np.ndarray, np.ndarray]:
    """Three members that are each right more often than chance, but far too sure."""
    members, ys = [], []
    for split in (0, 1):
        proba, y = calibrated_draws(1500, classes=3, seed=seed + split)
        ys.append(y)
        members.append([scale(np.clip(proba + 0.1 * k, 0, None), 0.3) for k in range(3)])
    names = ["a", "b", "c"]
    return (
        [MemberPredictions(n, members[0][i], members[1][i], "fp") for i, n in enumerate(names)],
        ys[0],
        ys[1],
    )


@pytest.mark.parametrize("method", ["weighted", "greedy", "stacking", "mean"])
def test_the_stage_calibrates_classification_ensembles_on_held_out_rows(method, tmp_path):
    ms, y_val, y_test = over_confident_members(seed=3)
    report = stage.run(method, {}, ms, y_val, y_test, n_boot=50)
    cal = report.calibration
    assert cal is not None and cal["method"] == "temperature"
    assert cal["test_after"]["log_loss"] < cal["test_before"]["log_loss"]
    assert report.test_scores["log_loss"] == pytest.approx(cal["test_after"]["log_loss"])
    plain = stage.run(method, {}, ms, y_val, y_test, n_boot=50, calibrate=False)
    assert plain.calibration is None
    assert report.test_scores["accuracy"] == plain.test_scores["accuracy"]
    assert report.test_scores["log_loss"] < plain.test_scores["log_loss"]
    # what is exported: the calibrated ensemble, through skops, predicts the same
    assert isinstance(report.estimator, CalibratedEnsemble)
    loaded = safe_io.load(safe_io.dump(report.estimator, tmp_path / "ensemble.skops"))
    P_test = np.stack([m.test for m in ms])
    np.testing.assert_allclose(loaded.predict(P_test), report.test_pred)


def test_regression_ensembles_are_not_calibrated():
    rng = np.random.default_rng(0)
    y, yt = rng.normal(size=200), rng.normal(size=200)
    ms = [
        MemberPredictions(f"m{i}", y + rng.normal(size=200), yt + rng.normal(size=200), "fp")
        for i in range(3)
    ]
    report = stage.run("weighted", {}, ms, y, yt, n_boot=50)
    assert report.calibration is None and report.uncalibrated_test_pred is None


def test_held_out_rows_without_enough_errors_leave_the_ensemble_uncalibrated():
    """With (almost) no misclassified held-out rows the fitted temperature would sharpen
    without end and wreck the test log loss: the stage says why and keeps T = 1."""
    rng = np.random.default_rng(0)
    y, yt = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    sure = [np.eye(3)[y] * 0.8 + 0.2 / 3 for _ in range(2)]
    ms = [
        MemberPredictions(f"m{i}", p, np.eye(3)[yt] * 0.8 + 0.2 / 3, "fp")
        for i, p in enumerate(sure)
    ]
    report = stage.run("weighted", {}, ms, y, yt, n_boot=50)
    assert report.calibration["method"] == "none"
    assert "only 0 of 300 held-out rows are misclassified" in report.calibration["reason"]
    assert not isinstance(report.estimator, CalibratedEnsemble)


def test_temperature_reads_a_column_of_labels_and_refuses_logits():
    """Labels shaped (n, 1) were broadcast against every row (the search ended at its upper
    bound, T = 54.6, flattening every probability), and logits were scaled as if they were
    probabilities."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 3)) * 3
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in proba])
    t = fit_temperature(proba, y)
    assert 0.5 < t < 2.0
    assert fit_temperature(proba, y[:, None]) == t
    with pytest.raises(ValueError, match=r"must be probabilities .* apply a softmax to logits"):
        fit_temperature(logits, y)
