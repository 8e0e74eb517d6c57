"""Ensemble methods on constructed predictions whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

import ensembles
from ensembles import (
    METHODS,
    GreedyEnsemble,
    MeanEnsemble,
    StackingEnsemble,
    WeightedEnsemble,
    make,
)
from ensembles.metrics import evaluate


def informative_and_noise(n: int = 400, classes: int = 4, noisy: int = 3, seed: int = 0):
    """One member that knows the labels (with some confusion) among members of pure noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    good = np.full((n, classes), 0.3 / (classes - 1))
    good[np.arange(n), y] = 0.7
    noise = rng.dirichlet(np.ones(classes), size=(noisy, n))
    return np.concatenate([good[None], noise]), y


def test_registry_lists_methods_and_unknown_names_fail_with_the_list():
    assert {"mean", "weighted", "greedy", "stacking"} <= set(METHODS)
    with pytest.raises(ValueError, match=r"unknown ensemble method 'nope'.*mean.*weighted"):
        make("nope")
    with pytest.raises(ValueError, match=r"'steps' for method 'greedy'; its parameters: n_init"):
        make("greedy", steps=3)


@pytest.mark.parametrize("method", [m for m in sorted(METHODS) if m != "mean"])
def test_informative_member_gets_most_weight_among_noisy_copies(method):
    P, y = informative_and_noise()
    w = make(method).fit(P, y).weights_
    assert w[0] > 0.9 if method != "stacking" else w[0] == w.max()


@pytest.mark.parametrize("method", ["mean", "weighted", "greedy"])
def test_weights_are_convex(method):
    P, y = informative_and_noise(seed=3)
    w = make(method).fit(P, y).weights_
    assert w.shape == (P.shape[0],)
    assert np.all(w >= 0)
    assert w.sum() == pytest.approx(1.0)


def test_weighted_beats_or_ties_mean_on_validation_log_loss():
    P, y = informative_and_noise(seed=1)
    weighted = evaluate(y, WeightedEnsemble().fit(P, y).predict(P))["log_loss"]
    mean = evaluate(y, MeanEnsemble().fit(P, y).predict(P))["log_loss"]
    assert weighted < mean


def test_weighted_regression_prefers_the_accurate_member():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    P = np.stack([y + rng.normal(0, s, 500) for s in (0.1, 1.0, 1.0)])
    w = WeightedEnsemble().fit(P, y).weights_
    assert w[0] > 0.9
    assert WeightedEnsemble().fit(P, y).predict(P).shape == (500,)


def test_l2_pulls_weights_towards_uniform():
    P, y = informative_and_noise(seed=2)
    free = WeightedEnsemble(l2=0.0).fit(P, y).weights_
    pulled = WeightedEnsemble(l2=10.0).fit(P, y).weights_
    uniform = np.full(len(free), 1 / len(free))
    assert np.abs(pulled - uniform).sum() < np.abs(free - uniform).sum()


def test_l2_pulls_as_hard_on_strong_members_as_on_weak_ones():
    """The pull is in units of the best member's loss: members that explain 99% of a target
    get the weights their errors ask for, not near-uniform ones because the penalty outweighs
    their whole loss (the default ensemble was 50% worse than its best member that way)."""
    rng = np.random.default_rng(3)
    y = rng.normal(size=2000)
    P = np.stack([y + rng.normal(scale=s, size=y.size) for s in (0.08, 0.12, 0.4)])
    free = WeightedEnsemble(l2=0.0).fit(P, y).weights_
    pulled = WeightedEnsemble(l2=0.1).fit(P, y).weights_
    assert pulled[2] < 0.1  # the poor member, whose error is 25 times the best one's
    assert np.abs(pulled - free).sum() < 0.2
    rmse = np.sqrt(np.mean((pulled @ P - y) ** 2))
    assert rmse < 1.05 * np.sqrt(np.mean((free @ P - y) ** 2))


