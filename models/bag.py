"""A bagged member: the models of one member fitted on K folds of the same rows, served as
the mean of their predictions (AutoGluon's bagging; the ensemble learns from the folds'
out-of-fold predictions, so every row's prediction comes from a model that never saw it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.base import Task
from models.member import Member


@dataclass
class Bag:
    """K fitted members of one kind; ``predict`` averages them (probabilities or values)."""

    members: Sequence[Member]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a bag needs at least one fitted member")

    @property
    def kind(self) -> Any:
        """The registry entry of its members."""
        return self.members[0].kind

    @property
    def reads_table(self) -> bool:
        """Whether its members take raw table rows."""
        return any(m.reads_table for m in self.members)

    @property
    def input_names(self) -> list[str]:
        """The raw table columns any of its members reads."""
        return list(dict.fromkeys(n for m in self.members for n in m.input_names))

    @property
    def pixel_range(self) -> tuple[float, float] | None:
        """The training pixels' range its members saw (images), or None."""
        return self.members[0].pixel_range

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """The images' (height, width, channels) its members were trained on, or None."""
        return self.members[0].image_shape

    @property
    def resizes_images(self) -> bool:
        """Whether its fold models resize images of other sizes (they were trained alike)."""
        return bool(getattr(self.members[0], "resizes_images", False))

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """The named features its members read, in order (not a table), or None."""
        return self.members[0].feature_names

    def unreadable(
        self, frame: Any, checked: set[tuple] | None = None
    ) -> dict[str, tuple[int, str]]:
        """Cells of raw rows any of its fold members would read as missing."""
        out: dict[str, tuple[int, str]] = {}
        checked = set() if checked is None else checked
        for member in self.members:
            out.update(member.unreadable(frame, checked))
        return out

    def predict(self, X: Any, task: Task) -> np.ndarray:
        """The mean of the members' predictions, in the members' contract."""
        return np.mean(self.fold_predictions(X, task), axis=0)

    def fold_predictions(self, X: Any, task: Task) -> np.ndarray:
        """Each fold's model's predictions, stacked (folds, rows, ...)."""
        return np.stack([m.predict(X, task) for m in self.members])
