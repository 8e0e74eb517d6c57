"""A Tune searcher scored on a trial's final result only (``search.metric=final_val_...``,
or ``val_loss``, whose per-epoch values a scheduler's stop would otherwise hand it).

Only a trial's last result holds a ``final_*`` score. Tune checks every result for the metric its
searcher declares, and Optuna reads the metric from every result (to prune on): both fail
on the per-epoch results before it. This wrapper declares no metric to Tune and lets the
searcher it wraps hear only the results that hold its own.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher


class FinalScoreSearch(Searcher):
    """``searcher`` (which knows its metric and mode) told only the results holding its metric."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        super().__init__(metric=None, mode=None)

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Pass Tune's search space on (the wrapped searcher keeps its own metric and mode)."""
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict | None:
        """The wrapped searcher's next sample."""
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Forward a result that holds the score; per-epoch results do not."""
        if self.searcher.metric in result:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Forward the trial's final result; a trial a scheduler stopped ends on an epoch's
        result instead, whose loss is in other units than a final score (a standardised
        target's, with any penalty): the searcher hears none, and Optuna records it pruned."""
        final = result if result and result.get("final") else None
        self.searcher.on_trial_complete(trial_id, result=final, error=error)

    def get_state(self) -> dict:
        """Nothing of its own to keep: Tune saves the wrapped searcher apart."""
        return {}

    def set_state(self, state: dict) -> None:
        """Nothing of its own to restore."""
