"""The trainable's worker-side housekeeping (the trials themselves run in the e2e tests)."""

from __future__ import annotations

import gc

from models import keras_runtime as trial


def test_a_worker_freezes_the_objects_of_its_imports_once():
    gc.unfreeze()
    trial._imports_frozen = False
    try:
        trial.freeze_imported_objects()
        frozen = gc.get_freeze_count()
        assert frozen > 0  # the imports' objects no longer cost every collection a scan
        made_by_a_trial = [[i] for i in range(1000)]
        trial.freeze_imported_objects()
        assert gc.get_freeze_count() == frozen  # a trial's leftovers stay collectable
        assert made_by_a_trial
    finally:
        gc.unfreeze()
        trial._imports_frozen = False
