"""Learning-rate schedules by name with their options: validated without Keras, built with it.

``learning_rate`` (the TrainingOptions field) is the base rate every schedule starts from:

- ``constant``: the rate throughout.
- ``power``: ``learning_rate / (1 + step / s) ** c`` (``s`` in optimiser steps).
- ``exponential``: ``learning_rate * 0.1 ** (step / s)``: ten times smaller every ``s`` steps.
- ``piecewise``: ``learning_rate`` until the first of ``boundaries`` (epochs), then
  ``values[i]`` from epoch ``boundaries[i]`` on (0-based epochs, as Keras counts them).
- ``plateau``: times ``factor`` after ``patience`` epochs without improvement of ``monitor``,
  never below ``min_lr`` (Keras' ReduceLROnPlateau).
- ``onecycle``: 1cycle: up from ``learning_rate`` to ``max_lr`` (default 10x) over the first
  half of the cycle, back down, then a last ``last_fraction`` of the steps falling to
  ``learning_rate * final_lr_fraction``.
- ``warmup_cosine``: linear warm-up from 0 to ``learning_rate`` over ``warmup_epochs``, then
  cosine decay to ``alpha * learning_rate`` at the end of training (Keras' CosineDecay).

``s`` left null means the run's total number of steps. Step-based schedules are built into the
optimiser (they need steps per epoch); ``piecewise`` and ``plateau`` are epoch callbacks.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from models.base import check_choice, check_int, check_int_list
from models.option_checks import (
    check_nonnegative,
    check_option_names,
    check_optional_positive,
    check_positive,
    check_unit,
    split_named,
)

if TYPE_CHECKING:
    import keras

MONITORS = ("val_loss", "loss", "val_accuracy", "accuracy", "val_rmse", "rmse")


def monitor_mode(monitor: str) -> str:
    """'max' for accuracies, 'min' for losses and errors: Keras cannot infer it for the
    per-output metric names of multi-output models."""
    return "max" if "accuracy" in monitor else "min"


# name -> {option: default}; None for ``s`` and ``max_lr`` means "derived" (see module doc)
SCHEDULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "constant": {},
    "power": {"s": None, "c": 1.0},
    "exponential": {"s": None},
    "piecewise": {"boundaries": None, "values": None},
    "plateau": {"factor": 0.5, "patience": 5, "min_lr": 0.0, "monitor": "val_loss"},
    "onecycle": {"max_lr": None, "last_fraction": 0.1, "final_lr_fraction": 0.001},
    "warmup_cosine": {"warmup_epochs": 1, "alpha": 0.0},
}
SCHEDULES = tuple(SCHEDULE_DEFAULTS)
REQUIRED_OPTIONS = {"piecewise": ("boundaries", "values")}
EPOCH_SCHEDULES = ("piecewise", "plateau")


def _optional_steps(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value)


def _values(name: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of numbers > 0, got {value!r}")
    return tuple(check_positive(name, v) for v in value)


def _increasing_epochs(name: str, value: Any) -> tuple[int, ...]:
    epochs = check_int_list(name, value)
    if any(b <= a for a, b in zip(epochs, epochs[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing epochs, got {value!r}")
    return epochs


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "s": _optional_steps,
    "c": check_positive,
    "boundaries": _increasing_epochs,
    "values": _values,
    "factor": partial(check_unit, open_low=True),
    "patience": partial(check_int, minimum=0),
    "min_lr": check_nonnegative,
    "monitor": partial(check_choice, allowed=MONITORS),
    "max_lr": check_optional_positive,
    "last_fraction": partial(check_unit, open_low=True),
    "final_lr_fraction": partial(check_unit, open_low=True, open_high=False),
    "warmup_epochs": partial(check_int, minimum=0),
    "alpha": partial(check_unit, open_high=False),
}


def check_schedule(value: Any, learning_rate: float) -> str | dict[str, Any]:
    """The canonical schedule: ``"constant"``, or ``{name, **options}`` with defaults filled."""
    name, kwargs = split_named("schedule", value, SCHEDULES)
    check_option_names(f"schedule {name!r}", kwargs, SCHEDULE_DEFAULTS[name])
    for key in REQUIRED_OPTIONS.get(name, ()):
        if kwargs.get(key) is None:
            needed = " and ".join(REQUIRED_OPTIONS[name])
            raise ValueError(f"schedule {name!r} needs {needed}, got {value!r}")
    if name == "constant":
        return name
    options = {**SCHEDULE_DEFAULTS[name], **kwargs}
    checked = {k: _CHECKS[k](f"schedule.{k}", v) for k, v in options.items()}
    if name == "piecewise" and len(checked["values"]) != len(checked["boundaries"]):
        raise ValueError(
            "schedule.values must give one learning rate per boundary (learning_rate is used "
            f"before the first), got {len(checked['values'])} for "
            f"{len(checked['boundaries'])} boundaries: {value!r}"
        )
    if name == "onecycle" and checked["max_lr"] is not None and checked["max_lr"] <= learning_rate:
        raise ValueError(
            f"schedule.max_lr must be > learning_rate ({learning_rate!r}), "
            f"got {checked['max_lr']!r}"
        )
    return {"name": name, **checked}


def schedule_parts(schedule: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, options) of a canonical schedule value."""
    if isinstance(schedule, str):
        return schedule, {}
    return schedule["name"], {k: v for k, v in schedule.items() if k != "name"}


