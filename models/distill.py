"""Targets for a student distilled from an ensemble (Hinton et al. 2015, "Distilling the
Knowledge in a Neural Network"): the teacher's class probabilities for kinds that learn
from them (Keras nets, by a cross-entropy on soft targets), its most probable class for the
others; its predicted values for regression."""

from __future__ import annotations

import numpy as np

from models.base import Task
from models.kind import ModelKind


def student_targets(kind: ModelKind, task: Task, teacher: np.ndarray) -> np.ndarray:
    """What ``kind`` fits on, from the teacher's predictions of the same rows; ValueError if
    their shape is not the task's."""
    teacher = np.asarray(teacher, dtype=np.float64)
    if not task.is_classification:
        if teacher.ndim != 1:
            raise ValueError(f"a regression teacher predicts (rows,), got {teacher.shape}")
        return teacher
    if teacher.ndim != 2 or teacher.shape[1] != task.n_classes:
        raise ValueError(
            f"a teacher of {task.n_classes} classes predicts (rows, {task.n_classes}), "
            f"got {teacher.shape}"
        )
    if kind.learns_soft_targets():
        proba = np.clip(teacher, 0.0, None)
        return (proba / proba.sum(axis=1, keepdims=True)).astype(np.float32)
    hard = teacher.argmax(axis=1).astype(np.int64)
    never = np.setdiff1d(np.arange(task.n_classes), hard)
    if never.size:  # a rare class the ensemble never ranks first: a hard student cannot learn it
        names = [task.labels[c] if task.labels else str(c) for c in never]
        raise ValueError(
            f"the ensemble makes no training row most likely class {', '.join(map(repr, names))}, "
            f"so a student of kind {kind.name!r}, which fits the ensemble's most likely class, "
            "would never predict it; distil into a Keras kind (mlp), which fits the ensemble's "
            "probabilities"
        )
    return hard
