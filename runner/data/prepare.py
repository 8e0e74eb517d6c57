"""What models learn about their inputs from the training rows only: the feature statistics
Keras members standardise with inside their graph (so a saved member takes raw data)."""

from __future__ import annotations

import pandas as pd

from models.base import InputSpec
from runner.data.types import Raw


def input_spec(raw: Raw, X_train: object) -> InputSpec:
    """The inputs' shape, names and training statistics; for raw table rows only the columns
    (each member fits its own encoding on the training rows)."""
    if isinstance(X_train, pd.DataFrame):
        columns = tuple(str(c) for c in X_train.columns)
        return InputSpec(n_features=len(columns), feature_names=columns, table=True)
    return InputSpec(
        n_features=raw.X.shape[1],
        image_shape=raw.image_shape,
        resizes_images=raw.resizes_images,
        feature_names=raw.feature_names,
    ).with_statistics(X_train)