RATE_OPTIONS = ("values", "max_lr", "min_lr")  # rates, not multiples of learning_rate


def scale_schedule(schedule: str | dict[str, Any], factor: float) -> str | dict[str, Any]:
    """The schedule with the rates it names (piecewise values, onecycle max_lr, plateau
    min_lr) times ``factor``: with a learning rate times ``factor`` too, every rate it
    sets is lowered alike (transfer's fine-tuning phase)."""
    name, options = schedule_parts(schedule)
    if not options:
        return schedule
    scaled = {
        key: value if key not in RATE_OPTIONS or value is None else _times(value, factor)
        for key, value in options.items()
    }
    return {"name": name, **scaled}


def _times(value: float | Sequence[float], factor: float) -> float | tuple[float, ...]:
    if isinstance(value, Sequence):
        return tuple(v * factor for v in value)
    return value * factor


def needs_steps(schedule: str | dict[str, Any]) -> bool:
    """Whether building the schedule needs the number of steps per epoch."""
    name, options = schedule_parts(schedule)
    if name in ("power", "exponential"):
        return options["s"] is None
    return name in ("onecycle", "warmup_cosine")


def build_learning_rate(
    schedule: str | dict[str, Any],
    learning_rate: float,
    *,
    epochs: int,
    steps_per_epoch: int | None,
    initial_epoch: int = 0,
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimiser's learning rate: a float, or a Keras schedule for step-based schedules.
    The schedule spans ``epochs``; a fit continuing at ``initial_epoch`` with a fresh
    optimiser (whose steps count from 0 again) gets its rates from there on."""
    name, options = schedule_parts(schedule)
    if name == "constant" or name in EPOCH_SCHEDULES:
        return learning_rate
    if (needs_steps(schedule) or initial_epoch) and steps_per_epoch is None:
        raise ValueError(
            f"schedule {name!r} needs the steps per epoch: pass n_train_rows to compile_model"
        )
    rate = _step_schedule(name, options, learning_rate, epochs, steps_per_epoch)
    if not initial_epoch:
        return rate
    from models.keras_schedules import Shifted

    return Shifted(rate, initial_epoch * steps_per_epoch)


def _step_schedule(
    name: str,
    options: dict[str, Any],
    learning_rate: float,
    epochs: int,
    steps_per_epoch: int | None,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The Keras schedule of a step-based schedule spanning ``epochs``."""
    import keras

    from models.keras_schedules import OneCycle, PowerDecay

    total = epochs * steps_per_epoch if steps_per_epoch is not None else None
    if name == "power":
        return PowerDecay(learning_rate, options["s"] or total, options["c"])
    if name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=options["s"] or total, decay_rate=0.1
        )
    if name == "onecycle":
        return OneCycle(
            start_lr=learning_rate,
            max_lr=options["max_lr"] or 10 * learning_rate,
            total_steps=total,
            last_steps=max(1, int(total * options["last_fraction"])),
            final_lr=learning_rate * options["final_lr_fraction"],
        )
    # warmup_cosine; a warm-up as long as the run would leave nothing to decay: keep one step
    warmup = min(options["warmup_epochs"] * steps_per_epoch, total - 1)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(learning_rate, total, options["alpha"])
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=total - warmup,
        alpha=options["alpha"],
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )


def piecewise_lr(
    epoch: int, lr: float = 0.0, *, learning_rate: float, boundaries: Sequence[int], values: Any
) -> float:
    """The piecewise schedule's rate in (0-based) ``epoch``; ``lr`` is Keras' current rate."""
    return float(([learning_rate, *values])[bisect_right(boundaries, epoch)])


def schedule_callbacks(
    schedule: str | dict[str, Any], learning_rate: float, monitor: str | None = None
) -> list[keras.callbacks.Callback]:
    """Keras callbacks that drive epoch-based schedules (none for the others); ``monitor``
    overrides the name plateau watches (a multi-output model logs per-output metrics)."""
    name, options = schedule_parts(schedule)
    if name not in EPOCH_SCHEDULES:
        return []
    import keras

    if name == "piecewise":
        fn = partial(
            piecewise_lr,
            learning_rate=learning_rate,
            boundaries=options["boundaries"],
            values=options["values"],
        )
        return [keras.callbacks.LearningRateScheduler(fn)]
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor or options["monitor"],
            mode=monitor_mode(options["monitor"]),
            factor=options["factor"],
            patience=options["patience"],
            min_lr=options["min_lr"],
        )
    ]


def schedule_monitor(schedule: str | dict[str, Any]) -> str | None:
    """The metric the schedule watches (plateau), or None."""
    name, options = schedule_parts(schedule)
    return options["monitor"] if name == "plateau" else None
