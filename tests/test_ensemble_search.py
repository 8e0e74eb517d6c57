"""Ensemble-aware search (``search.objective=ensemble``): each trial is scored by what it adds
to the greedy ensemble of the members and trials finished before it."""

from __future__ import annotations

import signal
import tempfile
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from test_spec import spec_of

from ensembles.honest import cross_fitted_loss
from helpers import read_summary, run_cli, start_cli, sweep_runs
from runner.pool import EnsemblePool
from runner.spec import SpecError


def noisy(y: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    return y + scale * rng.normal(size=len(y))


def test_the_pool_scores_a_trial_by_the_cross_fitted_ensemble_with_it_against_without():
    rng = np.random.default_rng(0)
    y = rng.normal(size=600)
    pool = EnsemblePool(y, seed=0)
    first = noisy(y, 0.8, rng)
    assert pool.add("a", first) == {
        "ensemble_loss": pytest.approx(np.mean((first - y) ** 2)),
        "ensemble_gain": 0.0,
        "ensemble_pool_size": 1,
    }
    fresh = noisy(y, 0.8, rng)  # as good, independent errors: the ensemble gains
    scored = pool.add("b", fresh)
    both = np.stack([first, fresh])
    assert scored["ensemble_loss"] == pytest.approx(cross_fitted_loss("greedy", {}, both, y))
    assert scored["ensemble_gain"] > 0.1
    copy = pool.add("c", fresh.copy())  # the same predictions again: nothing to add
    assert abs(copy["ensemble_gain"]) < 1e-9 and copy["ensemble_pool_size"] == 3
    assert pool.sync({"a": first, "d": noisy(y, 2.0, rng)}) == 4  # known labels kept


def test_the_pool_holds_only_members_that_can_still_be_ensemble_candidates():
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    pool = EnsemblePool(y, seed=0, keep=2)
    assert pool.sync({"a": noisy(y, 0.5, rng), "b": noisy(y, 0.6, rng)}) == 2
    for label, scale in (("c", 0.7), ("d", 3.0)):  # two better on loss, one on RMSE: out
        scored = pool.add(label, noisy(y, scale, rng))
        assert scored["ensemble_gain"] == 0.0 and scored["ensemble_pool_size"] == 2
    assert set(pool.preds) == {"a", "b"}
    better = pool.add("e", noisy(y, 0.3, rng))  # b now has two better: out
    assert set(pool.preds) == {"a", "e"} and better["ensemble_pool_size"] == 2
    assert better["ensemble_loss"] == pytest.approx(
        cross_fitted_loss("greedy", {}, np.stack([pool.preds["a"], pool.preds["e"]]), y)
    )
    assert pool.sync({"d": noisy(y, 3.0, rng)}) == 2  # a label gone stays gone


def test_trials_scored_by_trial_id_are_not_added_again_by_their_member_labels():
    """A trial joins the pool under its Tune trial id; when the next searched member's Tune
    run starts, the driver syncs the finished members by label: the same predictions (read
    back from the trial's checkpoint) must not count twice, held or pruned."""
    rng = np.random.default_rng(4)
    y = rng.normal(size=300)
    pool = EnsemblePool(y, seed=0, keep=2)
    trials = {f"trial_{k}": noisy(y, s, rng) for k, s in enumerate((0.5, 0.6, 3.0))}
    for trial_id, val in trials.items():
        pool.add(trial_id, val)
    assert len(pool.preds) == 2  # the third, far worse, was pruned
    # as the driver's records hold them: float32
    read_back = {f"mlp-{k}": v.astype(np.float32) for k, v in enumerate(trials.values())}
    assert pool.sync(read_back) == 2
    assert pool.sync({"logistic": noisy(y, 0.4, rng)}) == 2  # a new member still joins


def test_the_pool_scores_class_probabilities_by_log_loss():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    proba = np.full((300, 3), 0.2)
    proba[np.arange(300), y] = 0.6
    pool = EnsemblePool(y)
    scored = pool.add("a", proba)
    assert scored["ensemble_loss"] == pytest.approx(-np.log(0.6))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["search.objective=ensembles"],
            r"search.objective must be one of \['member', 'ensemble'\]",
        ),
        (
            [
                "search=random",
                "search.objective=ensemble",
                "search.metric=val_accuracy",
                "search.mode=max",
            ],
            r"search.objective=ensemble scores a trial by the ensemble's validation loss",
        ),
        (
            ["search=random", "search.objective=ensemble", "runner.folds=3"],
            r"^search.objective: ensemble scores whole trials",
        ),
        (  # nothing searched: the option was ignored without a word
            ["search.objective=ensemble"],
            r"^search.objective: ensemble scores a searched member's samples .* no member has",
        ),
    ],
)
def test_bad_objectives_are_refused_before_anything_runs(overrides, message):
    with pytest.raises(SpecError, match=message):
        spec_of(*overrides)


