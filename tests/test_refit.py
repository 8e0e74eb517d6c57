"""Refit on all rows (runner.refit=true): after a bagged member's folds, one more fit on every
pooled row, as long as its folds trained (their best epochs or trees), serves instead of the
K fold models; the ensemble keeps the weights it learned out of fold."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models.base import InputSpec, Task
from models.boosters import STOP_ROUNDS
from models.training import TrainingOptions

REGRESSION = Task("regression")


def noisy_rows(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, X[:, 0] * 2 + np.sin(X[:, 1] * 3) + rng.normal(scale=0.5, size=n)


@pytest.mark.parametrize(
    "name, rounds",
    [("lightgbm", "n_estimators"), ("xgboost", "n_estimators"), ("catboost", "iterations")],
)
def test_a_booster_refit_grows_exactly_the_trees_its_early_stopped_fit_kept(name, rounds):
    """Refitted on the same rows with the refit settings, the booster is the early-stopped
    one: same predictions (an off-by-one in the library's count of the best round would
    show), and it no longer asks for held-out rows."""
    X, y = noisy_rows()
    entry = models.get(name)
    hparams = {rounds: 3000, "learning_rate": 0.3, STOP_ROUNDS: 10}
    spec, options = InputSpec(n_features=5), TrainingOptions()
    train, held = (X[:200], y[:200]), (X[200:], y[200:])
    stopped = entry.train(spec, REGRESSION, hparams, train, held, options, seed=3)
    assert 0 < stopped.info["best_iteration"] < 3000 - 10
    refit, training = entry.refit_params(hparams, options.as_params(), [stopped.info])
    assert STOP_ROUNDS not in refit and training == options.as_params()
    again = entry.train(spec, REGRESSION, refit, train, train, options, seed=3)
    np.testing.assert_allclose(
        again.member.predict(held[0], REGRESSION),
        stopped.member.predict(held[0], REGRESSION),
        rtol=1e-6,
        atol=1e-6,
    )


def test_a_booster_refit_takes_the_mean_of_its_folds_and_leaves_other_settings():
    entry = models.get("xgboost")
    hparams = {"n_estimators": 5000, "max_depth": 4, STOP_ROUNDS: 100}
    fits = [{"best_iteration": 99}, {"best_iteration": 140}, {"best_iteration": 160}]
    refit, _ = entry.refit_params(hparams, {}, fits)
    assert refit == {"n_estimators": 134, "max_depth": 4}  # mean 133 + 1 (0-based rounds)
    assert entry.refit_params({"n_estimators": 50}, {}, fits)[0] == {"n_estimators": 50}


def test_kinds_without_a_stopping_rule_refit_as_they_are():
    hparams = {"n_estimators": 200}
    assert models.get("extra_trees").refit_params(hparams, {"epochs": 5}, [{}]) == (
        hparams,
        {"epochs": 5},
    )


def test_a_keras_member_records_its_best_epoch_and_refits_for_the_folds_mean():
    X, y = noisy_rows(400)
    entry = models.get("mlp")
    options = TrainingOptions(epochs=60, batch_size=32, learning_rate=0.05, early_stopping=2)
    hparams = {"depth": 2, "width": 64}
    trained = entry.train(
        InputSpec(n_features=5),
        REGRESSION,
        hparams,
        (X[:100], y[:100]),
        (X[100:], y[100:]),
        options,
        seed=0,
    )
    losses = trained.history["val_loss"]
    assert trained.info["restored"], "a tiny training set should overfit and stop early"
    assert trained.info["best_epoch"] == int(np.argmin(losses)) + 1 < trained.epochs_run
    _, training = entry.refit_params(
        hparams, options.as_params(), [{"best_epoch": 7, "epochs_run": 9}, {"best_epoch": 10}]
    )
    assert training["epochs"] == 8 and training["early_stopping"] == 0  # round(8.5) -> 8
    _, unchanged = entry.refit_params(hparams, {"epochs": 30, "early_stopping": 0}, [{}])
    assert unchanged == {"epochs": 30, "early_stopping": 0}
