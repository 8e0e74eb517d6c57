"""What Tune runs: the order of a sweep's trials."""

from __future__ import annotations

from runner import plan
from runner.spec import from_config


def test_trials_start_longest_expected_first_and_ties_keep_the_config_order(tmp_path):
    cfg = {
        "data": {"name": "digits"},
        "training": {"epochs": 20},
        "members": {
            "logistic": {"model": "logistic"},
            "mlp": {"model": "mlp"},
            "hgb": {"model": "hgb"},
            "convnet": {"model": "convnet"},
            "selu": {"model": "selu", "training": {"epochs": 40}},
        },
        "ensemble": {"method": "mean"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"},
        "runner": {"storage_path": str(tmp_path / "tune")},
    }
    spec = from_config(cfg, "unit", str(tmp_path))
    grid = plan.param_space(spec.members)["member"]["grid_search"]
    assert [c["name"] for c in grid] == ["convnet", "selu", "mlp", "logistic", "hgb"]
    costs = [plan.expected_cost(m) for m in spec.members]
    assert costs == [1.0, 20.0, 1.0, 200.0, 40.0]
