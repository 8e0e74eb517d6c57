"""The model-kind contract: one object per registry entry owns a member's whole life.

An entry validates its hyperparameters (a schema of defaults and checks, Keras-free so the
driver can validate configs before anything starts), builds the model, fits it with the
training options, predicts in the members' format, and saves and loads it. Everything that
trains or serves a member (the runner's trial, the exported ensemble, the benchmarks) goes
through these methods, so nothing outside ``models/`` needs to know what kind a model is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.base import InputSpec, Task

# A hook called after each epoch with its 1-based number and its scalar logs.
EpochHook = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class Hparam:
    """One hyperparameter: its default, and a check ``(name, value) -> canonical value``
    that raises ValueError naming the value received and what is allowed."""

    default: Any
    check: Callable[[str, Any], Any] | None = None


def check_hparams(model: str, schema: Mapping[str, Hparam], hparams: Mapping[str, Any]) -> dict:
    """``hparams`` over the schema's defaults, each value checked; unknown names fail with
    the allowed ones."""
    for name in hparams:
        if name not in schema:
            raise ValueError(
                f"model {model!r} has no hyperparameter {name!r}; allowed: "
                f"{', '.join(sorted(schema))}"
            )
    out = {}
    for name, param in schema.items():
        value = hparams.get(name, param.default)
        out[name] = param.check(name, value) if param.check is not None else value
    return out


@dataclass
class Trained:
    """A fitted member: the model, its per-epoch history and what the record shows of it."""

    model: Any
    history: dict[str, list[float]]
    fit_seconds: float
    epochs_run: int
    info: dict[str, Any] = field(default_factory=dict)


class ModelKind:
    """Base of every registry entry. Subclasses set ``name``, ``framework`` (the library the
    model runs on: ``keras`` or ``sklearn``, recorded with each member) and implement
    ``check``, ``build``, ``fit``, ``predict``, ``save`` and ``load``."""

    name: str
    framework: str
    needs_image: bool = False
    learns_in_epochs: bool = False  # whether its history has learning curves worth plotting

    # ---------------------------------------------------------------- validation (driver)

    def supports(self, task: Task) -> bool:
        """Whether this kind can learn ``task``."""
        return True

    def defaults(self, task: Task) -> dict[str, Any]:
        """The hyperparameters a member gets when it sets none."""
        return self.check({}, task)

    def check(self, hparams: Mapping[str, Any], task: Task) -> dict[str, Any]:
        """Validated hyperparameters with defaults filled, or ValueError naming the value."""
        raise NotImplementedError

    def check_input(self, hparams: Mapping[str, Any], spec: InputSpec) -> None:
        """Check hyperparameters that depend on the data (column names, image shapes)."""
        if self.needs_image and spec.image_shape is None:
            raise ValueError(f"model {self.name!r} needs image data, got flat features")

    def stage_references(self, hparams: Mapping[str, Any]) -> dict[str, str]:
        """Hyperparameters naming a member of an earlier stage (``STAGE.MEMBER``), whose
        saved model the runner passes instead; most kinds have none."""
        return {}

    def check_reference(self, key: str, ref: str, kind: ModelKind) -> None:
        """Raise ValueError if the member ``ref`` (of ``kind``) cannot serve as ``key``."""

    def example_hparams(self, folder: Path, spec: InputSpec, task: Task) -> dict[str, Any]:
        """Hyperparameters that build this kind on ``spec`` in a scratch ``folder``: the
        defaults, unless it needs more (the contract test uses them)."""
        return {}

    # ------------------------------------------------------------------ life (a worker)

    def setup(self, *, seed: int, cpus: float = 1.0, gpus: float = 0.0) -> dict[str, Any]:
        """Prepare the process for one member (threads, devices, seeds); returns what was set."""
        return {}

    def build(self, spec: InputSpec, task: Task, **hparams: Any) -> Any:
        """An unfitted model for ``spec`` and ``task``."""
        raise NotImplementedError

    def fit(
        self,
        model: Any,
        task: Task,
        train: tuple[Any, Any],
        val: tuple[Any, Any],
        options: Any,
        hparams: Mapping[str, Any],
        *,
        seed: int = 0,
        on_epoch: EpochHook | None = None,
        workdir: Path | None = None,
    ) -> dict[str, list[float]]:
        """Fit ``model`` in place with the training ``options``; returns the per-epoch history.
        ``workdir`` receives extra artifacts (TensorBoard logs); ``on_epoch`` sees each epoch."""
        raise NotImplementedError

    def predict(self, model: Any, X: np.ndarray, task: Task) -> np.ndarray:
        """Predictions in the members' contract: (n, classes) probabilities or (n,) values."""
        raise NotImplementedError

    def save(self, model: Any, folder: Path) -> Path:
        """Write the model into ``folder``; returns the file written."""
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        """The model saved at ``path`` (the file ``save`` returned)."""
        raise NotImplementedError

    def describe(self, model: Any) -> dict[str, Any]:
        """Facts about a fitted model for the record (e.g. its parameter count)."""
        return {}

    def train(
        self,
        spec: InputSpec,
        task: Task,
        hparams: Mapping[str, Any],
        train: tuple[Any, Any],
        val: tuple[Any, Any],
        options: Any,
        *,
        seed: int = 0,
        cpus: float = 1.0,
        gpus: float = 0.0,
        on_epoch: EpochHook | None = None,
        workdir: Path | None = None,
    ) -> Trained:
        """Set up, build and fit one member: the path every trial takes."""
        device = self.setup(seed=seed, cpus=cpus, gpus=gpus)
        model = self.build(spec, task, **hparams)
        start = time.perf_counter()
        history = self.fit(
            model,
            task,
            train,
            val,
            options,
            hparams,
            seed=seed,
            on_epoch=on_epoch,
            workdir=workdir,
        )
        fit_seconds = time.perf_counter() - start
        epochs = len(next(iter(history.values()), [])) if history else 1
        info = {**self.describe(model), **({"device": device} if device else {})}
        return Trained(model, history, fit_seconds, max(epochs, 1), info)


def check_predictions(pred: Any, n_rows: int, task: Task, split: str) -> np.ndarray:
    """A member's predictions held to the members' contract (shape, finite values,
    probability rows in [0, 1] summing to 1); ValueError saying what is wrong."""
    pred = np.asarray(pred, dtype=np.float64)
    shape = (n_rows, task.n_classes) if task.is_classification else (n_rows,)
    if pred.shape != shape:
        raise ValueError(f"{split} predictions have shape {pred.shape}, the contract is {shape}")
    bad = ~np.isfinite(pred)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{split} predictions hold {int(bad.sum())} NaN or infinite value(s), first in "
            f"row {row}"
        )
    if task.is_classification:
        if pred.min() < -1e-6 or pred.max() > 1 + 1e-6:
            raise ValueError(
                f"{split} probabilities must lie in [0, 1], got values from {pred.min():.4g} "
                f"to {pred.max():.4g}"
            )
        sums = pred.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
        if off.size:
            raise ValueError(
                f"{split} probability rows must sum to 1, row {off[0]} sums to {sums[off[0]]:.6g}"
            )
    return pred
