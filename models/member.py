"""A fitted member as it is served: its kind's model, plus what it learned about raw inputs
(the table encoding, the target's scale), applied around the model on every prediction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.base import Task, check_finite
from models.columns import ColumnMismatch, by_name
from models.tabular import TablePrep, TargetScaler, is_table


@dataclass
class Member:
    """``kind``'s ``model`` with the ``prep`` it reads raw table rows with and the ``target``
    scaler its regression predictions are mapped back with (either may be None); for images
    the ``pixel_range`` it was trained on, and for named features (not a table) their names in
    the order it reads them."""

    kind: Any  # models.kind.ModelKind; typed loosely to keep this module import-light
    model: Any
    prep: TablePrep | None = None
    target: TargetScaler | None = None
    pixel_range: tuple[float, float] | None = None
    feature_names: tuple[str, ...] | None = None
    image_shape: tuple[int, ...] | None = None  # images: (height, width, channels) trained on
    resizes_images: bool = False  # images of other sizes are resized to image_shape, as in training

    @property
    def reads_table(self) -> bool:
        """Whether it takes raw table rows (it was fitted on a table)."""
        return self.prep is not None

    @property
    def input_names(self) -> list[str]:
        """The raw table columns it reads; none for a member fitted on features."""
        return [] if self.prep is None else self.prep.input_names

    def unreadable(
        self, frame: Any, checked: set[tuple] | None = None
    ) -> dict[str, tuple[int, str]]:
        """Cells of raw rows it would read as missing though they hold something (see
        ``TablePrep.unreadable``); none for a member fitted on features."""
        return {} if self.prep is None else self.prep.unreadable(frame, checked)

    def encode(self, X: Any) -> Any:
        """What the model reads: raw table rows encoded, a numeric matrix as it is."""
        if self.prep is not None:
            if not is_table(X):
                raise ValueError(
                    "this member was fitted on table rows: pass a pandas DataFrame with the "
                    f"training columns, got {type(X).__name__}"
                )
            return self.prep.transform(X)
        if is_table(X):
            X = self._by_name(X).to_numpy(dtype=np.float32)
        elif isinstance(X, (list, tuple)):  # rows as nested lists
            X = np.asarray(X, dtype=np.float32)
        if self.image_shape is not None:
            X = self._flat_images(np.asarray(X))
        if not self.kind.reads_missing:
            check_finite(X, "predicted")
        return X

    def _flat_images(self, X: np.ndarray) -> np.ndarray:
        """Images as the flat rows the model reads: a batch (n, h, w[, c]) or one image
        (h, w[, c]) of the trained shape, or rows already flat; ValueError for another."""
        shape = tuple(self.image_shape or ())
        width = int(np.prod(shape))
        one = {shape, shape[:2]} if shape[2:] in ((), (1,)) else {shape}  # grey: no channel
        if X.ndim == 2 and X.shape[1] == width:
            return X
        if X.shape in one:
            return X.reshape(1, width)
        if X.ndim >= 3 and X.shape[1:] in one:
            return X.reshape(len(X), width)
        dims = ", ".join(map(str, shape))
        raise ValueError(
            f"this member reads images of shape ({dims}): a batch (n, {dims}), one image, or "
            f"flat rows of {width} values; got an array of shape {X.shape}"
        )

    def _by_name(self, frame: Any) -> Any:
        """A frame of named features in the order the model reads them (any order in, others
        ignored); ValueError naming the features it lacks. Pixels, and columns that are not
        names, are read by position."""
        if self.pixel_range is not None:
            return frame
        names = self.feature_names or ()
        try:
            return by_name(frame, names)
        except ColumnMismatch as err:
            if err.twice:
                raise ValueError(
                    f"the rows name the feature(s) {', '.join(map(repr, err.twice))} more "
                    "than once; pass each column once"
                ) from None
            missing = err.missing
            raise ValueError(
                f"the rows lack {len(missing)} of this member's {len(names)} features "
                f"({', '.join(map(repr, missing[:5]))}{', ...' if len(missing) > 5 else ''}); "
                "pass a frame with every feature's column, in any order"
            ) from None

    def predict(self, X: Any, task: Task) -> np.ndarray:
        """Predictions in the members' contract, in the target's units."""
        pred = self.kind.predict(self.model, self.encode(X), task)
        if self.target is not None and not task.is_classification:
            pred = self.target.inverse(pred)
        return pred
