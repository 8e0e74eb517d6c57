"""From the spec to what Tune runs (one trial per member, its resources and its name), and
from Tune's trials back to the members they belong to."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runner.contracts import (
    MODEL_DIR,
    pack_member,
    refit_label,
    split_fold_label,
    student_label,
    trial_label,
    unpack_member,
)
from runner.spec import MemberSpec, RunSpec


@dataclass(frozen=True)
class TuneRun:
    """One Tune run of a stage: a grid over plain members, or the samples of one searched
    member; ``name`` is its experiment folder under the storage path."""

    name: str
    members: tuple[MemberSpec, ...]
    searched: MemberSpec | None = None

    def trials(self, spec: RunSpec) -> int:
        """How many trials it runs."""
        return sum(trials_of(m, spec) for m in self.members)

    def search_space(
        self, spec: RunSpec, rows: int | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Tune's param space and the TuneConfig settings (samples, searcher, scheduler);
        ``rows``: the training rows, which some kinds' cost guesses grow with."""
        from runner.search import searched_config, tune_settings

        if self.searched is None:
            timed = spec.time_limit is not None
            return param_space(self.members, cheapest_first=timed, rows=rows), {}
        m = self.searched
        space = {"member": pack_member(searched_config(m.to_config(), m.search), list(m.search))}
        # the most epochs any sample can train: a searched epochs' largest candidate
        epochs = max([m.training.epochs, *m.candidates.get("training.epochs", [])])
        return space, tune_settings(spec.search, int(epochs))


def tune_runs(
    spec: RunSpec, members: Sequence[MemberSpec], stage: str | None = None
) -> list[TuneRun]:
    """A stage's Tune runs: the plain members in one, each searched member in its own (the
    refits of bagged members in a Tune run of their own, after the folds)."""
    base = experiment_name(spec, stage)
    if any(m.refit for m in members):
        base += "-refit"
    elif any(m.teacher for m in members):
        base += "-student"
    plain = tuple(m for m in members if not m.search)
    runs = [TuneRun(base, plain)] if plain else []
    runs += [TuneRun(f"{base}-search-{m.name}", (m,), m) for m in members if m.search]
    return runs


def trials_of(member: MemberSpec, spec: RunSpec) -> int:
    """How many trials a member is: its search samples, its folds, or one."""
    return spec.search.num_samples if member.search else max(member.folds, 1)


def trial_configs(member: MemberSpec) -> list[dict[str, Any]]:
    """The trial configs of a plain member: one, or one per fold of a bagged member."""
    config = member.to_config()
    if not member.folds:
        return [config]
    return [{**config, "fold": k} for k in range(member.folds)]


def expected_cost(member: MemberSpec, rows: int | None = None) -> float:
    """The member kind's guess of how long the member trains on ``rows`` training rows,
    relative to other members."""
    import models

    kind = models.get(member.model)
    takes = inspect.signature(kind.relative_cost).parameters  # kinds written before some
    anything = any(p.kind is p.VAR_KEYWORD for p in takes.values())  # **kwargs
    given = {"hparams": member.hparams, "rows": rows}
    return kind.relative_cost(
        member.training.epochs, **{k: v for k, v in given.items() if anything or k in takes}
    )


def param_space(
    members: Sequence[MemberSpec], cheapest_first: bool = False, rows: int | None = None
) -> dict[str, Any]:
    """Tune's param space: a grid over the members (and their folds), one trial each, the
    longest expected first (Tune starts them in this order; started last, a long trial
    would leave the other workers idle at the end), or under a time limit the cheapest
    first (the budget then finishes as many members as it can, and a long Keras member
    started last is cut at the deadline, not skipped). Records keep the config's order."""
    from ray import tune

    # stable either way: ties keep the config's order
    ordered = sorted(members, key=lambda m: expected_cost(m, rows), reverse=not cheapest_first)
    configs = [pack_member(c) for m in ordered for c in trial_configs(m)]
    return {"member": tune.grid_search(configs)}


def resolve_bases(
    members: Sequence[MemberSpec], saved: Mapping[str, str]
) -> tuple[MemberSpec, ...]:
    """Replace each stage reference (``STAGE.MEMBER``, e.g. a transfer head's ``base``) by
    the folder of that member's saved model."""
    import models

    out = []
    for m in members:
        refs = models.get(m.model).stage_references(m.hparams)
        found = {key: saved[ref] for key, ref in refs.items() if ref in saved}
        out.append(replace(m, hparams={**m.hparams, **found}) if found else m)
    return tuple(out)


def trial_resources(config: dict[str, Any]) -> dict[str, float]:
    """Ray resources of the trial that trains ``config['member']``."""
    res = unpack_member(config["member"])["resources"]
    return {"cpu": res["cpu"], "gpu": res["gpu"]}


def belongs(label: str, member: MemberSpec) -> bool:
    """Whether a record label is this member's (its name, NAME-K of its samples, or
    NAME/foldK of its folds; NAME/refit for a refit, NAME/student for a student)."""
    if member.teacher:
        return label == student_label(member.name)
    if member.refit:
        return label == refit_label(member.name)
    fold = split_fold_label(label)
    if fold is not None:
        return fold[0] == member.name and member.folds > 0
    if not member.search:
        return label == member.name
    head, _, index = label.rpartition("-")
    return head == member.name and index.isdigit()


def member_of(label: str, members: Sequence[MemberSpec]) -> MemberSpec | None:
    """The member a record label belongs to, if any."""
    return next((m for m in members if belongs(label, m)), None)


def order_key(label: str, members: Sequence[MemberSpec]) -> tuple[int, int]:
    """Records in member order, a searched member's samples (or a bag's folds) by number."""
    order = {m.name: i for i, m in enumerate(members)}
    member = member_of(label, members)
    fold = split_fold_label(label)
    if fold is not None:
        return order[member.name], fold[1]
    if member.refit or member.teacher:
        return order[member.name], -1
    sample = -1 if label in order else int(label.rsplit("-", 1)[1])
    return order[member.name], sample


def saved_model(result: Any) -> tuple[str, str] | None:
    """(label, saved model folder) of a Tune result whose checkpoint is on this machine's
    disk (also for trials restored from an earlier attempt), else None."""
    if not result.config or not result.metrics or result.checkpoint is None:
        return None  # an interrupted trial without results
    member = unpack_member(result.config["member"])
    label = trial_label(member, result.metrics.get("experiment_tag", "0"))
    folder = Path(result.checkpoint.path, MODEL_DIR)
    return (label, str(folder)) if folder.is_dir() else None


def trial_name(trial: Any) -> str:
    """Trials are named after their member, so Tune's output reads like the config."""
    return f"{trial.config['member']['name']}_{trial.trial_id}"


def experiment_name(spec: RunSpec, stage: str | None = None) -> str:
    """Tune's experiment folder under the storage path: one per sweep (and earlier stage)."""
    suffix = f"-{stage}" if stage else ""
    return f"{spec.experiment}-{spec.sweep_id}{suffix}"