def test_fit_is_deterministic():
    P, y = informative_and_noise(seed=4)
    a = WeightedEnsemble(random_state=0).fit(P, y).weights_
    b = WeightedEnsemble(random_state=0).fit(P, y).weights_
    np.testing.assert_array_equal(a, b)


def test_identical_members_share_weight_and_keep_predictions():
    P, y = informative_and_noise(noisy=0)
    P2 = np.concatenate([P, P])
    ens = WeightedEnsemble().fit(P2, y)
    np.testing.assert_allclose(ens.predict(P2), P[0], atol=1e-9)


@pytest.mark.parametrize(
    "P, y, message",
    [
        (np.zeros(5), np.zeros(5, dtype=int), r"shaped \(members, rows\)"),
        (np.full((2, 3, 2), np.nan), np.zeros(3, dtype=int), r"members \[0, 1\].*NaN"),
        (np.full((2, 3, 2), 0.5), np.zeros(4, dtype=int), r"y must be shaped \(3,\)"),
        (np.full((2, 3, 2), 0.5), np.array([0, 1, 2]), r"labels must be integers in \[0, 2\)"),
        (np.ones((2, 3)), np.array([1.0, np.nan, 2.0]), r"finite numbers, got float64 with 1 bad"),
        (
            np.full((2, 3, 2), 0.5),
            np.array(["a", "b", "a"]),
            r"integer class ids in \[0, 2\), got <U1 values such as 'a'",
        ),
        (  # logits, not probabilities
            np.array([[[2.0, -1.0]] * 3] * 2),
            np.array([0, 1, 0]),
            r"must be probabilities .* member 0's row 0 sums to 1, smallest value -1",
        ),
        (np.full((2, 3, 2), 0.3), np.array([0, 1, 0]), r"member 0's row 0 sums to 0.6"),
    ],
)
@pytest.mark.parametrize("method", ["weighted", "greedy", "stacking", "mean"])
def test_bad_predictions_fail_with_a_clear_message(P, y, message, method):
    with pytest.raises(ValueError, match=message):
        make(method).fit(P, y)


def test_regression_predictions_in_a_column_are_taken_as_values():
    """(members, rows, 1), as stacked Keras regressors predict, is a regression; it was
    refused as 'classification labels must be integers'."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=200) * 100 + 500
    P = np.stack([y + rng.normal(size=200) * s for s in (5.0, 50.0)])
    for method in ("weighted", "greedy", "stacking", "mean"):
        ens = make(method).fit(P[:, :, None], y[:, None])
        np.testing.assert_allclose(ens.predict(P[:, :, None]), ens.predict(P))


def test_predict_before_fit_and_member_count_mismatch_fail():
    P, y = informative_and_noise()
    with pytest.raises(RuntimeError, match="not fitted"):
        WeightedEnsemble().predict(P)
    ens = WeightedEnsemble().fit(P, y)
    with pytest.raises(ValueError, match="fitted on 4 members, got predictions of 2"):
        ens.predict(P[:2])


@pytest.mark.parametrize("method", ["mean", "weighted", "greedy", "stacking"])
def test_predicting_another_tasks_predictions_than_fitted_is_said(method):
    """Fitted on 4-class probabilities, the averaging methods returned 2-class rows for
    2-class input, and values for regression input; stacking failed deep in NumPy."""
    P, y = informative_and_noise()
    ens = make(method).fit(P, y)
    two = P[:, :, :2] / P[:, :, :2].sum(axis=2, keepdims=True)
    with pytest.raises(ValueError, match=r"fitted on 4-class probabilities, got .* 2-class"):
        ens.predict(two)
    with pytest.raises(ValueError, match=r"4-class probabilities, got .* regression values"):
        ens.predict(P[:, :, 0])
    values = make(method).fit(P[:, :, 0], P[0, :, 0] * 10)
    with pytest.raises(ValueError, match=r"fitted on regression values, got .* 4-class"):
        values.predict(P)


def _many_members(m: int, n: int = 300, classes: int = 4, seed: int = 0):
    """``m`` correlated members: a few informative bases, each member a noisy copy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    bases = rng.dirichlet(np.ones(classes), size=(5, n))
    bases[:, np.arange(n), y] += rng.uniform(0.2, 2.0, size=(5, 1))
    P = bases[np.arange(m) % 5] * np.exp(rng.normal(0, 0.4, (m, n, classes)))
    return P / P.sum(axis=2, keepdims=True), y


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_working_set_reaches_the_optimum_of_one_large_problem(l2, monkeypatch):
    from ensembles.metrics import evaluate

    P, y = _many_members(120)
    small = WeightedEnsemble(l2=l2).fit(P, y)
    monkeypatch.setattr(WeightedEnsemble, "WORKING_SET", 10**6)
    large = WeightedEnsemble(l2=l2).fit(P, y)

    def objective(w):
        return evaluate(y, np.tensordot(w, P, axes=1))["log_loss"] + l2 * np.sum((w - 1 / 120) ** 2)

    assert not small.capped_
    assert objective(small.weights_) == pytest.approx(objective(large.weights_), abs=1e-6)
    assert objective(small.weights_) < objective(np.full(120, 1 / 120)) - 1e-3


