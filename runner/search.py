"""Hyperparameter search: search spaces written in YAML, Tune search algorithms and schedulers.

A member's hyperparameter or training value may be a domain instead of a value:
``{choice: [a, b]}``, ``{uniform: [low, high]}``, ``{loguniform: [low, high]}`` or
``{randint: [low, high]}`` (high excluded, as in Tune). Such a member is searched: it becomes
``search.num_samples`` trials, each an ensemble candidate.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DOMAINS = ("choice", "uniform", "loguniform", "randint")
# Tune's other sampling functions (and a plain "grid"): named so a user gets what to write
NOT_DOMAINS = (
    "grid",
    "grid_search",
    "quniform",
    "qloguniform",
    "randn",
    "qrandn",
    "qrandint",
    "lograndint",
    "qlograndint",
    "sample_from",
)
ALGORITHMS = ("none", "random", "optuna")
SCHEDULERS = ("asha",)
MODES = ("min", "max")
OBJECTIVES = ("member", "ensemble")
FINAL_METRICS = ("accuracy", "log_loss", "rmse", "mae")  # each trial's final_val_* scores


@dataclass(frozen=True)
class SearchSpec:
    """How searched members are sampled and, optionally, stopped early."""

    name: str = "none"
    num_samples: int = 1
    scheduler: str | None = None
    metric: str = "val_loss"
    mode: str = "min"
    grace_period: int = 1
    reduction_factor: int = 3
    seed: int | None = None
    # member: a trial's own validation score; ensemble: the greedy ensemble's cross-fitted
    # validation loss with the trial added to those finished before it (runner/pool.py)
    objective: str = "member"

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.name not in ALGORITHMS:
            raise ValueError(f"search.name must be one of {list(ALGORITHMS)}, got {self.name!r}")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise ValueError(
                f"search.scheduler must be null or one of {list(SCHEDULERS)}, got "
                f"{self.scheduler!r}"
            )
        if self.mode not in MODES:
            raise ValueError(f"search.mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"search.objective must be one of {list(OBJECTIVES)}, got {self.objective!r}"
            )
        if self.objective == "ensemble" and (self.metric, self.mode) != ("val_loss", "min"):
            raise ValueError(
                "search.objective=ensemble scores a trial by the ensemble's validation loss; "
                f"it needs search.metric=val_loss and search.mode=min, got {self.metric!r}, "
                f"{self.mode!r}"
            )
        final = [f"final_val_{m}" for m in FINAL_METRICS]
        if self.scheduler is not None and self.metric != "val_loss":
            raise ValueError(
                f"search.metric must be val_loss with a scheduler (the score every member "
                f"reports each epoch), got {self.metric!r}"
            )
        if self.metric not in ("val_loss", *final):
            raise ValueError(
                f"search.metric must be one of val_loss, {', '.join(final)}, got {self.metric!r}"
            )
        higher = self.metric == "final_val_accuracy"  # the others are losses and errors
        if self.mode != ("max" if higher else "min"):
            raise ValueError(
                f"search.metric={self.metric} is better {'higher' if higher else 'lower'}: it "
                f"needs search.mode={'max' if higher else 'min'}, got {self.mode!r}"
            )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            raise ValueError(f"search.seed must be null or an integer >= 0, got {self.seed!r}")
        for key, low in (("num_samples", 1), ("grace_period", 1), ("reduction_factor", 2)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"search.{key} must be an integer >= {low}, got {value!r}")


def is_domain(value: Any) -> bool:
    """Whether a config value is a search domain (a one-key mapping naming a domain)."""
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in DOMAINS


def check_domain(path: str, value: Mapping[str, Any]) -> list[Any]:
    """Validate a domain; return the values to validate the member with (choices; the
    bounds; for uniform and loguniform also a value between them, which a setting that
    takes whole numbers refuses)."""
    ((kind, args),) = value.items()
    if kind == "choice":
        if not isinstance(args, (list, tuple)) or not args:
            raise ValueError(f"{path}: choice needs a non-empty list, got {args!r}")
        return list(args)
    ok = (
        isinstance(args, (list, tuple))
        and len(args) == 2
        and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    )
    if not ok or not args[0] < args[1]:
        raise ValueError(f"{path}: {kind} needs [low, high] with low < high, got {args!r}")
    if kind == "loguniform" and args[0] <= 0:
        raise ValueError(f"{path}: loguniform needs low > 0, got {args!r}")
    if kind == "randint":
        if not all(isinstance(a, int) for a in args):
            raise ValueError(f"{path}: randint needs integer bounds, got {args!r}")
        return [args[0], args[1] - 1]
    low, high = args
    share = 0.382  # an inner value, not a whole number: what a sample looks like
    inner = (
        low + share * (high - low)
        if kind == "uniform"
        else math.exp(math.log(low) + share * (math.log(high) - math.log(low)))
    )
    return [low, high, inner]


def _check_near_domain(path: str, value: Any) -> None:
    """ValueError for a one-key mapping that looks meant as a domain and is not one: Tune's
    other sampling functions, or a misspelled domain over a list (``{choise: [1, 2]}``)."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return
    ((name, args),) = value.items()
    if name in DOMAINS:
        return
    if name in NOT_DOMAINS:
        raise ValueError(
            f"{path}: {name!r} is not a search domain here; allowed: {', '.join(DOMAINS)} "
            "(no grid search: sample a list with {choice: [...]}, or list each setting as a "
            "member of its own)"
        )
    close = difflib.get_close_matches(str(name), DOMAINS, n=1, cutoff=0.75)
    if close and isinstance(args, (list, tuple)):
        raise ValueError(
            f"{path}: unknown search domain {name!r}, did you mean {close[0]!r}? allowed: "
            f"{', '.join(DOMAINS)}"
        )


