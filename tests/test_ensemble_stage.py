"""The ensemble stage: usable members, honest estimates, diversity, test touched only to report."""

from __future__ import annotations

import numpy as np
import pytest
from test_ensembles import informative_and_noise

from ensembles import stage
from ensembles.budget import validation_loss
from ensembles.diversity import disagreement, error_correlation, leave_one_out
from ensembles.honest import bootstrap_gain, cross_fitted
from ensembles.stage import MemberPredictions, usable_members


def members(seed: int = 0, noisy: int = 3, fp: str = "fp"):
    P, y = informative_and_noise(n=300, seed=seed, noisy=noisy)
    Pt, yt = informative_and_noise(n=300, seed=seed + 100, noisy=noisy)
    names = ["good", *[f"noise{i}" for i in range(noisy)]]
    return [MemberPredictions(n, P[i], Pt[i], fp) for i, n in enumerate(names)], y, yt


def test_members_from_another_split_bad_shapes_or_nan_are_left_out_with_a_reason():
    ms, _, _ = members()
    ms.append(MemberPredictions("other_split", ms[0].val, ms[0].test, "xyz"))
    ms.append(MemberPredictions("wrong_shape", ms[0].val[:10], ms[0].test, "fp"))
    bad = ms[1].val.copy()
    bad[3, 0] = np.nan
    ms.append(MemberPredictions("nan", bad, ms[1].test, "fp"))
    usable, dropped = usable_members(ms, "fp")
    assert [m.name for m in usable] == ["good", "noise0", "noise1", "noise2"]
    assert "split fingerprint xyz is not fp" in dropped["other_split"]
    assert "shapes" in dropped["wrong_shape"]
    assert "NaN" in dropped["nan"]
    # the split asked for is outnumbered by members of another split with other shapes
    others = [MemberPredictions(f"o{i}", ms[0].val[:50], ms[0].test[:40], "big") for i in range(9)]
    usable, dropped = usable_members(ms + others, "fp")
    assert [m.name for m in usable] == ["good", "noise0", "noise1", "noise2"]
    assert set(dropped) == {"other_split", "wrong_shape", "nan", *(o.name for o in others)}


def test_fewer_than_two_usable_members_is_a_clear_error():
    ms, y, yt = members(noisy=1)
    ms[1].val = ms[1].val * np.inf
    with pytest.raises(ValueError, match=r"need at least two usable members .* got 1 \(good\)"):
        stage.run("weighted", {}, ms, y, yt)


def test_weights_come_from_validation_only():
    ms, y, yt = members(seed=1)
    a = stage.run("weighted", {}, ms, y, yt)
    b = stage.run("weighted", {}, ms, y, np.roll(yt, 1))  # scrambled test labels
    assert a.weights == b.weights
    assert a.test_scores != b.test_scores


def test_report_names_the_best_member_and_the_gain_over_it():
    ms, y, yt = members(seed=2)
    report = stage.run("greedy", {}, ms, y, yt, n_boot=200)
    assert report.best_member == "good"
    summary = report.summary()
    assert summary["best_member"] == "good"
    gain = summary["test_gain_over_best_member"]
    assert gain["ci_low"] <= gain["estimate"] <= gain["ci_high"]
    assert summary["beats_best_member"] == (gain["estimate"] > 0)
    assert set(summary["cross_fitted"]) == {"folds", "ensemble", "best_member", "gain"}


def test_stacking_reports_its_out_of_fold_validation_score():
    ms, y, yt = members(seed=3)
    report = stage.run("stacking", {}, ms, y, yt, calibrate=False)
    assert report.val_cross_fitted
    np.testing.assert_array_equal(report.val_pred, report.estimator.oof_pred_)