def test_working_set_gives_weight_to_at_most_max_members():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 200)
    P = y + rng.normal(0, 1.0, (80, 200))  # independent errors: the optimum uses them all
    ens = WeightedEnsemble(max_members=20).fit(P, y)
    assert ens.capped_ and (ens.weights_ > 0).sum() == 20
    assert ens.weights_.sum() == pytest.approx(1.0)
    few = WeightedEnsemble(max_members=2).fit(P[:6], y)  # fewer than the working set too
    assert few.capped_ and (few.weights_ > 0).sum() == 2
    with pytest.raises(ValueError, match="max_members must be an integer >= 2, got 1"):
        WeightedEnsemble(max_members=1).fit(P, y)


def test_params_follow_the_sklearn_contract():
    from sklearn.base import clone

    ens = WeightedEnsemble(l2=0.5, random_state=3)
    assert ens.get_params() == {"l2": 0.5, "maxiter": 500, "max_members": 100, "random_state": 3}
    twin = clone(ens)
    assert twin.get_params() == ens.get_params() and not hasattr(twin, "weights_")


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_every_method_fits_and_predicts_in_the_members_format(method, kind):
    rng = np.random.default_rng(7)
    if kind == "classification":
        P, y = informative_and_noise(n=200, classes=3, noisy=2, seed=7)
    else:
        y = rng.normal(size=200)
        P = np.stack([y + rng.normal(0, s, 200) for s in (0.2, 0.5, 1.0)])
    ens = make(method, random_state=0).fit(P, y)
    out = ens.predict(P)
    assert out.shape == P.shape[1:]
    assert ens.weights_.shape == (3,) and np.isfinite(out).all()


def test_greedy_is_deterministic_and_keeps_its_best_step():
    P, y = informative_and_noise(seed=8, noisy=6)
    a, b = GreedyEnsemble(n_steps=30).fit(P, y), GreedyEnsemble(n_steps=30).fit(P, y)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert a.best_loss_ == pytest.approx(a.loss_history_.min())
    assert a.counts_.sum() <= 30


def test_greedy_ties_go_to_members_already_chosen():
    P, y = informative_and_noise(noisy=0)
    P3 = np.concatenate([P, P, P])  # three identical members: every step is a three-way tie
    ens = GreedyEnsemble(n_steps=5).fit(P3, y)
    np.testing.assert_array_equal(ens.weights_, [1.0, 0.0, 0.0])


def test_greedy_n_init_starts_from_the_best_members():
    P, y = informative_and_noise(seed=9, noisy=3)
    ens = GreedyEnsemble(n_steps=1, n_init=2).fit(P, y)
    assert ens.counts_[0] >= 1


