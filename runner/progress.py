"""Plain progress lines on the driver: one line per member start and end, safe in CI logs."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray.tune import Callback


class ProgressPrinter(Callback):
    """Prints ``[done/total] member status score (seconds)`` as trials start and end."""

    def __init__(self, total: int, metric: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.metric = metric
        self.stream = stream  # None: sys.stdout at print time (Tune pickles its callbacks)
        self.done = 0
        self.start = time.perf_counter()

    def _line(self, text: str) -> None:
        elapsed = time.perf_counter() - self.start
        print(
            f"[{self.done}/{self.total} {elapsed:6.1f}s] {text}",
            file=self.stream or sys.stdout,
            flush=True,
        )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from runner.plan import member_label

        self._line(f"{member_label(trial)} ({trial.config['member']['model']}) started")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from runner.plan import member_label

        self.done += 1
        result = trial.last_result or {}
        if not result.get("final"):
            self._line(f"{member_label(trial)} stopped early after epoch {result.get('epoch')}")
            return
        score = result.get(f"final_val_{self.metric}")
        shown = "-" if score is None else f"{score:.4f}"
        seconds = result.get("train_seconds", 0.0)
        self._line(f"{member_label(trial)} finished: val {self.metric} {shown} in {seconds:.1f}s")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from runner.tracking import error_reason

        self.done += 1
        from runner.plan import member_label

        self._line(f"{member_label(trial)} FAILED: {error_reason(trial)}")
