"""From the spec to what Tune runs: one trial per member, its resources and its name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from runner.spec import MemberSpec, RunSpec


def param_space(members: Sequence[MemberSpec]) -> dict[str, Any]:
    """Tune's param space: a grid over the members, so each member is one trial."""
    from ray import tune

    return {"member": tune.grid_search([m.to_config() for m in members])}


def resolve_bases(
    members: Sequence[MemberSpec], saved: Mapping[str, str]
) -> tuple[MemberSpec, ...]:
    """Replace ``hparams.base: STAGE.MEMBER`` by the path of that member's saved model."""
    out = []
    for m in members:
        ref = m.hparams.get("base")
        if isinstance(ref, str) and ref in saved:
            m = replace(m, hparams={**m.hparams, "base": saved[ref]})
        out.append(m)
    return tuple(out)


def trial_resources(config: dict[str, Any]) -> dict[str, float]:
    """Ray resources of the trial that trains ``config['member']``."""
    res = config["member"]["resources"]
    return {"cpu": res["cpu"], "gpu": res["gpu"]}


def label(member: Mapping[str, Any], experiment_tag: str) -> str:
    """The name a trial goes by in MLflow and the ensemble: the member's, or for a searched
    member ``NAME-K`` with K the sample's counter (Tune's experiment tag starts with it)."""
    if not member.get("searched"):
        return member["name"]
    return f"{member['name']}-{int(str(experiment_tag).split('_', 1)[0])}"


def member_label(trial: Any) -> str:
    """``label`` of a Tune trial."""
    return label(trial.config["member"], trial.experiment_tag)


def trial_name(trial: Any) -> str:
    """Trials are named after their member, so Tune's output reads like the config."""
    return f"{trial.config['member']['name']}_{trial.trial_id}"


def experiment_name(spec: RunSpec, stage: str | None = None) -> str:
    """Tune's experiment folder under the storage path: one per sweep (and earlier stage)."""
    suffix = f"-{stage}" if stage else ""
    return f"{spec.experiment}-{spec.sweep_id}{suffix}"
