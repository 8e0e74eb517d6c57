"""ASHA as the runner's searches use it: never stopping a trial on its final report or at
its last epoch (the last it is set to train, or the one early stopping or the sweep's
deadline ends it at). A rung there (a sample whose epochs equal the grace period; a scikit-learn
member's single report) would throw away a fully trained model and its predictions, and the
saving of them is all that is left of the trial. Imported only once Ray runs (Tune pickles
the scheduler, so the class lives at module level)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from runner.contracts import unpack_member


def last_epoch(config: Mapping[str, Any]) -> int:
    """The epochs a trial's member is set to train (its sampled ``training.epochs``); 1 for
    a kind that fits once (scikit-learn, boosters), whose one report is its last."""
    import models

    member = unpack_member(config["member"])
    try:
        if not models.get(member["model"]).learns_in_epochs:
            return 1
    except (KeyError, ValueError):  # not a kind this process knows: its epochs decide
        pass
    training = member.get("training") or {}
    return int(training.get("epochs") or 1)


class FinalKeepingASHA(ASHAScheduler):
    """ASHAScheduler whose STOP becomes CONTINUE on a trial's final or last-epoch report."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """ASHA's decision, except at the end of the trial's training."""
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and (
            result.get("final")
            or result.get("last_epoch")  # early stopping or the deadline ends it here
            or result.get("epoch", 0) >= last_epoch(trial.config)
        ):
            self._num_stopped -= 1
            return TrialScheduler.CONTINUE
        return decision
