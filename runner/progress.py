"""The driver's progress view: a live status line on a terminal, plain lines in CI logs.

Every event (a member starts, finishes, fails or is stopped) prints one line with the counts,
the best validation score so far, the elapsed time and an estimate of what is left. On a
terminal a status line under those lines is redrawn every second; when the output is not a
terminal nothing but plain lines is written (no control codes).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

from ensembles.metrics import greater_is_better
from runner.contracts import unpack_member

CLEAR_LINE = "\r\x1b[K"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


class ProgressView(Callback):
    """Counts members pending/running/finished/failed and shows the best validation score."""

    def __init__(
        self,
        total: int,
        metric: str,
        stream: TextIO | None = None,
        live: bool | None = None,
        verbose: int = 1,
        deadline: float | None = None,
        began: float | None = None,
    ) -> None:
        self.total = total
        self.metric = metric
        self.better = greater_is_better(metric)
        self.stream = stream  # None: sys.stdout at print time (Tune pickles its callbacks)
        self.live = live  # None: redraw a status line only when the stream is a terminal
        self.verbose = verbose
        self.running: set[str] = set()
        self.finished = 0
        self.failed = 0
        self.stopped = 0
        self.skipped = 0  # by runner.time_limit: never started, so they set no pace
        self.earlier = 0  # done in an earlier attempt of a resumed sweep (Tune's restore)
        self._restored_counted = False
        self.durations: list[float] = []
        self.best: tuple[float, str] | None = None
        # the clock of the command (``began``, time.time()), as runner.time_limit counts, and its
        # deadline: time left is never more than the limit leaves
        self.start = time.perf_counter() - (max(0.0, time.time() - began) if began else 0.0)
        self.paced_from = time.perf_counter()  # the members' pace: from this view's start
        self.deadline = deadline
        self.last_draw = 0.0
        self.drawn = False

    # -- state -----------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return self.finished + self.failed + self.stopped + self.skipped + self.earlier

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def _is_live(self) -> bool:
        if self.live is None:
            isatty = getattr(self._out(), "isatty", None)
            self.live = bool(isatty and isatty())
        return self.live

    def _left(self) -> str:
        """Time left: the members not yet done, at the pace the done ones went."""
        if self.done >= self.total:
            return "0s"
        paced = self.done - self.earlier - self.skipped
        until = None if self.deadline is None else max(0.0, self.deadline - time.time())
        if not paced:
            return "?" if until is None else f"<{_clock(until)}"
        left = (time.perf_counter() - self.paced_from) / paced * (self.total - self.done)
        return "~" + _clock(left if until is None else min(left, until))

    def status(self) -> str:
        """``3/8 done (1 failed) | 2 running, 3 pending | best val accuracy 0.9722 (mlp) |
        0:42 elapsed, ~1:10 left``"""
        elapsed = time.perf_counter() - self.start
        pending = max(self.total - self.done - len(self.running), 0)
        extra = []
        if self.failed:
            extra.append(f"{self.failed} failed")
        if self.stopped:
            extra.append(f"{self.stopped} stopped early")
        if self.skipped:
            extra.append(f"{self.skipped} skipped")
        if self.earlier:
            extra.append(f"{self.earlier} in an earlier attempt")
        counts = f"{self.done}/{self.total} done" + (f" ({', '.join(extra)})" if extra else "")
        best = (
            f"best val {self.metric} {self.best[0]:.4f} ({self.best[1]})"
            if self.best
            else f"best val {self.metric} -"
        )
        return (
            f"{counts} | {len(self.running)} running, {pending} pending | {best} | "
            f"{_clock(elapsed)} elapsed, {self._left()} left"
        )

    def short_status(self) -> str:
        """``3/8 done, 1 failed, 2 running | best 0.9722 mlp | 42s, ~1:10 left`` for log lines."""
        elapsed = time.perf_counter() - self.start
        parts = [f"{self.done}/{self.total} done"]
        parts += [
            f"{n} {what}"
            for n, what in (
                (self.failed, "failed"),
                (self.stopped, "stopped"),
                (self.skipped, "skipped"),
                (self.earlier, "earlier"),
            )
        ]
        parts = [p for p in parts if not p.startswith("0 ")]
        parts.append(f"{len(self.running)} running")
        best = f"best {self.best[0]:.4f} {self.best[1]}" if self.best else "best -"
        return f"{', '.join(parts)} | {best} | {_clock(elapsed)}, {self._left()} left"

    # -- drawing ---------------------------------------------------------------------------

    def _event(self, text: str) -> None:
        if self.verbose < 1:
            return
        out = self._out()
        if self._is_live():
            out.write(f"{CLEAR_LINE}{text}\n{self.status()}")
            self.drawn = True
            self.last_draw = time.perf_counter()
        else:
            out.write(f"[{self.short_status()}] {text}\n")
        out.flush()

    def _redraw(self) -> None:
        if self.verbose < 1 or not self._is_live():
            return
        now = time.perf_counter()
        if now - self.last_draw >= 1.0:
            self._out().write(CLEAR_LINE + self.status())
            self._out().flush()
            self.drawn = True
            self.last_draw = now

    # -- Tune callback hooks ---------------------------------------------------------------

    def next_run(self) -> None:
        """Another Tune run of the stage starts: its restored trials are counted anew."""
        self._restored_counted = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._restored_counted:
            return
        self._restored_counted = True  # before any trial of this attempt: Tune's restored ones
        for trial in trials:
            if getattr(trial, "status", None) == "TERMINATED":
                self.earlier += 1
                self._rank(trial, trial.last_result or {})

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._redraw()

    def _rank(self, trial: Any, result: dict[str, Any]) -> float | None:
        """The trial's final validation score, kept as the best if it is; None without one."""
        from runner.callback import label_of

        if unpack_member(trial.config["member"]).get("refit"):  # no held-out rows to rank by
            return None
        score = result.get(f"final_val_{self.metric}")
        if score is not None and (
            self.best is None or (score > self.best[0] if self.better else score < self.best[0])
        ):
            self.best = (float(score), label_of(trial))
        return score

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from runner.callback import label_of

        self.running.add(trial.trial_id)
        self._event(f"{label_of(trial)} ({trial.config['member']['model']}) started")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from runner.callback import label_of

        self.running.discard(trial.trial_id)
        name = label_of(trial)
        result = trial.last_result or {}
        if result.get("earlier"):  # Tune had lost track of it; its run is kept
            self.earlier += 1
            self._event(f"{name} finished in an earlier attempt; kept")
            return
        if result.get("skipped"):
            self.skipped += 1
            self._event(f"{name} skipped: {result['skipped']}")
            return
        if not result.get("final"):
            self.stopped += 1
            self._event(f"{name} stopped early after epoch {result.get('epoch')}")
            return
        self.finished += 1
        seconds = float(result.get("train_seconds", 0.0))
        self.durations.append(seconds)
        if unpack_member(trial.config["member"]).get("refit"):  # no held-out rows to rank by
            self._event(f"{name} finished in {seconds:.1f}s")
            return
        score = self._rank(trial, result)
        shown = "-" if score is None else f"{score:.4f}"
        self._event(f"{name} finished: val {self.metric} {shown} in {seconds:.1f}s")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from runner.callback import error_reason, label_of

        self.running.discard(trial.trial_id)
        self.failed += 1
        self._event(f"{label_of(trial)} FAILED: {error_reason(trial)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from runner.callback import error_reason, label_of

        self.running.discard(trial.trial_id)
        self._event(f"{label_of(trial)} failed: {error_reason(trial)}; retrying")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.drawn and self._is_live():
            self._out().write(CLEAR_LINE + self.status() + "\n")
            self._out().flush()
            self.drawn = False
