"""What every model builder receives (input shape, task) and the checks builders share.

Pure Python and NumPy: the driver imports this to validate configs without importing Keras.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

TaskKind = Literal["classification", "regression"]
TASK_KINDS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class Task:
    """What is predicted: class probabilities over ``n_classes``, or one value in target units."""

    kind: TaskKind
    n_classes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {list(TASK_KINDS)}, got {self.kind!r}")
        if self.kind == "classification" and (self.n_classes is None or self.n_classes < 2):
            raise ValueError(f"classification needs n_classes >= 2, got {self.n_classes!r}")

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"


@dataclass(frozen=True)
class InputSpec:
    """Flat numeric features; ``image_shape`` says how to fold them back into (h, w, c) images.

    ``mean`` and ``variance`` are per-feature training statistics, so models can standardise
    their raw inputs inside the graph and a saved model takes raw data.
    """

    n_features: int
    image_shape: tuple[int, int, int] | None = None
    feature_names: tuple[str, ...] | None = None
    mean: np.ndarray | None = field(default=None, compare=False, repr=False)
    variance: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.image_shape is not None and int(np.prod(self.image_shape)) != self.n_features:
            raise ValueError(
                f"image_shape {self.image_shape} does not hold {self.n_features} features"
            )


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ValueError naming it and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float, *, high_open: bool = True) -> float:
    """Return ``value`` as a float in [low, high) (or [low, high]), else raise ValueError."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be a number in [{low}, {high}{bracket}, got {value!r}")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError listing them."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_int_list(name: str, value: Any) -> tuple[int, ...]:
    """Return a non-empty sequence of positive ints as a tuple, else raise ValueError."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if not items or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in items
    ):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    return tuple(int(v) for v in items)


def keyword_names(fn: Callable[..., Any]) -> list[str]:
    """The keyword-only parameter names of ``fn``: a builder's allowed hyperparameters."""
    import inspect

    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def check_hparam_names(model: str, hparams: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise ValueError for the first hyperparameter name the model does not take."""
    allowed = sorted(allowed)
    for name in hparams:
        if name not in allowed:
            raise ValueError(
                f"model {model!r} has no hyperparameter {name!r}; allowed: {', '.join(allowed)}"
            )


@dataclass(frozen=True)
class KerasEntry:
    """A registry entry for a Keras builder: ``check`` is Keras-free, ``build`` imports Keras."""

    name: str
    check_fn: Callable[..., dict[str, Any]]
    build_fn: Callable[..., Any]
    needs_image: bool = False
    kind: str = "keras"
    # optional hooks: check hyperparameters against the data's features; loss weights of a
    # multi-output model; a training procedure of its own (e.g. transfer's two phases)
    input_check_fn: Callable[[dict[str, Any], InputSpec], None] | None = None
    loss_weights_fn: Callable[[dict[str, Any]], list[float] | None] | None = None
    fit_fn: Callable[..., dict[str, list[float]]] | None = None
    # hyperparameters for a smoke build in a scratch folder (the registry contract test
    # uses them for models that need more than their defaults, e.g. a saved base model)
    example_fn: Callable[[Any, InputSpec, Task], dict[str, Any]] | None = None

    def supports(self, task: Task) -> bool:
        """Keras builders here handle both classification and regression."""
        return True

    def check(self, hparams: Mapping[str, Any], task: Task) -> dict[str, Any]:
        """Validated hyperparameters, or ValueError naming the value received."""
        check_hparam_names(self.name, hparams, keyword_names(self.check_fn))
        return self.check_fn(**hparams)

    def check_input(self, hparams: Mapping[str, Any], spec: InputSpec) -> None:
        """Check hyperparameters that depend on the data (column names, shapes)."""
        if self.needs_image and spec.image_shape is None:
            raise ValueError(f"model {self.name!r} needs image data, got flat features")
        if self.input_check_fn is not None:
            self.input_check_fn(dict(hparams), spec)

    def loss_weights(self, hparams: Mapping[str, Any]) -> list[float] | None:
        """Per-output loss weights for compile(), or None for single-output models."""
        return None if self.loss_weights_fn is None else self.loss_weights_fn(dict(hparams))

    def example_hparams(self, folder: Any, spec: InputSpec, task: Task) -> dict[str, Any]:
        """Hyperparameters that build this model on ``spec`` (defaults unless it needs more)."""
        return {} if self.example_fn is None else self.example_fn(folder, spec, task)

    def build(self, spec: InputSpec, task: Task, **hparams: Any) -> Any:
        """An uncompiled ``keras.Model``."""
        if self.needs_image and spec.image_shape is None:
            raise ValueError(f"model {self.name!r} needs image data, got flat features")
        return self.build_fn(spec, task, **hparams)
