"""The driver's side of ``ensemble.candidates``: members of a large sweep that can no longer be
among the ensemble's candidates give their predictions back as the sweep goes, so the
driver holds a few hundred members' predictions whatever the number of trials."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ensembles.metrics import evaluate
from ensembles.stage import CandidateLibrary
from runner.runtree import MemberRecord


class HeldPredictions:
    """Feeds finished members to a ``CandidateLibrary``; a member it sets aside keeps its
    validation and test scores (for the summary) and drops its predictions (in MLflow)."""

    def __init__(
        self,
        records: Mapping[str, MemberRecord],
        y_val: np.ndarray,
        y_test: np.ndarray,
        metric: str,
        keep: int,
    ) -> None:
        self.records, self.y_val, self.y_test = records, y_val, y_test
        self.library = CandidateLibrary(y_val, metric, keep)

    def add(self, record: MemberRecord) -> None:
        """A member finished (or was loaded from an earlier attempt)."""
        if record.status != "FINISHED" or record.val is None or record.test is None:
            return
        for name in self.library.add(record.name, record.val, record.test, record.fingerprint):
            r = self.records[name]
            r.scores = (evaluate(self.y_val, r.val), evaluate(self.y_test, r.test))
            r.val = r.test = r.test_folds = None
