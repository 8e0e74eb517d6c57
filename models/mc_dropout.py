"""MC dropout member: an MLP with dropout whose predictions average N stochastic forward
passes (Hands-On ML ch. 11), which usually improves calibration and accuracy a little."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task, check_float
from models.hparams import DENSE_STACK, integer
from models.kind import Hparam

if TYPE_CHECKING:
    import keras

# The saved model is an MCDropoutModel; this module registers it with Keras.
CUSTOM_OBJECTS = "models.custom"


def _positive_dropout(name: str, value: Any) -> float:
    if check_float(name, value, 0.0, 1.0) <= 0:
        raise ValueError(f"{name} must be > 0 for MC dropout, got {value!r}")
    return float(value)


# No batch norm: with dropout left on at inference, BN would use batch statistics.
SCHEMA: dict[str, Hparam] = {
    "samples": integer(30),
    **{k: v for k, v in DENSE_STACK.items() if k != "batch_norm"},
    "dropout": replace(DENSE_STACK["dropout"], default=0.2, check=_positive_dropout),
}


def build(spec: InputSpec, task: Task, hp: dict[str, Any]) -> keras.Model:
    """An uncompiled MC-dropout model whose ``predict`` averages ``samples`` passes."""
    import keras

    from models.custom import MCDropoutModel
    from models.layers import features_input, head, standardize
    from models.mlp import trunk

    hp = {**hp, "batch_norm": "none"}
    inputs = features_input(spec)
    base = keras.Model(inputs, head(trunk(standardize(inputs, spec), hp), task), name="mc_base")
    return MCDropoutModel(base, samples=hp["samples"], name="mc_dropout")