def test_greedy_beats_or_ties_the_best_single_member_on_its_own_loss():
    P, y = informative_and_noise(seed=10, noisy=4)
    ens = GreedyEnsemble().fit(P, y)
    singles = [evaluate(y, p)["log_loss"] for p in P]
    assert evaluate(y, ens.predict(P))["log_loss"] <= min(singles) + 1e-12


def test_stacking_does_not_leak_its_validation_score():
    """Noise members and random labels: the in-sample meta fit looks better than chance,
    the cross-fitted (out-of-fold) score the stage reports does not."""
    rng = np.random.default_rng(11)
    n, classes = 240, 3
    y = rng.integers(0, classes, n)
    P = rng.dirichlet(np.ones(classes), size=(12, n))
    ens = StackingEnsemble(C=100.0, random_state=0).fit(P, y)
    in_sample = evaluate(y, ens.predict(P))["accuracy"]
    out_of_fold = evaluate(y, ens.oof_pred_)["accuracy"]
    assert in_sample > 0.45
    assert out_of_fold < 0.42
    assert out_of_fold < in_sample


def test_stacking_learns_from_an_informative_member():
    P, y = informative_and_noise(n=300, seed=12)
    ens = StackingEnsemble(random_state=0).fit(P, y)
    assert evaluate(y, ens.oof_pred_)["accuracy"] > 0.95
    assert ens.oof_pred_.shape == (300, 4)


@pytest.mark.parametrize(
    "method, params, message",
    [
        ("weighted", {"l2": -1}, "l2 must be a number >= 0, got -1"),
        ("weighted", {"l2": float("nan")}, "l2 must be a number >= 0, got nan"),
        ("weighted", {"maxiter": 0}, "maxiter must be an integer >= 1, got 0"),
        ("weighted", {"maxiter": 2.5}, "maxiter must be an integer >= 1, got 2.5"),
        ("greedy", {"n_steps": 0}, "n_steps must be an integer >= 1, got 0"),
        ("stacking", {"cv": 1}, "cv must be an integer >= 2, got 1"),
        ("stacking", {"C": 0}, "C must be a number > 0, got 0"),
    ],
)
def test_bad_method_params_are_named(method, params, message):
    with pytest.raises(ValueError, match=message):
        make(method, **params).check_params()


def test_ensembles_package_stays_free_of_ray_mlflow_hydra():
    import subprocess
    import sys

    code = (
        "import sys, ensembles, ensembles.stage; "
        "bad = [m for m in ('ray', 'mlflow', 'hydra', 'keras', 'tensorflow') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ensembles.__doc__


def good_and_poor(n: int = 5000, good: int = 4, seed: int = 0):
    """A regression target with mean 3 and spread 2.8 (prices in thousands), ``good`` members
    with independent errors of spread 1 and a last, poor member with errors of spread 10."""
    rng = np.random.default_rng(seed)
    y = rng.normal(3.0, 2.8, n)
    P = np.stack([y + rng.normal(0, s, n) for s in [1.0] * good + [10.0]])
    return P, y


SCALES = (1e-6, 1e-3, 1.0, 1e3, 1e6)


@pytest.mark.parametrize(
    "method, params",
    [*((m, {}) for m in sorted(METHODS)), ("weighted", {"l2": 0.5}), ("stacking", {"alpha": 50})],
    ids=lambda v: (
        v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()) or "defaults"
    ),
)
def test_weights_do_not_depend_on_the_units_of_a_regression_target(method, params):
    P, y = good_and_poor()
    fits = {s: make(method, random_state=0, **params).fit(P * s, y * s) for s in SCALES}
    unit = fits[1.0]
    for s, ens in fits.items():
        np.testing.assert_allclose(ens.weights_, unit.weights_, atol=1e-3, err_msg=f"x{s:g}")
        np.testing.assert_allclose(ens.predict(P * s) / s, unit.predict(P), atol=1e-6)
        if method == "greedy":
            assert ens.best_loss_ == pytest.approx(unit.best_loss_ * s**2, rel=1e-6)
    if method != "mean" and not params:  # mean is uniform by definition; l2 pulls to uniform
        # weighted, greedy: convex weights; stacking: the poor member's share of |coef|
        assert unit.weights_[-1] < 0.05


