"""The model zoo: an explicit registry of model kinds, free of Hydra, Ray and MLflow.

``REGISTRY[name]`` is a ``models.kind.ModelKind``: it validates hyperparameters without
importing Keras (``check``), builds, fits, predicts, saves and loads its models. Adding a kind
is one module, one line here and one ``conf/model/`` file; a kind from outside this package
calls ``register`` from its own module (see docs/architecture.md).
"""

from __future__ import annotations

from models import boosters, convnet, mc_dropout, mlp, selu, shallow, transfer, wide_deep
from models.base import InputSpec, Task
from models.keras_kind import KerasKind
from models.kind import ModelKind
from models.registry import REGISTRY, get, module_of, register
from models.store import load_member, save_bag, save_member

_ZOO: dict[str, ModelKind] = {
    "mlp": KerasKind("mlp", mlp.SCHEMA, mlp.build),
    "selu": KerasKind("selu", selu.SCHEMA, selu.build),
    "convnet": KerasKind(
        "convnet",
        convnet.SCHEMA,
        convnet.build,
        needs_image=True,
        validate=convnet.validate,
        custom_objects="models.custom",
    ),
    "wide_deep": KerasKind(
        "wide_deep",
        wide_deep.SCHEMA,
        wide_deep.build,
        input_check=wide_deep.check_input,
        loss_weights_fn=wide_deep.loss_weights,
    ),
    "mc_dropout": KerasKind(
        "mc_dropout", mc_dropout.SCHEMA, mc_dropout.build, custom_objects=mc_dropout.CUSTOM_OBJECTS
    ),
    "transfer": KerasKind(
        "transfer",
        transfer.SCHEMA,
        transfer.build,
        validate=transfer.validate,
        input_check=transfer.check_input,
        procedure=transfer.fit,
        references=transfer.references,
        reference_check=transfer.check_reference,
        example=transfer.example,
        custom_objects="models.custom",
        files=("base", "weights"),
    ),
    **shallow.ENTRIES,
    **boosters.ENTRIES,
}

for _entry in _ZOO.values():
    register(_entry, __name__)


__all__ = [
    "REGISTRY",
    "InputSpec",
    "ModelKind",
    "Task",
    "get",
    "load_member",
    "module_of",
    "register",
    "save_bag",
    "save_member",
]
