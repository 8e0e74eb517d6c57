"""Gradient-boosted trees from LightGBM, XGBoost and CatBoost through their scikit-learn APIs,
saved in each library's own model format (no pickle).

The libraries are imported when a member of theirs is checked or trained, so a sweep without
them pays nothing. Each trains on the threads its trial was granted (``n_jobs`` or
``thread_count`` follow the trial's CPUs unless set) and reads table categories as integer
codes (``table_encoding="ordinal"``), which trees split on. ``early_stopping_rounds=N``
(every library's own name for it) stops adding trees once N rounds did not improve the loss
on the member's validation rows (a bagged member's held-out fold), and keeps the best round:
the number of trees then fits the table, small or large, as Keras members' early stopping does.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.base import InputSpec, Task, check_hparam_names
from models.deadline import Deadline, current_deadline
from models.kind import EpochHook, Trained
from models.shallow import SklearnKind, _keras_style

STOP_ROUNDS = "early_stopping_rounds"
TREE_COUNTS = ("n_estimators", "iterations", "num_boost_round", "num_trees")
# Settings the check's fit on made-up rows leaves out or cannot judge. Those that pick the
# hardware a trial trains on (a GPU node's, maybe not the driver's) and those sized to the
# real columns (the made-up rows have 3) skip the fit: their names are checked, their values
# are the trial's to judge. Those that need validation rows are left out of the fit.
HARDWARE = ("device", "device_type", "task_type", "devices", "gpu_id", "gpu_ram_part")
PER_COLUMN = (
    "monotone_constraints",
    "interaction_constraints",
    "feature_weights",
    "cat_features",
    "text_features",
    "embedding_features",
    "ignored_features",
    "per_float_feature_quantization",
    "forced_splits",
)
NEEDS_VALIDATION = (STOP_ROUNDS, "use_best_model", "od_type", "od_wait", "od_pval")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 goes to the null device meanwhile (what C++ code writes there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


CATBOOST_ITERATIONS = 1000  # CatBoost's rounds when ``iterations`` is not set


def _lightgbm_stop(deadline: Deadline, stops_early: bool) -> Any:
    """A LightGBM callback ending training at the round after ``deadline`` passed. With
    early stopping it keeps the best round so far on the first validation metric (the one
    the early stopping watches first), not the last: as the fit would have kept at its end."""
    from lightgbm.callback import EarlyStopException

    best: dict[str, Any] = {}

    def stop_lightgbm(env: Any) -> None:
        held = [r for r in env.evaluation_result_list or () if r[0] != "training"]
        if stops_early and held:
            score, higher = held[0][2], held[0][3]
            if not best or (score > best["score"] if higher else score < best["score"]):
                best.update(score=score, iteration=env.iteration, results=list(held))
        rounds = env.iteration + 1 - env.begin_iteration
        if deadline.reached(rounds, total=env.end_iteration - env.begin_iteration):
            if best:  # the trees up to the best round are kept, as early stopping's are
                raise EarlyStopException(best["iteration"], best["results"])
            raise EarlyStopException(env.iteration, env.evaluation_result_list or [])

    return stop_lightgbm


@dataclass(frozen=True, eq=False)
class BoosterKind(SklearnKind):
    """One library's boosted trees: ``module`` and the class names of its estimators;
    ``threads`` names its thread-count parameter; ``file`` is the saved model's name."""

    module: str = ""
    classifier_name: str = ""
    regressor_name: str = ""
    threads: str = "n_jobs"
    file: str = "model.txt"
    framework: str = "boosters"
    table_encoding: str = "ordinal"
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.module,)

    def _class(self, task: Task) -> type:
        try:
            lib = importlib.import_module(self.module)
        except ImportError as err:
            raise ValueError(
                f"model {self.name!r} needs the {self.module} package, which is not installed "
                f"({err}); pip install {self.module}"
            ) from None
        return getattr(lib, self.classifier_name if task.is_classification else self.regressor_name)

    def supports(self, task: Task) -> bool:
        return True

    def _estimator(self, task: Task, hparams: Mapping[str, Any]) -> Any:
        cls = self._class(task)
        if self.module == "catboost":  # CatBoost's get_params lists only what was set
            allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
        else:
            allowed = set(cls().get_params(deep=False))
        allowed.add(STOP_ROUNDS)  # LightGBM takes it as a keyword for its booster's params
        allowed.update(self.params)  # this entry's own (LightGBM's verbose: a keyword too)
        check_hparam_names(self.name, hparams, allowed)
        return cls(**{**self.params, **hparams})

    def check(self, hparams: Mapping[str, Any], task: Task) -> dict[str, Any]:
        """Validated names, and values: the library checks those only when it fits, so the
        member is fitted here on a few made-up rows (a value it refuses fails now, in one
        line, not in a trial)."""
        self._estimator(task, hparams)
        nan_by_default = {  # XGBoost's missing=nan: the marker of a missing value
            k for k, v in self.defaults(task).items() if isinstance(v, float) and np.isnan(v)
        }
        for key, value in hparams.items():
            if isinstance(value, float) and not np.isfinite(value):
                if key in nan_by_default and np.isnan(value):
                    continue
                raise ValueError(f"model {self.name!r}: {key} must be finite, got {value!r}")
        self._fit_made_up_rows(task, hparams)
        return dict(hparams)

    def _fit_made_up_rows(self, task: Task, hparams: Mapping[str, Any]) -> None:
        """Fit ``hparams`` on made-up rows (every class three times over; a regression
        target inside (0, 1), which every objective takes): one thread, two trees, quiet."""
        if any(k in hparams for k in (*HARDWARE, *PER_COLUMN)):
            return
        params = {k: v for k, v in hparams.items() if k not in NEEDS_VALIDATION}
        counts = [k for k in TREE_COUNTS if k in params]
        if all(isinstance(params[k], int) and params[k] > 0 for k in counts):
            # two trees say as much about the other values as thousands (a bad count stays)
            for key in counts:
                del params[key]
            params["iterations" if self.module == "catboost" else "n_estimators"] = 2
        params[self.threads] = 1
        rng = np.random.default_rng(0)
        n = max(30, 3 * (task.n_classes or 0))
        X = rng.normal(size=(n, 3))
        y = np.arange(n) % task.n_classes if task.is_classification else rng.uniform(0.05, 0.95, n)
        try:
            with _native_stderr_silenced():  # LightGBM also prints its refusal from C++
                self._class(task)(**{**self.params, **params}).fit(X, y)
        except Exception as err:  # each library raises its own types
            text = " ".join(str(err).split()) or type(err).__name__
            raise ValueError(
                f"model {self.name!r}: {self.module} refuses these settings: {text[:300]}"
            ) from None

    def defaults(self, task: Task) -> dict[str, Any]:
        """The library's defaults, with this entry's overrides."""
        return {**self._estimator(task, {}).get_params(deep=False), **self.params}

    def train(
        self,
        spec: InputSpec,
        task: Task,
        hparams: Mapping[str, Any],
        *args: Any,
        cpus: float = 1.0,
        **kwargs: Any,
    ) -> Trained:
        """Train on the trial's CPUs: the library's thread count (unless set) is the share."""
        hparams = {self.threads: max(1, int(cpus)), **hparams}
        return super().train(spec, task, hparams, *args, cpus=cpus, **kwargs)

    def build(self, spec: InputSpec, task: Task, **hparams: Any) -> Any:
        """An unfitted estimator of the library (no scaling pipeline: trees need none)."""
        return self._estimator(task, hparams)

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
        """Fit once with the seed; with ``early_stopping_rounds`` the validation rows decide
        when to stop adding trees (the best round is kept)."""
        seed_key = "random_seed" if self.module == "catboost" else "random_state"
        model.set_params(**{seed_key: seed})
        deadline = current_deadline()
        stop = self._deadline_callbacks(model, deadline, bool(hparams.get(STOP_ROUNDS)))
        try:
            if hparams.get(STOP_ROUNDS):
                if self.module == "catboost":
                    model.fit(*train, eval_set=val, **stop)
                elif self.module == "xgboost":
                    model.fit(*train, eval_set=[val], verbose=False)
                elif "eval_X" in inspect.signature(model.fit).parameters:  # LightGBM >= 4.7
                    model.fit(*train, eval_X=(val[0],), eval_y=(val[1],), **stop)
                else:
                    model.fit(*train, eval_set=[val], **stop)
            else:
                model.fit(*train, **stop)
        finally:
            if self.module == "xgboost" and deadline is not None:
                model.set_params(callbacks=None)  # the sweep's, not the model's: not kept
        scores = {
            **_keras_style(task, train[1], self.predict(model, train[0], task)),
            **_keras_style(task, val[1], self.predict(model, val[0], task), prefix="val_"),
        }
        if on_epoch is not None:
            on_epoch(1, scores)
        return {k: [v] for k, v in scores.items()}

    def _deadline_callbacks(
        self, model: Any, deadline: Deadline | None, stops_early: bool = False
    ) -> dict[str, Any]:
        """Keyword arguments for ``model.fit`` that stop adding trees once ``deadline``
        passed (XGBoost takes its callback as a setting of the estimator: set here). With
        early stopping (``stops_early``) the model keeps its best round so far, as it would
        have at its end: XGBoost and CatBoost do so themselves, LightGBM is told it here."""
        if deadline is None:
            return {}
        if self.module == "lightgbm":
            return {"callbacks": [_lightgbm_stop(deadline, stops_early)]}
        if self.module == "xgboost":
            from xgboost.callback import TrainingCallback

            total = model.get_num_boosting_rounds()

            class StopXGBoost(TrainingCallback):
                def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                    return deadline.reached(epoch + 1, total=total)

            model.set_params(callbacks=[StopXGBoost()])
            return {}
        if str(model.get_params().get("task_type") or "CPU").upper() == "GPU":
            return {}  # CatBoost takes no Python callbacks on a GPU: it trains to its end
        params = model.get_params()  # only what was set, under the name it was set by
        counts = [params.get(k) for k in ("iterations", *TREE_COUNTS)]
        total = next((int(c) for c in counts if c), CATBOOST_ITERATIONS)

        class StopCatBoost:
            def after_iteration(self, info: Any) -> bool:  # False stops CatBoost
                return not deadline.reached(int(info.iteration), total=total)

        return {"callbacks": [StopCatBoost()]}

    def describe(self, model: Any) -> dict[str, Any]:
        """The round early stopping kept (None without it), for the record."""
        if self.module == "catboost":
            best = model.get_best_iteration()
        else:
            best = getattr(model, "best_iteration_", None) or getattr(model, "best_iteration", None)
        return {"best_iteration": None if best is None else int(best)}

    def refit_params(
        self,
        hparams: Mapping[str, Any],
        training: Mapping[str, Any],
        fits: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """With early stopping, as many trees as the folds kept on average, and no early
        stopping: there are no held-out rows to watch."""
        kept = [f["best_iteration"] for f in fits if f.get("best_iteration") is not None]
        if not hparams.get(STOP_ROUNDS) or not kept:
            return dict(hparams), dict(training)
        # LightGBM counts the best round from 1, XGBoost and CatBoost index it from 0
        offset = 0 if self.module == "lightgbm" else 1
        trees = max(1, round(float(np.mean(kept)) + offset))
        key = "iterations" if self.module == "catboost" else "n_estimators"
        aliases = {STOP_ROUNDS, "n_estimators", "iterations", "num_boost_round", "num_trees"}
        out = {k: v for k, v in hparams.items() if k not in aliases}
        return {**out, key: trees}, dict(training)

    def save(self, model: Any, folder: Path) -> Path:
        """The library's own model file, plus the task (which estimator class reads it)."""
        path = Path(folder) / self.file
        if self.module == "lightgbm":
            model.booster_.save_model(str(path))
        else:
            model.save_model(str(path))
        task = "classification" if "Classifier" in type(model).__name__ else "regression"
        (Path(folder) / "estimator.txt").write_text(task)
        return path

    def load(self, path: Path) -> Any:
        """The estimator saved at ``path``, ready to predict."""
        task_file = Path(path).parent / "estimator.txt"
        kind = task_file.read_text().strip() if task_file.is_file() else "regression"
        if self.module == "lightgbm":
            import lightgbm

            return lightgbm.Booster(model_file=str(path))
        cls = self._class(Task(kind, 2) if kind == "classification" else Task("regression"))
        model = cls()
        model.load_model(str(path))
        return model

    def predict(self, model: Any, X: np.ndarray, task: Task) -> np.ndarray:
        """(n, classes) probabilities, or (n,) values."""
        if type(model).__name__ == "Booster" and self.module == "lightgbm":
            out = np.asarray(model.predict(X), dtype=np.float64)
            if task.is_classification and len(X) == 0:  # no rows: LightGBM says (0,)
                return np.zeros((0, task.n_classes or 2))
            if task.is_classification and out.ndim == 1:
                out = np.column_stack([1.0 - out, out])
            return out if task.is_classification else out.reshape(len(X))
        if task.is_classification:
            return np.asarray(model.predict_proba(X), dtype=np.float64)
        return np.asarray(model.predict(X), dtype=np.float64).reshape(len(X))


ENTRIES: dict[str, BoosterKind] = {
    e.name: e
    for e in (
        BoosterKind(
            "lightgbm",
            module="lightgbm",
            classifier_name="LGBMClassifier",
            regressor_name="LGBMRegressor",
            params={"verbose": -1},
            file="model.txt",
            cost=("n_estimators", 100, 0.02),
        ),
        BoosterKind(
            "xgboost",
            module="xgboost",
            classifier_name="XGBClassifier",
            regressor_name="XGBRegressor",
            file="model.json",
            cost=("n_estimators", 100, 0.02),
        ),
        BoosterKind(
            "catboost",
            module="catboost",
            classifier_name="CatBoostClassifier",
            regressor_name="CatBoostRegressor",
            threads="thread_count",
            params={"verbose": 0, "allow_writing_files": False},
            file="model.cbm",
            cost=("iterations", 1000, 0.04),
        ),
    )
}