def test_stacking_out_of_fold_predictions_are_in_the_targets_units():
    P, y = good_and_poor(n=1000)
    small = StackingEnsemble(random_state=0).fit(P, y)
    big = StackingEnsemble(random_state=0).fit(P * 1e3, y * 1e3)
    np.testing.assert_allclose(big.oof_pred_ / 1e3, small.oof_pred_, atol=1e-6)


def test_weighted_that_does_not_converge_fails_loudly_instead_of_returning_uniform():
    P, y = good_and_poor(n=1000)
    message = r"weighted ensemble: SLSQP did not converge \(Iteration limit reached, .*maxiter"
    with pytest.raises(ensembles.methods.ConvergenceError, match=message):
        WeightedEnsemble(maxiter=1).fit(P * 1e3, y * 1e3)
    with pytest.raises(ValueError, match="did not converge"):  # classes too; a ValueError
        WeightedEnsemble(maxiter=1).fit(*informative_and_noise())


@pytest.mark.parametrize("m", [20, 120])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_refit_without_a_member_reaches_the_optimum_of_a_fresh_fit(m, l2):
    P, y = _many_members(m)
    full = WeightedEnsemble(l2=l2).fit(P, y)

    def objective(w):
        loss = evaluate(y, np.tensordot(w, rest, axes=1))["log_loss"]
        best = min(evaluate(y, member)["log_loss"] for member in rest)
        return loss + l2 * best * np.sum((w - 1 / (m - 1)) ** 2)

    for i in np.flatnonzero(full.weights_)[:3]:
        rest = np.delete(P, i, axis=0)
        warm = full.refit_without(int(i), P, y)
        fresh = WeightedEnsemble(l2=l2).fit(rest, y)
        assert len(warm.weights_) == m - 1 and warm.weights_.sum() == pytest.approx(1.0)
        assert objective(warm.weights_) == pytest.approx(objective(fresh.weights_), abs=1e-6)
        assert not hasattr(warm, "_warm")


@pytest.mark.parametrize("method", ["weighted", "greedy", "stacking"])
def test_leave_one_out_equals_refitting_from_scratch_without_each_member(method):
    from ensembles.diversity import leave_one_out

    P, y = _many_members(12, n=240)
    Pv, yv, Pt, yt = P[:, :160], y[:160], P[:, 160:], y[160:]
    params = {"l2": 0.1} if method == "weighted" else {}
    names = [f"m{i}" for i in range(12)]
    loo = leave_one_out(method, params, names, Pv, yv, Pt, yt, "log_loss", 0, [0, 3, 7])
    full = ensembles.make(method, random_state=0, **params).fit(Pv, yv)
    for i in (0, 3, 7):
        est = ensembles.make(method, random_state=0, **params).fit(np.delete(Pv, i, 0), yv)
        for key, Q, t in (("val", Pv, yv), ("test", Pt, yt)):
            drop = evaluate(t, est.predict(np.delete(Q, i, 0)))["log_loss"]
            expected = drop - evaluate(t, full.predict(Q))["log_loss"]  # lower is better
            assert loo[f"m{i}"][key] == pytest.approx(expected, abs=1e-6)


