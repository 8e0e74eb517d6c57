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
        # a trial's leftovers stay collectable (frozen objects that died meanwhile leave it)
        assert gc.get_freeze_count() <= frozen
        assert made_by_a_trial
    finally:
        gc.unfreeze()
        trial._imports_frozen = False


def test_a_members_prediction_time_is_taken_on_a_batch_shape_it_has_predicted():
    """A Keras net compiles its prediction step anew for each new batch shape (about 20 ms
    here, more than predicting the rows); the time a trial records must not include that,
    nor scale a small test split's per-call cost up to 1000 rows."""
    from types import SimpleNamespace

    import numpy as np

    import models
    from models.base import InputSpec, Task
    from models.training import TrainingOptions
    from runner.trial import LATENCY_ROWS, _latency_ms_per_1000

    rng = np.random.default_rng(0)
    task = Task("classification", n_classes=3)
    X = rng.normal(size=(3000, 8)).astype(np.float32)
    y = rng.integers(0, 3, 3000)
    spec = InputSpec(8, mean=X.mean(0), variance=X.var(0))
    trained = models.get("mlp").train(
        spec,
        task,
        {"depth": 1, "width": 8},
        (X[:200], y[:200]),
        (X[200:300], y[200:300]),
        TrainingOptions(epochs=1),
        seed=0,
    )
    sizes = []

    class Watched:  # the member, noting how many rows each prediction took
        def predict(self, X, task):
            sizes.append(len(X))
            traced = trained.model.predict_function.experimental_get_tracing_count()
            out = trained.member.predict(X, task)
            compiled.append(
                trained.model.predict_function.experimental_get_tracing_count() > traced
            )
            return out

    for n in (8, 360, 3000):  # a batch of 8 or 360 rows; chunks of 1024, 1024 and 952
        data = SimpleNamespace(X_test=X[:n], y_test=y[:n], task=task)
        trained.member.predict(data.X_test, task)
        sizes, compiled = [], []
        assert _latency_ms_per_1000(Watched(), data) > 0
        # timed on a whole batch (a small test split's rows repeated): a few rows would scale
        # a call's fixed cost a hundredfold; and not on the call that compiled its shape
        assert sizes[-1] == LATENCY_ROWS and not compiled[-1], (n, sizes, compiled)
    assert LATENCY_ROWS == 1024


def test_a_members_prediction_time_is_its_fastest_of_a_few_calls_not_one_noisy_call():
    """One call timed while a trial ran on the other core made the same member 1.7 or 7.6
    ms per 1000 rows in two sweeps; budgets picked members by the machine's load."""
    import time
    from types import SimpleNamespace

    import numpy as np

    from models.base import Task
    from runner.trial import LATENCY_CALLS, _latency_ms_per_1000

    task = Task("regression")
    data = SimpleNamespace(X_test=np.zeros((2000, 2)), y_test=np.zeros(2000), task=task)

    class Member:  # the first timed call is slowed down, as by a busy core
        def __init__(self, delays):
            self.delays, self.calls = list(delays), 0

        def predict(self, X, task):
            self.calls += 1
            time.sleep(self.delays.pop(0) if self.delays else 0.01)
            return np.zeros(len(X))

    noisy = Member([0.3])
    ms = _latency_ms_per_1000(noisy, data)
    assert 9 < ms < 60 and noisy.calls == LATENCY_CALLS, ms
    slow = Member([0.6] * 10)  # slow calls: two are enough
    assert _latency_ms_per_1000(slow, data) > 500 and slow.calls == 2
