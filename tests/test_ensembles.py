"""Ensemble methods on constructed predictions whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

import ensembles
from ensembles import METHODS, MeanEnsemble, WeightedEnsemble, make
from ensembles.metrics import evaluate
from ensembles.stage import fit_and_score


def informative_and_noise(n: int = 400, classes: int = 4, noisy: int = 3, seed: int = 0):
    """One member that knows the labels (with some confusion) among members of pure noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    good = np.full((n, classes), 0.3 / (classes - 1))
    good[np.arange(n), y] = 0.7
    noise = rng.dirichlet(np.ones(classes), size=(noisy, n))
    return np.concatenate([good[None], noise]), y


def test_registry_lists_methods_and_unknown_names_fail_with_the_list():
    assert {"mean", "weighted"} <= set(METHODS)
    with pytest.raises(ValueError, match=r"unknown ensemble method 'nope'.*mean.*weighted"):
        make("nope")


def test_informative_member_gets_most_weight_among_noisy_copies():
    P, y = informative_and_noise()
    w = WeightedEnsemble().fit(P, y).weights_
    assert w[0] > 0.9


@pytest.mark.parametrize("method", sorted(METHODS))
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
    ],
)
def test_bad_predictions_fail_with_a_clear_message(P, y, message):
    with pytest.raises(ValueError, match=message):
        WeightedEnsemble().fit(P, y)


def test_negative_l2_is_rejected_with_the_value():
    P, y = informative_and_noise()
    with pytest.raises(ValueError, match="l2 must be a number >= 0, got -1"):
        WeightedEnsemble(l2=-1).fit(P, y)


def test_predict_before_fit_and_member_count_mismatch_fail():
    P, y = informative_and_noise()
    with pytest.raises(RuntimeError, match="not fitted"):
        WeightedEnsemble().predict(P)
    ens = WeightedEnsemble().fit(P, y)
    with pytest.raises(ValueError, match="fitted on 4 members, got predictions of 2"):
        ens.predict(P[:2])


def test_params_follow_the_sklearn_contract():
    from sklearn.base import clone

    ens = WeightedEnsemble(l2=0.5, random_state=3)
    assert ens.get_params() == {"l2": 0.5, "random_state": 3}
    twin = clone(ens)
    assert twin.get_params() == ens.get_params() and not hasattr(twin, "weights_")


def test_fit_and_score_reports_test_from_weights_learned_on_val():
    P, y = informative_and_noise(seed=5)
    Pt, yt = informative_and_noise(seed=6)
    result = fit_and_score("weighted", {}, ["good", "n1", "n2", "n3"], P, y, Pt, yt)
    assert max(result.weights, key=result.weights.get) == "good"
    expected = evaluate(yt, np.tensordot(list(result.weights.values()), Pt, axes=1))
    assert result.test_scores == pytest.approx(expected)


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