def test_metrics_and_the_stage_refuse_targets_of_another_shape():
    """An (n, 1) target against (n,) predictions broadcast to (n, n): RMSE 1.42 for 0.30."""
    from ensembles.stage import MemberPredictions, run

    rng = np.random.default_rng(1)
    y = rng.normal(size=100)
    pred = y + rng.normal(size=100) * 0.3
    assert evaluate(y[:, None], pred) == evaluate(y, pred)  # a column of targets: its values
    with pytest.raises(ValueError, match=r"\(100,\) to match \(100,\) predictions, got \(50"):
        evaluate(y[:50], pred)
    members = [MemberPredictions(f"m{i}", pred[:60], pred[60:]) for i in range(2)]
    with pytest.raises(ValueError, match=r"^test rows: y must be shaped \(40,\)"):
        run("mean", {}, members, y[:60], y[60:99], n_boot=10)
    labels = np.array(["a", "b"])[(y > 0).astype(int)]
    proba = np.stack([1 / (1 + np.exp(-pred)), 1 - 1 / (1 + np.exp(-pred))], axis=1)[:, ::-1]
    members = [MemberPredictions(f"m{i}", proba[:60], proba[60:]) for i in range(2)]
    with pytest.raises(ValueError, match=r"^test rows: classification labels must be integer"):
        run("mean", {}, members, (y[:60] > 0).astype(int), labels[60:], n_boot=10)


def test_the_best_member_of_a_tie_on_accuracy_is_the_one_with_the_better_log_loss():
    """The sweep and `python -m ensembles` list members in other orders: a tie went to the
    first listed, so the two named different baselines for the same ensemble."""
    from ensembles.honest import best_member

    y = np.array([0, 1, 1, 0])
    sure = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.8, 0.2]])
    unsure = np.array([[0.6, 0.4], [0.4, 0.6], [0.45, 0.55], [0.55, 0.45]])
    for order in ([unsure, sure], [sure, unsure]):
        assert np.array_equal(np.stack(order)[best_member(np.stack(order), y, "accuracy")], sure)
    assert best_member(np.stack([unsure, unsure]), y, "accuracy") == 0  # a true tie: the first


def test_stacking_gives_a_class_a_fold_never_fitted_the_members_probability_not_zero():
    """A class of one validation row is missing from the fitting rows of the fold that holds
    it out: its out-of-fold probability was 0 there, a log loss of -log(EPS) on that row that
    made the stacking look worse than its members and pulled the temperature fitted on it."""
    rng = np.random.default_rng(0)
    y = rng.choice(3, 600)
    y[7] = 3
    P = np.stack(
        [0.3 * rng.dirichlet(np.ones(4), 600) + 0.63 * np.eye(4)[y] + 0.0175 for _ in range(2)]
    )
    P /= P.sum(axis=2, keepdims=True)
    oof = ensembles.make("stacking", random_state=0).fit(P, y).oof_pred_
    assert oof[7, 3] == pytest.approx(P[:, 7, 3].mean(), rel=1e-6)
    assert np.allclose(oof.sum(axis=1), 1.0)
    assert evaluate(y, oof)["log_loss"] < min(evaluate(y, p)["log_loss"] for p in P)


def test_cross_fit_folds_spread_a_class_rarer_than_the_folds():
    """Three rows of a class and five folds: stratified, each fold holds out at most one of
    them (unstratified folds held two out together in some seeds, leaving one to fit on)."""
    from ensembles.folds import cross_fit_folds

    y = np.array([0] * 60 + [1] * 57 + [2] * 3)
    for seed in range(10):
        folds = list(cross_fit_folds(y, True, 5, seed))
        assert len(folds) == 5
        assert sorted(np.concatenate([held for _, held in folds]).tolist()) == list(range(120))
        assert max(int((y[held] == 2).sum()) for _, held in folds) == 1


def test_stacking_fits_a_binary_task_whose_rare_class_some_fold_lacks():
    """One validation row of the rare class: the fold holding it out had one class to fit,
    and scikit-learn refused ("needs samples of at least 2 classes"), in the stacking's own
    folds and in the honest cross-fit's; a meta-learner saved before the feature floor keeps
    reading its features as it was fitted."""
    from ensembles.honest import cross_fitted_predictions

    rng = np.random.default_rng(0)
    y = np.zeros(40, dtype=np.int64)
    y[5] = 1
    P = rng.dirichlet(np.ones(2), size=(3, 40))
    oof = ensembles.make("stacking", random_state=0).fit(P, y).oof_pred_
    assert oof[5] == pytest.approx(P[:, 5].mean(axis=0))
    ens, _ = cross_fitted_predictions("stacking", {}, P, y, "log_loss", 5, 0)
    assert np.allclose(ens.sum(axis=1), 1.0) and ens[5, 1] > 0
    fitted = ensembles.make("stacking", random_state=0).fit(P, y)
    del fitted.feature_floor_  # as an estimator saved before it existed
    assert fitted._features(np.zeros((3, 1, 2))).min() == pytest.approx(np.log(1e-15))


