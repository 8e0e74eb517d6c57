"""From the spec to what Tune runs: one trial per member, its resources and its name."""

from __future__ import annotations

from typing import Any

from runner.spec import RunSpec


def param_space(spec: RunSpec) -> dict[str, Any]:
    """Tune's param space: a grid over the members, so each member is one trial."""
    from ray import tune

    return {"member": tune.grid_search([m.to_config() for m in spec.members])}


def trial_resources(config: dict[str, Any]) -> dict[str, float]:
    """Ray resources of the trial that trains ``config['member']``."""
    res = config["member"]["resources"]
    return {"cpu": res["cpu"], "gpu": res["gpu"]}


def trial_name(trial: Any) -> str:
    """Trials are named after their member, so Tune's output reads like the config."""
    return f"{trial.config['member']['name']}_{trial.trial_id}"


def experiment_name(spec: RunSpec) -> str:
    """Tune's experiment folder under the storage path: one per sweep."""
    return f"{spec.experiment}-{spec.sweep_id}"
