"""The step-based learning-rate schedules Keras lacks (power, 1cycle) and a shift of any
schedule, registered for saving.

Imports Keras: import it only from inside functions (``models.schedules`` does).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="runner_models")
class PowerDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Power scheduling (Hands-On ML ch. 11): ``lr0 / (1 + step / s) ** c``."""

    def __init__(self, initial_learning_rate: float, s: int, c: float = 1.0) -> None:
        self.initial_learning_rate = float(initial_learning_rate)
        self.s = int(s)
        self.c = float(c)

    def __call__(self, step: Any) -> Any:
        """The learning rate at optimiser step ``step`` (0-based)."""
        step = ops.cast(step, "float32")
        return self.initial_learning_rate / ops.power(1.0 + step / self.s, self.c)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        return {"initial_learning_rate": self.initial_learning_rate, "s": self.s, "c": self.c}


@keras.saving.register_keras_serializable(package="runner_models")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """1cycle (Smith 2018; Hands-On ML ch. 11): linear from ``start_lr`` up to ``max_lr`` over
    the first half of the cycle, linear back down to ``start_lr``, then a final phase of
    ``last_steps`` falling linearly to ``final_lr``."""

    def __init__(
        self, start_lr: float, max_lr: float, total_steps: int, last_steps: int, final_lr: float
    ) -> None:
        self.start_lr = float(start_lr)
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.last_steps = int(last_steps)
        self.final_lr = float(final_lr)

    @property
    def half_steps(self) -> int:
        """Steps of each half of the cycle: the peak is reached at this step."""
        return max(1, (self.total_steps - self.last_steps) // 2)

    def __call__(self, step: Any) -> Any:
        """The learning rate at optimiser step ``step`` (0-based)."""
        step = ops.cast(step, "float32")
        half = float(self.half_steps)
        up = self.start_lr + (self.max_lr - self.start_lr) * step / half
        down = self.max_lr - (self.max_lr - self.start_lr) * (step - half) / half
        tail = float(max(1, self.total_steps - 2 * self.half_steps))
        end = self.start_lr - (self.start_lr - self.final_lr) * (step - 2 * half) / tail
        end = ops.maximum(end, self.final_lr)
        return ops.where(step < half, up, ops.where(step < 2 * half, down, end))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        return {
            "start_lr": self.start_lr,
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "last_steps": self.last_steps,
            "final_lr": self.final_lr,
        }


@keras.saving.register_keras_serializable(package="runner_models")
class Shifted(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` ``steps`` steps on: a fresh optimiser (transfer's fine-tuning phase, after
    a recompile) continues the rates where the earlier fit left them."""

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, steps: int):
        self.schedule = schedule
        self.steps = int(steps)

    def __call__(self, step: Any) -> Any:
        """The inner schedule's rate at ``step + steps``."""
        return self.schedule(ops.cast(step, "float32") + float(self.steps))

    def get_config(self) -> dict[str, Any]:
        """The inner schedule (serialised) and the shift, for saving."""
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "steps": self.steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Shifted:
        """Rebuild with the inner schedule deserialised."""
        inner = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(inner, config["steps"])
