"""The model-kind contract: one object per registry entry owns a member's whole life.

An entry validates its hyperparameters (a schema of defaults and checks, Keras-free so the
driver can validate configs before anything starts), builds the model, fits it with the
training options, predicts in the members' format, and saves and loads it. Everything that
trains or serves a member (the runner's trial, the exported ensemble, the benchmarks) goes
through these methods, so nothing outside ``models/`` needs to know what kind a model is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.base import InputSpec, Task, check_finite, check_labels
from models.member import Member
from models.tabular import TablePrep, TargetScaler, is_table

# A hook called after each epoch with its 1-based number and its scalar logs; a true return
# asks a member that learns in epochs to stop after this one (a sweep's time limit).
EpochHook = Callable[[int, dict[str, float]], "bool | None"]


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
    """A fitted member (``member.model`` is the kind's model), its per-epoch history and what
    the record shows of it. The history is the model's own: a member that learnt a
    standardised (or log) target has its errors in those units; ``errors_in_units(
    trained.member.target, trained.history)`` gives them in the target's."""

    member: Member
    history: dict[str, list[float]]
    fit_seconds: float
    epochs_run: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        """The kind's own fitted model."""
        return self.member.model


class ModelKind:
    """Base of every registry entry. Subclasses set ``name``, ``framework`` (the library the
    model runs on: ``keras`` or ``sklearn``, recorded with each member) and implement
    ``check``, ``build``, ``fit``, ``predict``, ``save`` and ``load``."""

    name: str
    framework: str
    needs_image: bool = False
    learns_in_epochs: bool = False  # whether its history has learning curves worth plotting
    table_encoding: str = "onehot"  # how it reads categories of table rows: onehot, ordinal
    scales_target: bool = False  # learns a standardised regression target (neural nets)
    reads_missing: bool = True  # takes NaN cells (trees do; a neural net's loss would not show it)
    requires: tuple[str, ...] = ()  # distributions a served model of this kind needs

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

    def learns_soft_targets(self) -> bool:
        """Whether ``fit`` takes class probabilities (n, classes) as targets: a student
        distilled from an ensemble learns its soft predictions then, else its top class."""
        return False

    def relative_cost(
        self, epochs: int, hparams: Mapping[str, Any] | None = None, rows: int | None = None
    ) -> float:
        """A rough guess of a member's training time against other kinds' (in epochs of a
        small net; a one-shot fit of no known size is 1), so that the runner starts the
        longest trials first and they do not end last, or, under a time limit, the cheapest
        first. ``rows``: the training rows, for kinds whose cost grows faster than theirs."""
        if not self.learns_in_epochs:
            return 1.0
        return float(max(epochs, 1) * (10 if self.needs_image else 1))

    def refit_params(
        self,
        hparams: Mapping[str, Any],
        training: Mapping[str, Any],
        fits: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The hyperparameters and training options (as params) that fit this member once on
        all its rows, none held out to stop on, given what its fold fits' records (``fits``)
        say they kept. Kinds that fit the same way on any rows keep them."""
        return dict(hparams), dict(training)

    def stage_references(self, hparams: Mapping[str, Any]) -> dict[str, str]:
        """Hyperparameters naming a member of an earlier stage (``STAGE.MEMBER``), whose
        saved model the runner passes instead; most kinds have none."""
        return {}

    def file_hparams(self) -> tuple[str, ...]:
        """Hyperparameters that may name a local file (a runner resolves a relative path
        against the directory the command ran in: its workers run elsewhere)."""
        return ()

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

    def before_fit(
        self,
        spec: InputSpec,
        task: Task,
        hparams: Mapping[str, Any],
        train: tuple[Any, Any],
        options: Any,
        workdir: Path | None,
    ) -> dict[str, Any]:
        """Work on the encoded training rows before the model is built (a learning-rate
        finder); returns facts for the record."""
        return {}

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
        log_target: bool = False,
    ) -> Trained:
        """Set up, build and fit one member: the path every trial takes. Raw table rows are
        encoded by a ``TablePrep`` fitted on the training rows; a regression target is
        standardised (after ``log1p`` with ``log_target``) for kinds that ``scales_target``,
        or whenever ``log_target``; both become part of the returned member."""
        (X, y), (X_val, y_val) = train, val
        rows = (list, tuple)  # rows or labels as Python sequences
        X, X_val = (
            np.asarray(v, dtype=np.float32) if isinstance(v, rows) else v for v in (X, X_val)
        )
        y, y_val = (np.asarray(v) if isinstance(v, rows) else v for v in (y, y_val))
        check_labels(y, task, "training", every_class=True)
        check_labels(y_val, task, "validation")
        device = self.setup(seed=seed, cpus=cpus, gpus=gpus)
        target = None
        if not task.is_classification and (self.scales_target or log_target):
            target = TargetScaler.fit(y, log=log_target)
        prep = None
        if is_table(X):
            prep = TablePrep(self.table_encoding)
            # wide text read by its mean target as the member learns it (log1p with log_target)
            y_read = y if target is None else target.forward(y)
            X = prep.fit_transform(X, y_read, task.is_classification)
            X_val = prep.transform(X_val)
            spec = prep.input_spec(X)
        else:
            if not self.reads_missing:
                check_finite(X, "training")
                check_finite(X_val, "validation")
            if spec.mean is None and np.ndim(X) == 2:  # a spec made by hand: as the runner's
                spec = spec.with_statistics(X)
        if target is not None:
            y, y_val = target.forward(y), target.forward(y_val)
        found = self.before_fit(spec, task, hparams, (X, y), options, workdir)
        model = self.build(spec, task, **hparams)
        start = time.perf_counter()
        history = self.fit(
            model,
            task,
            (X, y),
            (X_val, y_val),
            options,
            hparams,
            seed=seed,
            on_epoch=on_epoch if target is None or on_epoch is None else in_units(target, on_epoch),
            workdir=workdir,
        )
        fit_seconds = time.perf_counter() - start
        epochs = len(next(iter(history.values()), [])) if history else 1
        info = {**found, **self.describe(model), **({"device": device} if device else {})}
        if prep is not None:
            info["n_encoded_features"] = spec.n_features
            info["dropped_columns"] = dict(prep.dropped)
        named = None if prep is not None else spec.feature_names
        shape = spec.image_shape if spec.pixel_range is not None else None
        resizes = shape is not None and spec.resizes_images
        member = Member(self, model, prep, target, spec.pixel_range, named, shape, resizes)
        return Trained(member, history, fit_seconds, max(epochs, 1), info)


def in_units(target: TargetScaler, on_epoch: EpochHook) -> EpochHook:
    """``on_epoch`` seeing a standardised target's epoch errors in the target's units, as the
    member's final scores are (``errors_in_units``). The loss stays the model's own."""

    def report(epoch: int, metrics: dict[str, float]) -> bool:
        return on_epoch(epoch, errors_in_units(target, metrics))

    return report


def errors_in_units(target: TargetScaler | None, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Epoch errors (``rmse``, ``mae`` and their ``val_`` twins; one value or a curve per key)
    of a member that learnt a standardised target, in the target's units; after a log target,
    in log1p units and named so (``rmse_log1p``). Without a scaler, ``metrics`` as they are."""
    if target is None:
        return dict(metrics)
    out = {}
    for key, value in metrics.items():
        if key.removeprefix("val_") in ("rmse", "mae"):
            key = f"{key}_log1p" if target.log else key
            if isinstance(value, (list, tuple)):
                value = [v * target.scale for v in value]
            else:
                value = value * target.scale
        out[key] = value
    return out


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
