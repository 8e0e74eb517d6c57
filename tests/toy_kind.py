"""A model kind from outside ``models/``, as a user would write one: nearest class centroids
(classification) or least squares (regression) in NumPy, saved as JSON. Importing this module
registers it (``runner.model_modules=[toy_kind]`` makes the runner and its workers do so)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from toy_model import ToyModel  # a helper module beside it: served models ship it too

import models
from models.base import InputSpec, Task, check_choice, check_float, check_int
from models.kind import EpochHook, Hparam, ModelKind, check_hparams

# ``corrupt`` breaks the members' contract on purpose (the runner must fail such a member)
CORRUPTIONS = ("none", "nan_values", "wrong_shape", "unnormalised", "squeezed", "lossy_save")
SCHEMA = {
    "temperature": Hparam(1.0, lambda name, v: check_float(name, v, 1e-6, 1e6)),
    "corrupt": Hparam("none", lambda name, v: check_choice(name, v, CORRUPTIONS)),
    # > 0: a fit on more rows than this fails (a bagged member's refit on all rows, say)
    "max_rows": Hparam(0, lambda name, v: check_int(name, v, 0)),
}


class ToyKind(ModelKind):
    """The toy kind: one fit, no epochs, a JSON file."""

    name = "toy"
    framework = "numpy"

    def check(self, hparams: Mapping[str, Any], task: Task) -> dict[str, Any]:
        return check_hparams(self.name, SCHEMA, hparams)

    def build(self, spec: InputSpec, task: Task, **hparams: Any) -> dict[str, Any]:
        return {"task": task, **self.check(hparams, task)}

    def fit(
        self,
        model,
        task,
        train,
        val,
        options,
        hparams,
        *,
        seed: int = 0,
        on_epoch: EpochHook | None = None,
        workdir: Path | None = None,
    ):
        X, y = np.asarray(train[0], dtype=np.float64), np.asarray(train[1])
        if 0 < model["max_rows"] < len(X):
            raise ValueError(f"toy: {len(X)} training rows, more than max_rows={model['max_rows']}")
        mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-9
        Z = (X - mean) / scale
        params: dict[str, Any] = {
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "temperature": model["temperature"],
            "corrupt": model["corrupt"],
        }
        if task.is_classification:
            params["centroids"] = [Z[y == k].mean(axis=0).tolist() for k in range(task.n_classes)]
        else:
            params["coef"] = np.linalg.lstsq(np.c_[Z, np.ones(len(Z))], y, rcond=None)[0].tolist()
        model["fitted"] = ToyModel(params)
        pred = ToyModel({**params, "corrupt": "none"}).predict(val[0])
        if task.is_classification:
            loss = float(-np.mean(np.log(np.clip(pred[np.arange(len(val[1])), val[1]], 1e-15, 1))))
        else:
            loss = float(np.mean((pred - val[1]) ** 2))
        if on_epoch is not None:
            on_epoch(1, {"val_loss": loss})
        return {"val_loss": [loss]}

    def predict(self, model: Any, X: np.ndarray, task: Task) -> np.ndarray:
        fitted = model["fitted"] if isinstance(model, dict) else model
        return fitted.predict(X)

    def save(self, model: Any, folder: Path) -> Path:
        path = Path(folder) / "toy.json"
        params = model["fitted"].params
        if params.get("corrupt") == "lossy_save":  # forgets the scaling: loads as another model
            params = {**params, "scale": [1.0] * len(params["scale"])}
        path.write_text(json.dumps(params))
        return path

    def load(self, path: Path) -> ToyModel:
        return ToyModel(json.loads(Path(path).read_text()))


models.register(ToyKind(), __name__)
