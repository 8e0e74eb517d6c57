"""The model zoo: an explicit registry of builders, free of Hydra, Ray and MLflow.

``REGISTRY[name].check(hparams, task)`` validates without importing Keras;
``REGISTRY[name].build(spec, task, **hparams)`` returns an uncompiled ``keras.Model``
(``kind == "keras"``) or an unfitted scikit-learn estimator (``kind == "sklearn"``).
"""

from __future__ import annotations

from models import convnet, mc_dropout, mlp, selu, shallow, transfer, wide_deep
from models.base import InputSpec, KerasEntry, Task

ModelEntry = KerasEntry | shallow.SklearnEntry

REGISTRY: dict[str, ModelEntry] = {
    "mlp": KerasEntry("mlp", mlp.check, mlp.build),
    "selu": KerasEntry("selu", selu.check, selu.build),
    "convnet": KerasEntry("convnet", convnet.check, convnet.build, needs_image=True),
    "wide_deep": KerasEntry(
        "wide_deep",
        wide_deep.check,
        wide_deep.build,
        input_check_fn=wide_deep.check_input,
        loss_weights_fn=wide_deep.loss_weights,
    ),
    "mc_dropout": KerasEntry("mc_dropout", mc_dropout.check, mc_dropout.build),
    "transfer": KerasEntry(
        "transfer",
        transfer.check,
        transfer.build,
        input_check_fn=transfer.check_input,
        fit_fn=transfer.fit,
        example_fn=transfer.example,
    ),
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
