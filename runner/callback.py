"""Tune events on the driver -> run-tree calls: each trial mirrored as a nested member run.

The callback only translates; what is written, and the members' records, belong to the
``RunTree``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
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
from runner.store_writer import StoreWriter

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


def held_in(metrics: dict[str, float]) -> dict[str, float]:
    """A refit's epoch metrics as what they are: it holds no rows out, so the scores Keras
    names ``val_*`` are of its own training rows (``train_*``, as its final scores say)."""
    return {(f"train_{k[4:]}" if k.startswith("val_") else k): v for k, v in metrics.items()}


def label_of(trial: Any) -> str:
    """A Tune trial's member label: its member's name, ``NAME-K`` for search sample K."""
    return trial_label(unpack_member(trial.config["member"]), trial.experiment_tag)


log = logging.getLogger(__name__)

RELEASE_EVERY = 100  # completed trials between handing the driver's free heap back to the OS


class MemberCallback(Callback):
    """Mirrors each trial of one stage into the run tree.

    Each Tune event takes what it needs of the trial at once and hands the run-tree calls to
    a ``StoreWriter`` (in a thread for a tracking server): the tree and the records belong to
    the writer until ``flush``, which the sweep calls when the Tune run returns. A store
    failure is raised from ``on_step_end`` (Tune saves its state first) or from ``flush``:
    raised inside ``on_trial_complete``, Tune would log it with a traceback and fail a trial
    that did finish."""

    def __init__(
        self,
        tree: RunTree,
        members: Sequence[MemberSpec],
        stage: str | None = None,
        held: HeldPredictions | None = None,
        background: bool = False,
    ) -> None:
        self.tree = tree
        self.stage = stage
        self.held = held  # lets go of the predictions of members outside the candidates
        self.hashes = {m.name: m.config_hash for m in members}
        self.run_ids: dict[str, str] = {}  # trial id -> this attempt's run (the writer's)
        self.refits: set[str] = set()  # trial ids of refits on all rows (no rows held out)
        self.writer = StoreWriter(background)
        self.completed = 0  # trials completed in this attempt
        self._due_submitted = False

    # Tune pickles its callbacks into tuner.pkl, and a resume replaces them with live ones:
    # the copy leaves out the run tree (the store's URI, with any password in it)
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "tree": None, "held": None}

    def flush(self) -> None:
        """Wait for every write of the events so far; raise the failure that stopped them."""
        self.writer.flush()

    def drop(self) -> None:
        """The Tune run failed: give up the writes not started (a resume logs their trials
        from Tune's checkpoints)."""
        self.writer.drop()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Create the member runs whose trials have run long enough to show; stop the Tune
        run with the store failure met, if any."""
        if not self._due_submitted:
            self._due_submitted = True
            self.writer.submit(self._create_due)
        if self.writer.failure is not None:
            raise self.writer.failure

    def _create_due(self) -> None:
        self._due_submitted = False
        self.tree.create_due()

    def _submit(self, write: Any, *args: Any) -> None:
        """Hand ``write(*args)`` to the writer, stamped with the time the event happened."""
        self.writer.submit(self._at, time.time_ns() // 1_000_000, write, args)

    def _at(self, event_ms: int, write: Any, args: tuple[Any, ...]) -> None:
        self.tree.event_ms = event_ms
        try:
            write(*args)
        finally:
            self.tree.event_ms = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial (or a retry of it) starts: open a fresh member run for this attempt."""
        config = unpack_member(trial.config["member"])
        member = TrialInput.from_config(config)
        self._submit(
            self._open,
            trial.trial_id,
            label_of(trial),
            member,
            trial.run_metadata.num_failures + 1,
            config_hash(config) if member.searched else self.hashes[member.name],
        )

    def _open(
        self, trial_id: str, label: str, member: TrialInput, attempt: int, hash_: str
    ) -> None:
        run_id = self.tree.open_member(
            label, member, trial_id=trial_id, attempt=attempt, config_hash=hash_, stage=self.stage
        )
        if run_id is not None:
            self.run_ids[trial_id] = run_id
            if member.refit:
                self.refits.add(trial_id)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        """One epoch's metrics; the final result is logged on completion."""
        if result.get("final"):
            return
        epoch = int(result.get("epoch", 0))
        where = None
        if epoch == 1:
            where = {"node_ip": result.get("node_ip"), "hostname": result.get("hostname")}
        self._submit(self._epoch, trial.trial_id, epoch_metrics(result), epoch, where)

    def _epoch(
        self, trial_id: str, metrics: dict[str, float], epoch: int, where: dict | None
    ) -> None:
        run_id = self.run_ids.get(trial_id)
        if run_id is not None:
            if trial_id in self.refits:
                metrics = held_in(metrics)
            self.tree.log_epoch(run_id, metrics, epoch, where)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log the checkpoint's model, predictions and final scores; or, when a scheduler
        stopped the trial early, end its run KILLED."""
        self.completed += 1
        if self.completed % RELEASE_EVERY == 0:
            release_freed(collect=False)
        self._submit(
            self._complete,
            trial.trial_id,
            label_of(trial),
            trial.config["member"]["model"],
            dict(trial.last_result or {}),
            trial.checkpoint,
        )

    def _complete(
        self, trial_id: str, label: str, model: str, result: dict, checkpoint: Any
    ) -> None:
        run_id = self.run_ids.get(trial_id)
        if run_id is None:
            return
        if result.get("skipped"):
            self.tree.skip_member(run_id, label, model, str(result["skipped"]))
            return
        if not result.get("final") or checkpoint is None:
            self.tree.stop_member(run_id, label, model, result.get("epoch"))
            return
        try:
            self._finish(run_id, label, model, checkpoint, result)
        except Exception as err:
            if store_error(err) is not None:
                raise
            # the trial's own fault (a checkpoint that cannot be read, say): the member fails,
            # the sweep goes on, as when Tune itself fails a trial
            log.exception("logging finished trial %s failed", label)
            reason = f"logging the finished trial failed: {type(err).__name__}: {err}"
            self.tree.fail_member(run_id, label, model, reason)

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
                scores = held_in(epoch_metrics(row)) if member.refit else epoch_metrics(row)
                self.tree.log_epoch(run_id, scores, epoch, row if epoch == 1 else None)
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

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The trial failed and will be retried: this attempt's run ends FAILED."""
        self._submit(self._recover, trial.trial_id, error_reason(trial), trial.error_file)

    def _recover(self, trial_id: str, reason: str, error_file: str | None) -> None:
        run_id = self.run_ids.pop(trial_id, None)
        if run_id is not None:
            self.tree.fail_attempt(run_id, reason, error_file)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The trial failed for good: mark its run FAILED with the reason."""
        self._submit(
            self._error,
            trial.trial_id,
            label_of(trial),
            trial.config["member"]["model"],
            error_reason(trial),
            trial.error_file,
        )

    def _error(
        self, trial_id: str, label: str, model: str, reason: str, error_file: str | None
    ) -> None:
        if label not in self.tree.finished:
            self.tree.fail_member(self.run_ids.get(trial_id), label, model, reason, error_file)