SEARCHED_LOGISTIC = (
    "+experiment=quickstart",
    *(f"~members.{m}" for m in ("mlp", "selu", "convnet", "resnet")),
    "+members.searched={model: logistic, hparams: {C: {loguniform: [0.001, 10.0]}}}",
    "search=random",
    "search.num_samples=4",
    "search.seed=0",
    "search.objective=ensemble",
)


def member_runs(db: str, sweep_id: str) -> list[tuple[str, str]]:
    """(member, status) of the sweep's member runs so far."""
    return [
        (r.data.tags["runner.member"], r.info.status)
        for r in sweep_runs(db, sweep_id)
        if r.data.tags.get("runner.role") == "member"
    ]


def pool_sizes(db: str, summary: dict) -> list[int]:
    """The pool size each searched trial's run recorded, in order."""
    client = MlflowClient(db)
    return sorted(
        int(client.get_run(m["run_id"]).data.metrics["final_ensemble_pool_size"])
        for m in summary["members"]
        if m["name"].startswith("searched-")
    )


@pytest.mark.slow
def test_each_trial_is_scored_against_the_ensemble_finished_before_it(tmp_path):
    """Digits: an SVM and a logistic regression fixed, a logistic regression's C searched at
    random over four trials on two workers. Every trial's run records its own validation
    loss and the ensemble's with it; replaying the pool in the order the trials reached it
    (their pool sizes) gives the same cross-fitted losses from their logged predictions."""
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        *SEARCHED_LOGISTIC,
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(tmp_path / "out")
    rows = {m["name"]: m for m in summary["members"]}
    samples = sorted(n for n in rows if n.startswith("searched-"))
    assert len(samples) == 4 and all(rows[n]["status"] == "FINISHED" for n in samples)
    client = MlflowClient(db)
    y = None
    preds, scored = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, row in rows.items():
            path = client.download_artifacts(row["run_id"], "predictions.npz", f"{tmp}/{name}")
            with np.load(path) as npz:
                preds[name], y = npz["val"], npz["y_val"]
            metrics = client.get_run(row["run_id"]).data.metrics
            if name in samples:
                assert metrics["final_own_val_loss"] == pytest.approx(
                    metrics["final_val_log_loss"], rel=1e-6
                )
                scored.append((int(metrics["final_ensemble_pool_size"]), name, metrics))
    scored.sort()
    assert [size for size, _, _ in scored] == [3, 4, 5, 6]  # svm and logistic first
    pool = ["svm", "logistic"]
    for _, name, metrics in scored:
        P = np.stack([preds[n] for n in pool])
        without = cross_fitted_loss("greedy", {}, P, y)
        pool.append(name)
        with_it = cross_fitted_loss("greedy", {}, np.stack([preds[n] for n in pool]), y)
        # predictions.npz keeps float32: the pool saw the same values before rounding
        assert metrics["final_ensemble_loss"] == pytest.approx(with_it, rel=1e-6)
        assert metrics["final_ensemble_gain"] == pytest.approx(without - with_it, abs=1e-6)


@pytest.mark.slow
def test_a_resumed_search_scores_trials_against_members_of_the_earlier_attempt(tmp_path):
    """The driver dies once the fixed members (SVM, logistic) have finished; the resumed sweep
    keeps their runs, and its pool holds them: the searched trials still see pools of 3 to 6
    (counting trials finished before the kill), not pools started empty."""
    db = f"sqlite:///{tmp_path}/mlflow.db"
    args = [*SEARCHED_LOGISTIC, "runner.sweep_id=pool-resume", f"tracking.uri={db}"]
    # the first of the fixed members finished (then wait for both in MLflow)
    driver = start_cli(tmp_path, *args, "hydra.run.dir=first", until=" finished:")
    try:
        fixed: set[str] = set()
        deadline = time.time() + 60
        while fixed != {"svm", "logistic"} and time.time() < deadline:
            fixed = {m for m, status in member_runs(db, "pool-resume") if status == "FINISHED"}
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
    assert {"svm", "logistic"} <= fixed
    resumed = run_cli(tmp_path, *args, "hydra.run.dir=out")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = read_summary(tmp_path / "out")
    assert pool_sizes(db, summary) == [3, 4, 5, 6]
