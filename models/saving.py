"""Load saved members: Keras files with the zoo's custom objects registered, or joblib files."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_member_model(path: str | Path) -> Any:
    """A saved member model: ``.keras`` via Keras (custom objects registered), else joblib."""
    path = Path(path)
    if path.suffix == ".keras":
        import keras

        import models.custom  # noqa: F401  (registers the zoo's custom classes)

        return keras.saving.load_model(path, compile=False)
    import joblib

    return joblib.load(path)
