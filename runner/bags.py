"""Bagged members on the driver: once every fold of a member finished, stitch the folds'
held-out predictions into out-of-fold predictions over all pooled rows, average their test
predictions, and save the folds' models as one bagged model; the run tree logs the result
on the member's run."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import models
from ensembles.metrics import evaluate
from models.store import folder_bytes
from runner.contracts import MODEL_DIR, TrialResult, cut_short, fold_label
from runner.data import Dataset
from runner.runtree import MemberRecord, RunTree
from runner.spec import MemberSpec


def fold_records(
    member: MemberSpec, records: Mapping[str, MemberRecord]
) -> tuple[list[MemberRecord], list[str], bool]:
    """The finished folds of a bagged member, in fold order, why each other fold is missing
    (empty when the member can be assembled), and whether one was skipped (time limit)."""
    done, missing, skipped = [], [], False
    for k in range(member.folds):
        label = fold_label(member.name, k)
        record = records.get(label)
        if record is None:
            missing.append(f"{label} did not run")
        elif record.status != "FINISHED":
            missing.append(f"{label} {record.status}: {record.error or 'no reason given'}")
            skipped = skipped or record.status == "SKIPPED"
        else:
            done.append(record)
    return done, missing, skipped


def _model_folder(tree: RunTree, record: MemberRecord, into: Path) -> str:
    """A fold's saved model on this machine: Tune's checkpoint, or downloaded from its run."""
    if record.model_path and Path(record.model_path).is_dir():
        return record.model_path
    return tree.client.download_artifacts(record.run_id, MODEL_DIR, str(into))


def assemble(
    tree: RunTree,
    data: Dataset,
    member: MemberSpec,
    folds: Sequence[MemberRecord],
    folder: Path,
) -> tuple[TrialResult, dict[str, float]]:
    """The bagged member as a trial's result written into ``folder`` (predictions, member
    info, the bagged model), and its final scores: out-of-fold on the pooled rows, the mean
    of the folds' models on test."""
    if data.folds is None:
        raise ValueError(f"member {member.name!r} is bagged but the dataset has no folds")
    start = time.perf_counter()
    first = folds[0].val
    oof = np.zeros((len(data.y_val), *np.shape(first)[1:]), dtype=np.float64)
    for k, record in enumerate(folds):
        oof[data.folds == k] = record.val
    by_fold = np.asarray([r.test for r in folds], dtype=np.float64)
    test = np.mean(by_fold, axis=0)
    sources = [_model_folder(tree, r, folder / "folds" / str(k)) for k, r in enumerate(folds)]
    folder.mkdir(parents=True, exist_ok=True)
    models.save_bag(member.model, sources, folder / "bag" / MODEL_DIR)
    info: dict[str, Any] = {
        **member.to_config(),
        "folds": member.folds,
        "fold_runs": [r.run_id for r in folds],
        "train_seconds": float(sum(r.train_seconds or 0.0 for r in folds)),
        "fit_seconds": float(sum(r.fit.get("fit_seconds") or 0.0 for r in folds)),
        "epochs_run": 1,
        "assemble_seconds": time.perf_counter() - start,
        "fingerprint": data.fingerprint,
        "n_features": data.input_spec.n_features,
        "table_columns": list(data.input_spec.feature_names or ())
        if data.input_spec.table
        else None,
        "classes": None if data.task.labels is None else list(data.task.labels),
    }
    cuts = [c for r in folds if (c := cut_short(r.fit))]
    if cuts:  # runner.time_limit stopped a fold early: the fewest it trained
        info["stopped_at_deadline"] = True
        for unit in {u for c in cuts for u in c}:
            info[unit] = min(c[unit] for c in cuts if unit in c)
    cpu = [r.fit.get("train_cpu_seconds") for r in folds]
    if None not in cpu:
        info["train_cpu_seconds"] = float(sum(cpu))
    latency = [r.fit.get("predict_ms_per_1000") for r in folds]
    if None not in latency:  # the bag predicts with every fold's model
        info["predict_ms_per_1000"] = float(sum(latency))
    info["model_bytes"] = folder_bytes(folder / "bag" / MODEL_DIR)
    out = folder / "bag"
    # a regression's fold-by-fold test predictions: its conformal spread is taken per fold
    by_fold = by_fold if test.ndim == 1 else None
    result = TrialResult(oof, test, data.fingerprint, info, out, by_fold)
    result.write(out, data.y_val, data.y_test)
    final = {
        **{f"final_val_{k}": v for k, v in evaluate(data.y_val, oof).items()},
        **{f"final_test_{k}": v for k, v in evaluate(data.y_test, test).items()},
    }
    if "predict_ms_per_1000" in info:
        final["final_predict_ms_per_1000"] = info["predict_ms_per_1000"]
    return result, final
