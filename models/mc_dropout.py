"""MC dropout member: an MLP with dropout whose predictions average N stochastic forward
passes (Hands-On ML ch. 11), which usually improves calibration and accuracy a little."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.base import InputSpec, Task, check_float, check_int
from models.mlp import check as check_mlp

if TYPE_CHECKING:
    import keras


def check(
    *,
    samples: int = 30,
    dropout: float = 0.2,
    depth: int = 2,
    width: int = 128,
    activation: str = "relu",
    initializer: Any = "he_normal",
    l1: float = 0.0,
    l2: float = 0.0,
    max_norm: float | None = None,
) -> dict[str, Any]:
    """Validate the hyperparameters without importing Keras (the driver calls this).

    No batch norm: with dropout left on at inference, BN would use batch statistics.
    """
    if check_float("dropout", dropout, 0.0, 1.0) <= 0:
        raise ValueError(f"dropout must be > 0 for MC dropout, got {dropout!r}")
    hp = check_mlp(
        depth=depth,
        width=width,
        activation=activation,
        initializer=initializer,
        dropout=dropout,
        l1=l1,
        l2=l2,
        max_norm=max_norm,
    )
    return {**hp, "samples": check_int("samples", samples)}


def build(spec: InputSpec, task: Task, **hparams: Any) -> keras.Model:
    """An uncompiled MC-dropout model whose ``predict`` averages ``samples`` passes."""
    import keras

    from models.custom import MCDropoutModel
    from models.layers import features_input, head, standardize
    from models.mlp import trunk

    hp = check(**hparams)
    inputs = features_input(spec)
    base = keras.Model(inputs, head(trunk(standardize(inputs, spec), hp), task), name="mc_base")
    return MCDropoutModel(base, samples=hp["samples"], name="mc_dropout")