def test_text_labels_in_an_object_array_are_refused_in_one_line():
    """pandas gives text labels as object arrays: their check crashed on str.item()."""
    from ensembles import make

    P = np.full((2, 4, 2), 0.5)
    labels = np.array(["no", "yes", "no", "yes"], dtype=object)
    with pytest.raises(ValueError, match=r"integer class ids in \[0, 2\), got object .* 'no'"):
        make("weighted").fit(P, labels)


def test_the_honest_estimates_check_their_arrays_and_settings_in_one_line():
    from ensembles.honest import bootstrap_gain, cross_fitted, cross_fitted_loss

    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    P = np.stack([y + rng.normal(size=50), y + rng.normal(size=50)])
    column = bootstrap_gain(y, P[0][:, None].tolist(), P[1][:, None], "rmse", n_boot=20)
    assert column == bootstrap_gain(y, P[0], P[1], "rmse", n_boot=20)  # (n, 1) and lists
    assert column == bootstrap_gain(y, P[0], P[1][:, None], "rmse", n_boot=20)  # mixed
    assert cross_fitted_loss("mean", {}, P[:, :, None], y) == cross_fitted_loss("mean", {}, P, y)
    assert cross_fitted("mean", {}, P.tolist(), y, "rmse")["folds"] == 5
    for kwargs, message in (
        (
            {"n_boot": 0},
            r"n_boot must be a whole number >= 10 \(fewer resamples .*\), got 0",
        ),
        ({"n_boot": 1}, r"n_boot must be a whole number >= 10 .*, got 1"),
        ({"level": 95}, r"level must be in \(0, 1\), got 95"),
        ({"metric": "accuracy"}, r"metric 'accuracy' does not score regression"),
    ):
        with pytest.raises(ValueError, match=message):
            bootstrap_gain(y, P[0], P[1], **{"metric": "rmse", **kwargs})
    with pytest.raises(ValueError, match=r"metric 'accuracy' does not score regression"):
        cross_fitted("mean", {}, P, y, "accuracy")


def test_members_predicting_different_rows_are_named_in_one_line():
    from ensembles import make

    with pytest.raises(
        ValueError, match=r"same shape \(rows\[, classes\]\), got member 0 \(4,\), member 1 \(3,\)"
    ):
        make("mean").fit([np.zeros(4), np.zeros(3)], np.zeros(4))
    fitted = make("mean").fit([np.zeros(4), np.ones((4, 1))], np.zeros(4))  # (n,) and (n, 1)
    assert fitted.predict([np.zeros(4), np.ones((4, 1))]).tolist() == [0.5] * 4


def test_a_methods_random_state_among_its_params_is_taken_by_the_helpers():
    """``random_state`` is every method's parameter; in ``params`` it made the honest
    estimate, the stage and the budget fail with make() got multiple values for it."""
    from ensembles.budget import BudgetedEnsemble
    from ensembles.honest import cross_fitted
    from ensembles.stage import MemberPredictions
    from ensembles.stage import run as stage

    P, y = informative_and_noise()
    params = {"random_state": 3}
    assert cross_fitted("weighted", params, P, y, "accuracy")["gain"] is not None
    members = [MemberPredictions(f"m{i}", p, p) for i, p in enumerate(P)]
    report = stage("greedy", params, members, y, y, n_boot=10)
    assert report.estimator.random_state == 3
    budget = BudgetedEnsemble("weighted", params, max_members=2).fit(P, y)
    assert budget.ensemble_.random_state == 3
