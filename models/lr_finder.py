"""The learning-rate finder (Smith 2015; Hands-On ML ch. 11; fast.ai): train a throwaway model
for a few hundred batches while the learning rate grows exponentially, and watch the loss.

Suggestion rule: one tenth of the learning rate at the minimum of the smoothed loss (Hands-On
ML's rule: the best rate is about 10 times lower than where the loss turns back up), never
below the first rate tried. Validated without Keras; Keras is imported inside functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.base import check_int
from models.option_checks import check_option_names, check_positive

if TYPE_CHECKING:
    import keras

LR_FINDER_DEFAULTS: dict[str, Any] = {"min_lr": 1e-6, "max_lr": 1.0, "steps": 100}


@dataclass(frozen=True)
class LRFinderResult:
    """Rates tried (increasing), the smoothed loss after each, and the suggested rate."""

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    suggestion: float
    raw_losses: tuple[float, ...] = ()
    diverged: bool = False  # stopped early: the loss exploded or was not finite


def check_lr_finder(value: Any) -> bool | dict[str, Any]:
    """The canonical lr_finder option: False, or ``{min_lr, max_lr, steps}`` with defaults."""
    if value is None or value is False:
        return False
    if value is True:
        return dict(LR_FINDER_DEFAULTS)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"lr_finder must be true, false or a mapping with min_lr, max_lr, steps, got {value!r}"
        )
    check_option_names("lr_finder", value, LR_FINDER_DEFAULTS)
    options = {**LR_FINDER_DEFAULTS, **value}
    min_lr = check_positive("lr_finder.min_lr", options["min_lr"])
    max_lr = check_positive("lr_finder.max_lr", options["max_lr"])
    if max_lr <= min_lr:
        raise ValueError(f"lr_finder.max_lr must be > min_lr ({min_lr!r}), got {max_lr!r}")
    return {
        "min_lr": min_lr,
        "max_lr": max_lr,
        "steps": check_int("lr_finder.steps", options["steps"], 2),
    }


def take_rows(values: Any, idx: np.ndarray | slice) -> Any:
    """Rows ``idx`` of an array, or of each array in a list, tuple or dict (multi-output)."""
    if isinstance(values, Mapping):
        return {k: take_rows(v, idx) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return type(values)(take_rows(v, idx) for v in values)
    return np.asarray(values)[idx]


def n_rows(values: Any) -> int:
    """Rows of an array, or of the first array in a list, tuple or dict."""
    if isinstance(values, Mapping):
        return n_rows(next(iter(values.values())))
    if isinstance(values, (list, tuple)):
        return n_rows(values[0])
    return len(values)


def suggest_learning_rate(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """One tenth of the rate at the lowest smoothed loss, but at least the first rate tried."""
    return max(float(lrs[0]), float(lrs[int(np.argmin(losses))]) / 10)


def _settable_rate(model: keras.Model, lr: float) -> keras.optimizers.Optimizer:
    """The model's optimiser with its learning rate set to ``lr``; a schedule (which Keras
    will not let us overwrite) is replaced by recompiling with the same optimiser at ``lr``."""
    import keras

    try:
        model.optimizer.learning_rate = lr
    except TypeError:
        config = model.get_compile_config()
        optimizer = model.optimizer.get_config() | {"learning_rate": lr}
        config["optimizer"] = keras.saving.serialize_keras_object(
            type(model.optimizer).from_config(optimizer)
        )
        model.compile_from_config(config)
    return model.optimizer


def find_learning_rate(
    build_model: Callable[[], keras.Model],
    train: tuple[Any, Any],
    *,
    min_lr: float = LR_FINDER_DEFAULTS["min_lr"],
    max_lr: float = LR_FINDER_DEFAULTS["max_lr"],
    steps: int = LR_FINDER_DEFAULTS["steps"],
    batch_size: int = 32,
    smoothing: float = 0.98,
    divergence: float = 4.0,
    seed: int = 0,
) -> LRFinderResult:
    """Train a fresh compiled model from ``build_model`` on ``steps`` shuffled batches, the
    rate rising from ``min_lr`` to ``max_lr`` (any schedule it was compiled with is replaced);
    stop once the smoothed loss exceeds ``divergence`` times its minimum or is not finite.
    A single target array serves every output of a multi-output model."""
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, got min_lr={min_lr!r}, max_lr={max_lr!r}")
    check_int("steps", steps, 2)
    check_int("batch_size", batch_size)
    model = build_model()
    if getattr(model, "optimizer", None) is None:
        raise ValueError("build_model must return a compiled model (see compile_model)")
    optimizer = _settable_rate(model, min_lr)
    x, y = train
    outputs = len(getattr(model, "outputs", None) or [None])
    if outputs > 1 and not isinstance(y, (list, tuple, Mapping)):
        y = (y,) * outputs  # one target for every head, as the members are trained
    n = n_rows(x)
    batch_size = min(batch_size, n)
    rng = np.random.default_rng(seed)
    growth = (max_lr / min_lr) ** (1 / (steps - 1))
    order = np.empty(0, dtype=int)
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, best, diverged = 0.0, math.inf, False
    for step in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        idx, order = order[:batch_size], order[batch_size:]
        lr = min_lr * growth**step
        optimizer.learning_rate = lr
        model.reset_metrics()  # so train_on_batch reports this batch's loss, not a running mean
        loss = float(
            model.train_on_batch(take_rows(x, idx), take_rows(y, idx), return_dict=True)["loss"]
        )
        if not math.isfinite(loss):
            diverged = True
            break
        average = smoothing * average + (1 - smoothing) * loss
        value = average / (1 - smoothing ** (step + 1))  # bias-corrected moving average
        lrs.append(lr)
        raw.append(loss)
        smoothed.append(value)
        best = min(best, value)
        if value > divergence * best:
            diverged = True
            break
    if not lrs:
        raise ValueError(f"the loss was not finite even at min_lr={min_lr!r}; check the data")
    return LRFinderResult(
        lrs=tuple(lrs),
        losses=tuple(smoothed),
        suggestion=suggest_learning_rate(lrs, smoothed),
        raw_losses=tuple(raw),
        diverged=diverged,
    )


def plot_lr_finder(result: LRFinderResult, path: str | Path) -> Path:
    """Write the loss-vs-learning-rate curve (log x axis, suggestion marked) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if result.raw_losses:
        ax.plot(result.lrs, result.raw_losses, color="0.75", lw=0.8, label="batch loss")
    ax.plot(result.lrs, result.losses, color="C0", label="smoothed loss")
    ax.axvline(result.suggestion, color="C3", ls="--", label=f"suggested {result.suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("Learning-rate finder")
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
