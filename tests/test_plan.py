"""What Tune runs: the order of a sweep's trials, and the member configs Tune carries."""

from __future__ import annotations

from dataclasses import replace
from numbers import Number

from ray.tune.utils import flatten_dict

from runner import plan
from runner.contracts import unpack_member
from runner.spec import config_hash, from_config


def spec_of(tmp_path, members, search=None, folds=0):
    cfg = {
        "data": {"name": "digits"},
        "training": {"epochs": 20},
        "members": members,
        "ensemble": {"method": "mean"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"},
        "runner": {"storage_path": str(tmp_path / "tune"), "folds": folds},
    }
    if search:
        cfg["search"] = search
    return from_config(cfg, "unit", str(tmp_path))


def test_trials_start_longest_expected_first_and_ties_keep_the_config_order(tmp_path):
    members = {
        "logistic": {"model": "logistic"},
        "mlp": {"model": "mlp"},
        "hgb": {"model": "hgb"},
        "convnet": {"model": "convnet"},
        "selu": {"model": "selu", "training": {"epochs": 40}},
    }
    spec = spec_of(tmp_path, members)
    grid = plan.param_space(spec.members)["member"]["grid_search"]
    assert [c["name"] for c in grid] == ["convnet", "selu", "mlp", "hgb", "logistic"]
    costs = [plan.expected_cost(m) for m in spec.members]
    assert costs == [1.0, 20.0, 2.0, 200.0, 40.0]
    # under runner.time_limit the cheapest start first: the budget finishes the most members
    (run,) = plan.tune_runs(spec, spec.members)
    assert [c["name"] for c in run.search_space(spec)[0]["member"]["grid_search"]] == [
        "convnet",
        "selu",
        "mlp",
        "hgb",
        "logistic",
    ]
    timed = replace(spec, time_limit=60.0)
    grid = run.search_space(timed)[0]["member"]["grid_search"]
    assert [c["name"] for c in grid] == ["logistic", "hgb", "mlp", "selu", "convnet"]


def test_one_shot_fits_are_costed_by_their_trees_and_rounds(tmp_path):
    """Every one-shot fit cost 1, so a 5000-round booster tied with a linear model, and under
    a time limit the boosters (first in the tabular zoo's config) started while the linear
    model was skipped."""
    members = {
        "lightgbm": {"model": "lightgbm", "hparams": {"n_estimators": 5000}},
        "catboost": {"model": "catboost", "hparams": {"iterations": 5000}},
        "extra_trees": {"model": "extra_trees"},
        "linear": {"model": "linear"},
        "knn": {"model": "knn"},
    }
    spec = spec_of(tmp_path, members)
    costs = {m.name: plan.expected_cost(m) for m in spec.members}
    assert costs == {
        "lightgbm": 100.0,
        "catboost": 200.0,
        "extra_trees": 60.0,
        "linear": 1.0,
        "knn": 2.0,
    }
    (run,) = plan.tune_runs(spec, spec.members)
    grid = run.search_space(replace(spec, time_limit=60.0))[0]["member"]["grid_search"]
    assert [c["name"] for c in grid] == ["linear", "knn", "extra_trees", "lightgbm", "catboost"]


def test_a_member_that_stops_early_is_costed_by_the_rounds_it_is_likely_to_take(tmp_path):
    """Costed by all 5000 rounds, the tabular zoo's boosters (which stop after 100 without
    gain) were started last under a time limit and skipped, though they train in a fraction
    of a forest's time."""
    members = {
        "lightgbm": {
            "model": "lightgbm",
            "hparams": {"n_estimators": 5000, "early_stopping_rounds": 100},
        },
        "catboost": {
            "model": "catboost",
            "hparams": {"iterations": 5000, "early_stopping_rounds": 100},
        },
        "hgb": {"model": "hgb", "hparams": {"max_iter": 2000, "early_stopping": True}},
        "hgb_on": {"model": "hgb", "hparams": {"max_iter": 2000, "early_stopping": False}},
        "extra_trees": {"model": "extra_trees"},
    }
    costs = {m.name: plan.expected_cost(m) for m in spec_of(tmp_path, members).members}
    assert costs == {
        "lightgbm": 20.0,  # 1000 rounds at most, not 5000
        "catboost": 40.0,
        "hgb": 2.0,  # patience 10 (scikit-learn's default): 100 rounds
        "hgb_on": 40.0,
        "extra_trees": 60.0,
    }


def test_tune_carries_member_configs_without_numbers_it_would_track_and_gives_them_back(tmp_path):
    searched = {
        "model": "mlp",
        "hparams": {"dropout": {"uniform": [0.0, 0.5]}},
        "training": {"learning_rate": {"loguniform": [1e-4, 1e-2]}},
    }
    (hgb,) = spec_of(tmp_path, {"hgb": {"model": "hgb"}}, folds=3).members
    spec = spec_of(tmp_path, {"mlp": searched}, {"name": "random", "num_samples": 2})
    (mlp,) = spec.members
    grid = plan.param_space([hgb])["member"]["grid_search"]
    # Tune keeps a running max/min/mean of every number of a result, config included
    assert all(not isinstance(v, Number) for c in grid for v in flatten_dict(c).values())
    assert [unpack_member(c) for c in grid] == plan.trial_configs(hgb)
    assert [unpack_member(c)["fold"] for c in grid] == [0, 1, 2]
    (run,) = [r for r in plan.tune_runs(spec, spec.members) if r.searched is not None]
    space = run.search_space(spec)[0]["member"]
    assert set(space["hparams"]) == {"dropout"} and set(space["training"]) == {"learning_rate"}
    sampled = {**space, "hparams": {"dropout": 0.25}, "training": {"learning_rate": 0.001}}
    config = unpack_member(sampled)
    full = mlp.to_config()
    assert config["hparams"] == {**full["hparams"], "dropout": 0.25}
    assert config["training"] == {**full["training"], "learning_rate": 0.001}
    assert config_hash(config) == config_hash(
        {**full, "hparams": config["hparams"], "training": config["training"]}
    )
    assert unpack_member(full) == full  # a config Tune got whole, from an earlier version


def test_k_nn_and_svm_cost_more_on_many_rows_than_their_one_shot_guess(tmp_path):
    """Under a 5-minute limit on a 350,000-row table k-NN (guessed 2, second cheapest)
    started first and ran past the limit by minutes: its work grows with the square of the
    rows, so past 10,000 rows its guess grows with them."""
    members = {
        "lightgbm": {"model": "lightgbm", "hparams": {"n_estimators": 5000}},
        "hgb": {"model": "hgb"},
        "linear": {"model": "linear"},
        "knn": {"model": "knn"},
    }
    spec = spec_of(tmp_path, members)
    few = {m.name: plan.expected_cost(m, rows=5_000) for m in spec.members}
    many = {m.name: plan.expected_cost(m, rows=350_000) for m in spec.members}
    assert few == {"lightgbm": 100.0, "hgb": 2.0, "linear": 1.0, "knn": 2.0}
    assert many == {**few, "knn": 70.0}
    assert plan.expected_cost(spec.members[3]) == 2.0  # rows unknown: the one-shot guess
    (run,) = plan.tune_runs(spec, spec.members)
    timed = replace(spec, time_limit=60.0)
    grid = run.search_space(timed, rows=350_000)[0]["member"]["grid_search"]
    assert [c["name"] for c in grid] == ["linear", "hgb", "knn", "lightgbm"]