def _nested_domain(value: Any, path: str) -> str | None:
    """The path of a search domain inside a setting's mapping or list, if any."""
    if is_domain(value):
        return path
    items = (
        value.items()
        if isinstance(value, Mapping)
        else (enumerate(value) if isinstance(value, (list, tuple)) else ())
    )
    for key, item in items:
        if (found := _nested_domain(item, f"{path}.{key}")) is not None:
            return found
    return None


def split_domains(
    values: Mapping[str, Any], prefix: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """(values with each domain replaced by its first candidate, {path: domain},
    {path: candidates}); ``path`` is ``prefix.key``."""
    plain, space, candidates = {}, {}, {}
    for key, value in values.items():
        _check_near_domain(f"{prefix}.{key}", value)
        inner = None if is_domain(value) else _nested_domain(value, f"{prefix}.{key}")
        if inner is not None:
            example = "[...]" if isinstance(value, (list, tuple)) else "{...}"
            raise ValueError(
                f"{inner}: a search domain inside a setting is not searched; search the whole "
                f"setting instead, e.g. {prefix}.{key}={{choice: [{example}, {example}]}}"
            )
        if is_domain(value):
            path = f"{prefix}.{key}"
            candidates[path] = check_domain(path, value)
            space[path] = dict(value)
            plain[key] = candidates[path][0]
        else:
            plain[key] = value
    return plain, space, candidates


def to_tune(domain: Mapping[str, Any]) -> Any:
    """The Tune search-space object for a domain."""
    from ray import tune

    ((kind, args),) = domain.items()
    if kind == "choice":
        return tune.choice(list(args))
    return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](
        *args
    )


def searched_config(config: dict[str, Any], space: Mapping[str, Mapping[str, Any]]) -> dict:
    """A member's trial config with Tune domains at the searched paths. A training option
    searched over mappings (``optimizer={choice: [{name: sgd, momentum: 0.9}, ...]}``) loses
    the flattened keys of its first candidate (``optimizer.momentum``), which would otherwise
    be read back over every sample's own mapping."""
    out = {**config, "hparams": dict(config["hparams"]), "training": dict(config["training"])}
    for path, domain in space.items():
        section, key = path.split(".", 1)
        out[section][key] = to_tune(domain)
        if section == "training":
            for stale in [k for k in out[section] if str(k).startswith(f"{key}.")]:
                del out[section][stale]
    return out


def tune_settings(search: SearchSpec, max_t: int) -> dict[str, Any]:
    """TuneConfig keyword arguments: samples, search algorithm and scheduler."""
    settings: dict[str, Any] = {"num_samples": search.num_samples}
    if search.name == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        from runner.final_score_search import FinalScoreSearch

        optuna = OptunaSearch(metric=search.metric, mode=search.mode, seed=search.seed)
        settings["search_alg"] = FinalScoreSearch(optuna)
    elif search.seed is not None:  # random search: the same seed samples the same trials
        from ray.tune.search import BasicVariantGenerator

        settings["search_alg"] = BasicVariantGenerator(random_state=search.seed)
    if search.scheduler == "asha":
        from runner.asha import FinalKeepingASHA

        settings["scheduler"] = FinalKeepingASHA(
            time_attr="epoch",
            metric=search.metric,
            mode=search.mode,
            # past the last epoch, so the final report (predictions, checkpoint) is never cut
            max_t=max(max_t, search.grace_period) + 1,
            grace_period=search.grace_period,
            reduction_factor=search.reduction_factor,
        )
    return settings
