"""A trial Tune finished whose member run never reached MLflow (the store failed, or the
driver died first) is logged on resume from Tune's result and checkpoint, exactly once."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient


@pytest.fixture(scope="module")
def finished_in_tune_only(tmp_path_factory):
    """A real Tune run of one member with no MLflow callback: only Tune knows it finished."""
    import ray
    from ray import tune

    from runner import plan
    from runner.data import load
    from runner.spec import from_config
    from runner.trial import train_member

    root = tmp_path_factory.mktemp("replay")
    cfg = {
        "data": {"name": "digits", "max_rows": 300},
        "members": {"logistic": {"model": "logistic"}},
        "ensemble": {"method": "mean"},
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db"},
        "runner": {"sweep_id": "replay-1", "storage_path": str(root / "ray_results")},
    }
    spec = from_config(cfg, "unit", str(root))
    data = load(spec.data)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_parameters(train_member, data=data),
            param_space=plan.param_space(spec.members),
            run_config=tune.RunConfig(
                name=plan.experiment_name(spec), storage_path=spec.storage_path, verbose=0
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    return spec, data, results


def test_a_trial_only_tune_saw_finish_is_logged_once_from_its_checkpoint(finished_in_tune_only):
    from runner.callback import MemberCallback
    from runner.runtree import RunTree

    spec, data, results = finished_in_tune_only
    (result,) = list(results)
    tree = RunTree(spec, data.fingerprint, data.sizes())
    callback = MemberCallback(tree, spec.members)
    callback.replay(result)
    callback.replay(result)  # a second look logs nothing new
    record = tree.records["logistic"]
    tree.close("FINISHED")
    client = MlflowClient(spec.tracking_uri)
    runs = client.search_runs([tree.experiment_id], "tags.`runner.role` = 'member'", max_results=10)
    assert [r.info.run_id for r in runs] == [record.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["runner.replayed"].startswith("logged from Tune's checkpoint")
    assert run.data.metrics["final_val_accuracy"] == pytest.approx(
        result.metrics["final_val_accuracy"]
    )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")][0] == 1
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {"model/kind.json"}
    assert record.val is not None and record.val.shape == (len(data.y_val), 10)
