"""Tune events on the driver -> run-tree calls: each trial mirrored as a nested member run.

The callback only translates; what is written, and the members' records, belong to the
``RunTree``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from runner.candidates import HeldPredictions
from runner.contracts import (
    REPLAYED,
    TrialInput,
    TrialResult,
    split_fold_label,
    trial_label,
    unpack_member,
)
from runner.driver_memory import release_freed
from runner.errors import store_error
from runner.runtree import RunTree
from runner.spec import MemberSpec, config_hash

CONTROL_KEYS = {
    *AUTO_RESULT_KEYS,
    "epoch",
    "final",
    "done",
    "trial_id",
    "experiment_tag",
    "skipped",
}


def error_reason(trial: Any) -> str:
    """The exception line of a failed trial's error (Tune writes it locally first)."""
    text = ""
    if trial.error_file and Path(trial.error_file).is_file():
        text = Path(trial.error_file).read_text()
    text = text or str(trial.get_error() or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", line):
            return line
    return lines[-1] if lines else "unknown error"


def epoch_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one reported epoch worth a metric (Tune's bookkeeping left out)."""
    return {
        k: v
        for k, v in result.items()
        if k not in CONTROL_KEYS
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and v == v  # NaN cells of a results table: the key was not reported that epoch
    }


def label_of(trial: Any) -> str:
    """A Tune trial's member label: its member's name, ``NAME-K`` for search sample K."""
    return trial_label(unpack_member(trial.config["member"]), trial.experiment_tag)


def _store_guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Run a Tune event handler unless the store already failed. A store failure inside it is
    kept on the callback, not raised: Tune catches what ``on_trial_complete`` raises, logs it
    with a traceback and fails a trial that did finish. ``on_step_end`` raises it instead,
    out of ``Tuner.fit``, once Tune has saved its state."""

    @functools.wraps(method)
    def guarded(self: MemberCallback, *args: Any, **kwargs: Any) -> None:
        if self.store_failure is not None:
            return
        try:
            method(self, *args, **kwargs)
        except Exception as err:
            if store_error(err) is None:
                raise
            self.store_failure = err

    return guarded


RELEASE_EVERY = 100  # completed trials between handing the driver's free heap back to the OS


class MemberCallback(Callback):
    """Mirrors each trial of one stage into the run tree."""

    def __init__(
        self,
        tree: RunTree,
        members: Sequence[MemberSpec],
        stage: str | None = None,
        held: HeldPredictions | None = None,
    ) -> None:
        self.tree = tree
        self.stage = stage
        self.held = held  # lets go of the predictions of members outside the candidates
        self.hashes = {m.name: m.config_hash for m in members}
        self.run_ids: dict[str, str] = {}  # trial id -> this attempt's run
        self.store_failure: BaseException | None = None
        self.completed = 0  # trials completed in this attempt

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Create the member runs whose trials have run long enough to show; stop the Tune
        run with the store failure an event handler met, if any."""
        self._create_due()
        if self.store_failure is not None:
            raise self.store_failure

    @_store_guarded
    def _create_due(self) -> None:
        self.tree.create_due()

    @_store_guarded
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial (or a retry of it) starts: open a fresh member run for this attempt."""
        config = unpack_member(trial.config["member"])
        member = TrialInput.from_config(config)
        run_id = self.tree.open_member(
            label_of(trial),
            member,
            trial_id=trial.trial_id,
            attempt=trial.run_metadata.num_failures + 1,
            config_hash=config_hash(config) if member.searched else self.hashes[member.name],
            stage=self.stage,
        )
        if run_id is not None:
            self.run_ids[trial.trial_id] = run_id

    @_store_guarded
    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        """One epoch's metrics; the final result is logged on completion."""
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or result.get("final"):
            return
        epoch = int(result.get("epoch", 0))
        self.tree.log_epoch(run_id, epoch_metrics(result), epoch, result if epoch == 1 else None)

    @_store_guarded
    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log the checkpoint's model, predictions and final scores; or, when a scheduler
        stopped the trial early, end its run KILLED."""
        self.completed += 1
        if self.completed % RELEASE_EVERY == 0:
            release_freed(collect=False)
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None:
            return
        label, model = label_of(trial), trial.config["member"]["model"]
        result = trial.last_result or {}
        checkpoint = trial.checkpoint
        if result.get("skipped"):
            self.tree.skip_member(run_id, label, model, str(result["skipped"]))
            return
        if not result.get("final") or checkpoint is None:
            self.tree.stop_member(run_id, label, model, result.get("epoch"))
            return
        self._finish(run_id, label, model, checkpoint, result)

    def replay(self, result: Any) -> None:
        """A trial Tune finished whose member run never reached MLflow (the store failed for
        good, or the driver died first): log it now, epochs included, from Tune's result
        and checkpoint, so a resume loses nothing and doubles nothing."""
        metrics = result.metrics or {}
        if not result.config or not metrics.get("final") or result.checkpoint is None:
            return
        config = unpack_member(result.config["member"])
        label = trial_label(config, metrics.get("experiment_tag", "0"))
        if label in self.tree.records or label in self.tree.finished:
            return
        member = TrialInput.from_config(config)
        run_id = self.tree.open_member(
            label,
            member,
            trial_id=str(metrics.get("trial_id", "")),
            attempt=1,
            config_hash=config_hash(config) if member.searched else self.hashes[member.name],
            stage=self.stage,
        )
        if run_id is None:
            return
        frame = result.metrics_dataframe
        rows = [] if frame is None else frame.to_dict("records")
        for row in rows:
            if not row.get("final") and row.get("epoch") == row.get("epoch"):
                epoch = int(row["epoch"])
                self.tree.log_epoch(run_id, epoch_metrics(row), epoch, row if epoch == 1 else None)
        self.tree.tag(run_id, REPLAYED, "logged from Tune's checkpoint on resume")
        self._finish(run_id, label, member.model, result.checkpoint, metrics)

    def _finish(
        self, run_id: str, label: str, model: str, checkpoint: Any, result: Mapping[str, Any]
    ) -> None:
        """Log a finished trial's checkpoint and final scores through the run tree."""
        # on this machine's disk as_directory gives the checkpoint itself, which outlives the
        # trial: stage references may point at its saved model
        local = Path(checkpoint.path).is_dir()
        with checkpoint.as_directory() as path:
            final = {k: v for k, v in result.items() if k.startswith("final_")}
            record = self.tree.finish_member(
                run_id, label, model, TrialResult.read(path), final, local=local
            )
        if self.held is not None and split_fold_label(label) is None:
            self.held.add(record)

    @_store_guarded
    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The trial failed and will be retried: this attempt's run ends FAILED."""
        run_id = self.run_ids.pop(trial.trial_id, None)
        if run_id is not None:
            self.tree.fail_attempt(run_id)

    @_store_guarded
    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The trial failed for good: mark its run FAILED with the reason."""
        label = label_of(trial)
        if label in self.tree.finished:
            return
        self.tree.fail_member(
            self.run_ids.get(trial.trial_id),
            label,
            trial.config["member"]["model"],
            error_reason(trial),
        )
