"""What models learn about their inputs from the training rows only: the feature statistics
Keras members standardise with inside their graph (so a saved member takes raw data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.base import InputSpec
from runner.data.types import Raw


def input_spec(raw: Raw, X_train: object) -> InputSpec:
    """The inputs' shape, names and training statistics; for raw table rows only the columns
    (each member fits its own encoding on the training rows)."""
    if isinstance(X_train, pd.DataFrame):
        columns = tuple(str(c) for c in X_train.columns)
        return InputSpec(n_features=len(columns), feature_names=columns, table=True)
    if raw.image_shape is not None:
        # images: one mean and variance for every pixel, so standardising keeps the picture
        # (per-pixel statistics would rescale each pixel differently and distort edges)
        mean = np.full(X_train.shape[1], X_train.mean(), dtype=np.float64)
        variance = np.full(X_train.shape[1], X_train.var(), dtype=np.float64)
    else:
        mean, variance = X_train.mean(axis=0), X_train.var(axis=0)
    pixel_range = None
    if raw.image_shape is not None:
        pixel_range = (float(np.min(X_train)), float(np.max(X_train)))
    return InputSpec(
        n_features=raw.X.shape[1],
        pixel_range=pixel_range,
        image_shape=raw.image_shape,
        resizes_images=raw.resizes_images,
        feature_names=raw.feature_names,
        mean=mean,
        # constant features keep unit scale, as StandardScaler does; otherwise a pixel that is
        # always 0 in train would be divided by ~0 on val/test
        variance=np.where(variance > 0, variance, 1.0),
    )
