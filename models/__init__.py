"""The model zoo: an explicit registry of builders, free of Hydra, Ray and MLflow.

``REGISTRY[name].check(hparams, task)`` validates without importing Keras;
``REGISTRY[name].build(spec, task, **hparams)`` returns an uncompiled ``keras.Model``
(``kind == "keras"``) or an unfitted scikit-learn estimator (``kind == "sklearn"``).
"""

from __future__ import annotations

from models import convnet, mlp, selu, shallow
from models.base import InputSpec, KerasEntry, Task

ModelEntry = KerasEntry | shallow.SklearnEntry

REGISTRY: dict[str, ModelEntry] = {
    "mlp": KerasEntry("mlp", mlp.check, mlp.build),
    "selu": KerasEntry("selu", selu.check, selu.build),
    "convnet": KerasEntry("convnet", convnet.check, convnet.build, needs_image=True),
    **shallow.ENTRIES,
}


def get(name: str) -> ModelEntry:
    """The registry entry for ``name``, or ValueError listing the known models."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}"
        ) from None


__all__ = ["REGISTRY", "InputSpec", "ModelEntry", "Task", "get"]