def test_cross_fitted_estimate_shows_an_ensemble_that_only_overfits_validation():
    """Noise members, random labels: in-sample the weighted fit beats chance a little;
    cross-fitted, it gains nothing over picking a member."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    P = rng.dirichlet(np.ones(2), size=(8, 200))
    cf = cross_fitted("weighted", {}, P, y, "accuracy", k=5, random_state=0)
    assert cf["ensemble"]["accuracy"] < 0.6
    assert abs(cf["gain"]) < 0.15


def test_the_cross_fit_records_the_folds_it_took_not_more_than_the_rows():
    P, y = informative_and_noise(n=30, seed=3, noisy=1)
    assert cross_fitted("mean", {}, P, y, "accuracy", k=5)["folds"] == 5
    assert cross_fitted("mean", {}, P, y, "accuracy", k=1000)["folds"] == 30  # leave-one-out


def test_bootstrap_gain_is_zero_for_identical_predictions_and_positive_when_better():
    P, y = informative_and_noise(n=400, seed=5, noisy=1)
    same = bootstrap_gain(y, P[0], P[0], "accuracy", n_boot=200)
    assert same == {**same, "estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    better = bootstrap_gain(y, P[0], P[1], "accuracy", n_boot=200)
    assert better["ci_low"] > 0
    yr = np.linspace(0, 1, 300)
    reg = bootstrap_gain(yr, yr + 0.01, yr + 0.5, "rmse", n_boot=200)
    assert reg["estimate"] == pytest.approx(0.49) and reg["ci_low"] > 0


def test_diversity_identical_members_correlate_fully_and_never_disagree():
    P, y = informative_and_noise(n=200, seed=6, noisy=1)
    P2 = np.stack([P[0], P[0], P[1]])
    corr = error_correlation(P2, y)
    assert corr[0, 1] == pytest.approx(1.0) and abs(corr[0, 2]) < 0.5
    dis = disagreement(P2)
    assert dis[0, 1] == 0.0 and dis[0, 2] > 0.3
    assert disagreement(P2[:, :, 0]) is None


def test_leave_one_out_credits_the_informative_member():
    P, y = informative_and_noise(n=300, seed=7, noisy=2)
    Pt, yt = informative_and_noise(n=300, seed=107, noisy=2)
    loo = leave_one_out("weighted", {}, ["good", "n1", "n2"], P, y, Pt, yt, "accuracy")
    assert loo["good"]["val"] > 0.3 and loo["good"]["test"] > 0.3
    assert abs(loo["n1"]["test"]) < 0.05


@pytest.mark.parametrize("method", ["mean", "weighted", "greedy", "stacking"])
def test_stage_runs_on_regression_members(method):
    rng = np.random.default_rng(8)
    y, yt = rng.normal(size=300), rng.normal(size=300)
    ms = [
        MemberPredictions(f"m{s}", y + rng.normal(0, s, 300), yt + rng.normal(0, s, 300), "fp")
        for s in (0.2, 0.6, 1.0)
    ]
    report = stage.run(method, {}, ms, y, yt, n_boot=100)
    assert report.metric == "rmse"
    assert report.best_member == "m0.2"
    assert report.val_pred.shape == (300,) and report.diversity["disagreement"] is None
    assert report.test_scores["rmse"] < 1.0


@pytest.mark.parametrize("metric", ["log_loss", "mae"])
def test_bootstrap_gain_in_log_loss_and_mae_is_positive_when_the_ensemble_is_better(metric):
    rng = np.random.default_rng(0)
    if metric == "log_loss":
        y = rng.integers(0, 3, 400)
        good = np.full((400, 3), 0.1)
        good[np.arange(400), y] = 0.8
        worse = np.full((400, 3), 1 / 3)
    else:
        y = rng.normal(size=400)
        good, worse = y + 0.1 * rng.normal(size=400), y + rng.normal(size=400)
    gain = bootstrap_gain(y, good, worse, metric, n_boot=200)
    assert gain["estimate"] > 0 and gain["ci_low"] > 0
    assert bootstrap_gain(y, worse, worse, metric, n_boot=50)["estimate"] == 0.0


def test_a_chosen_metric_picks_the_best_member_and_judges_the_gain():
    ms, y, yt = members(seed=5)
    report = stage.run("weighted", {}, ms, y, yt, n_boot=100, metric="log_loss")
    assert report.metric == "log_loss" and report.summary()["test_metric"] > 0
    scores = {m.name: stage.evaluate(y, m.val)["log_loss"] for m in ms}
    assert report.best_member == min(scores, key=scores.get)
    with pytest.raises(ValueError, match=r"metric 'rmse' does not score classification"):
        stage.run("weighted", {}, ms, y, yt, n_boot=100, metric="rmse")


def test_with_many_candidates_the_diversity_report_covers_the_weighted_and_the_best():
    ms, y, yt = members(seed=2, noisy=59)  # 60 candidates: one informative, 59 noise
    report = stage.run("greedy", {"n_steps": 10}, ms, y, yt, n_boot=50)
    shown = report.diversity["names"]
    weighted = {n for n, w in report.weights.items() if w > 0}
    assert weighted <= set(shown) and "good" in shown and len(shown) <= 40
    assert set(report.diversity["leave_one_out"]) == set(shown)
    assert np.shape(report.diversity["error_correlation"]) == (len(shown), len(shown))
    assert f"covers {len(shown)} of 60 members" in report.diversity["note"]
    few = stage.run("greedy", {}, *members(seed=2, noisy=3), n_boot=50)
    assert few.diversity["note"] is None and len(few.diversity["names"]) == 4


def test_averaging_ensembles_say_so_and_stacking_does_not():
    from ensembles import METHODS

    assert [name for name, cls in METHODS.items() if cls.averages] == ["mean", "weighted", "greedy"]


def test_many_candidates_are_pruned_to_the_best_on_validation_and_said_so():
    ms, y, yt = members(seed=3, noisy=29)  # one informative member among 30
    full = stage.run("weighted", {}, ms, y, yt, n_boot=20)
    assert full.pruned is None and len(full.names) == 30
    report = stage.run("weighted", {}, ms, y, yt, n_boot=20, max_candidates=5)
    assert report.pruned["kept"] == 5 and report.pruned["of"] == 30
    assert "good" in report.names and len(report.weights) == 5
    assert report.names == [m.name for m in ms if m.name in report.names]  # member order kept
    losses = {m.name: validation_loss(m.val, y) for m in ms}
    assert max(losses[n] for n in report.names) < min(
        losses[n] for n in losses if n not in report.names
    )
    assert report.summary()["pruned"]["of"] == 30
    assert report.test_scores["log_loss"] <= full.test_scores["log_loss"] + 0.05
    with pytest.raises(ValueError, match="max_candidates must be an integer >= 2 or None, got 1"):
        stage.run("weighted", {}, ms, y, yt, max_candidates=1)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_library_lets_go_of_members_as_they_arrive_and_prunes_to_the_same_candidates(task):
    rng = np.random.default_rng(7)
    n, keep = 120, 5
    if task == "classification":
        y = rng.integers(0, 3, n)
        metric = "accuracy"

        def pred(noise: float) -> np.ndarray:
            logits = np.eye(3)[y] + rng.normal(0, noise, (n, 3))
            return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    else:
        y = rng.normal(0, 1, n)
        metric = "rmse"

        def pred(noise: float) -> np.ndarray:
            return y + rng.normal(0, noise, n)

    ms = [
        MemberPredictions(f"m{i}", pred(s), pred(s), "fp")
        for i, s in enumerate(rng.uniform(0.5, 3, 40))
    ]
    ms.append(MemberPredictions("twin", ms[3].val.copy(), ms[3].test.copy(), "fp"))  # a tie
    if task == "classification":  # right on every row but five certain mistakes
        sharp = np.eye(3)[np.where(np.arange(n) < 5, (y + 1) % 3, y)]
        ms.append(MemberPredictions("sharp", sharp, sharp, "fp"))
    broken = ms[0].val.copy()
    broken[0] = np.nan
    ms.append(MemberPredictions("broken", broken, ms[0].test, "fp"))  # the stage says why it goes
    full, full_note = stage.prune_candidates(usable_members(ms)[0], y, metric, keep)
    for order in (rng.permutation(len(ms)) for _ in range(5)):
        library = stage.CandidateLibrary(y, metric, keep)
        gone = set()
        for i in order:
            gone.update(library.add(ms[i].name, ms[i].val, ms[i].test, ms[i].fingerprint))
        assert "broken" not in gone and library.set_aside == len(gone) > 20
        left = [m for m in ms if m.name not in gone]  # in member order, as the stage gets them
        usable, dropped = usable_members(left)
        assert list(dropped) == ["broken"]
        kept, note = stage.prune_candidates(usable, y, metric, keep, set_aside=len(gone))
        assert [m.name for m in kept] == [m.name for m in full] and note == full_note
    assert task == "regression" or "sharp" in [m.name for m in full]  # kept by accuracy
    with pytest.raises(ValueError, match="needs a number of candidates to keep, got None"):
        stage.CandidateLibrary(y, metric, None)


def test_pruning_keeps_the_best_member_by_the_headline_metric():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)

    def soft(right_share: float, p_true: float) -> np.ndarray:
        right = rng.random(len(y)) < right_share
        label = np.where(right, y, (y + 1) % 3)
        return np.where(np.eye(3, dtype=bool)[label], p_true, (1 - p_true) / 2)

    sharp = np.where(np.eye(3, dtype=bool)[y], 0.99, 0.005)
    wrong = np.eye(3, dtype=bool)[(y[:5] + 1) % 3]
    sharp[:5] = np.where(wrong, 1.0, 0.0)  # five certain mistakes: the worst log loss
    ms = [MemberPredictions(f"soft{i}", soft(0.8, 0.6), soft(0.8, 0.6)) for i in range(3)]
    ms.append(MemberPredictions("sharp", sharp, sharp))
    report = stage.run("mean", {}, ms, y, y, n_boot=20, max_candidates=2)
    losses = {m.name: validation_loss(m.val, y) for m in ms}
    assert max(losses, key=losses.get) == "sharp"  # pruned by loss, kept by accuracy
    assert "sharp" in report.names and report.pruned["kept"] == 3
    assert report.best_member == "sharp"


def test_with_more_weighted_members_than_shown_the_report_still_covers_the_best():
    """85 members with equal weight: the report covered the first 40 in member order, none
    of the 10 best, and said it covered the 10 best."""
    from ensembles.diversity import report_members

    keep, note = report_members(np.full(85, 1 / 85), np.linspace(0.5, 0.99, 85), "accuracy")
    assert len(keep) == 40 and set(range(75, 85)) <= set(keep.tolist())
    assert note.startswith(
        "covers 40 of 85 members: the 10 best by validation accuracy and 30 more"
    )
    # unequal weights: the heaviest are kept, the lightest left out
    weights = np.r_[np.linspace(0.02, 0.001, 60), np.zeros(25)]
    keep, _ = report_members(weights / weights.sum(), np.zeros(85), "log_loss")
    assert set(range(30)) <= set(keep.tolist()) and 59 not in keep
