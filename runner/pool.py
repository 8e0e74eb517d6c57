"""The ensemble built so far, for an ensemble-aware search (``search.objective=ensemble``,
after Lévesque, Gagné and Sabourin, UAI 2016): a Ray actor holding the validation
predictions of every finished member and search trial. A trial that finishes asks it what
it adds: the cross-fitted validation loss of the greedy ensemble with the trial, and how
much lower that is than without it. The actor takes one trial at a time, so trials on any
number of workers each see the ensemble of those that finished before them. With the
ensemble's ``candidates`` the pool holds only the members that can still be among them,
as the stage will: a trial that cannot adds nothing, and the pool stays that size."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ensembles.honest import cross_fitted_loss
from ensembles.metrics import headline_metric
from ensembles.stage import CandidateLibrary

METHOD = "greedy"


class EnsemblePool:
    """Finished members' validation predictions by label, and the greedy ensemble's
    cross-fitted loss over them."""

    def __init__(
        self,
        y: np.ndarray,
        seed: int = 0,
        folds: int = 5,
        metric: str | None = None,
        keep: int | None = None,
    ) -> None:
        self.y, self.seed, self.folds = y, seed, folds
        self.preds: dict[str, np.ndarray] = {}
        self._loss: float | None = None
        # the stage's pruning rule: ensemble.candidates, and the best by the headline metric
        self.metric, self.keep = metric, keep
        self.library: CandidateLibrary | None = None
        self.gone: set[str] = set()  # labels that can no longer be candidates
        # the predictions' digests, held or gone: a trial scored under its Tune trial id comes
        # back under its member label when the next searched member's run syncs the pool
        self.seen: dict[str, str] = {}

    def _hold(self, label: str, val: np.ndarray) -> None:
        self.preds[label] = np.asarray(val)
        self.seen[_digest(val)] = label
        if self.keep is None:
            return
        if self.library is None:
            metric = headline_metric(np.ndim(val) == 2, self.metric)
            self.library = CandidateLibrary(self.y, metric, self.keep)
        for name in self.library.add(label, val, val):
            del self.preds[name]
            self.gone.add(name)

    def _cross_fitted(self) -> float:
        P = np.stack(list(self.preds.values())).astype(np.float64, copy=False)
        return cross_fitted_loss(METHOD, {}, P, self.y, self.folds, self.seed)

    def sync(self, preds: Mapping[str, np.ndarray]) -> int:
        """Add members that finished outside the search (or in an earlier attempt); returns
        how many the pool holds."""
        new = {
            k: v
            for k, v in preds.items()
            if k not in self.preds and k not in self.gone and _digest(v) not in self.seen
        }
        for label, val in new.items():
            self._hold(label, val)
        if new:
            self._loss = None
        return len(self.preds)

    def add(self, label: str, val: np.ndarray) -> dict[str, Any]:
        """Score a finished trial against the pool, then keep it: the ensemble's loss with
        it, the gain over the pool without it (0 for the first), the pool's size after."""
        if self.preds and self._loss is None:
            self._loss = self._cross_fitted()
        before = self._loss
        self._hold(label, val)
        self._loss = self._cross_fitted()
        return {
            "ensemble_loss": self._loss,
            "ensemble_gain": 0.0 if before is None else before - self._loss,
            "ensemble_pool_size": len(self.preds),
        }


def _digest(val: np.ndarray) -> str:
    """Predictions' identity, whatever their label, at float32 precision: a trial scores its
    float64 predictions, the driver's record holds them as float32."""
    arr = np.ascontiguousarray(val, dtype=np.float32)
    return hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()


NAMESPACE = "runner"  # trials find the pool by name here, whatever namespace the driver has


def start(
    name: str, y: np.ndarray, seed: int, metric: str | None = None, keep: int | None = None
) -> Any:
    """The pool actor named ``name``: the running one, or a new one (holding at most the
    ``keep`` candidates by validation loss and the best by ``metric``). The caller keeps the
    handle for as long as trials may ask the pool."""
    import ray

    actor = ray.remote(num_cpus=0)(EnsemblePool)
    handle = actor.options(name=name, namespace=NAMESPACE, get_if_exists=True)
    return handle.remote(y, seed, metric=metric, keep=keep)


def score(name: str, label: str, val: np.ndarray) -> dict[str, Any]:
    """In a trial: what ``val`` adds to the pool named ``name`` (``EnsemblePool.add``)."""
    import ray

    return ray.get(ray.get_actor(name, namespace=NAMESPACE).add.remote(label, val))
