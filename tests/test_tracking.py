"""The driver-side MLflow writer against a real SQLite store."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from mlflow.tracking import MlflowClient

from runner.runtree import RunTree, flatten, store_exists
from runner.spec import from_config
from runner.store_probe import redact_uri


def test_redact_uri_hides_passwords_and_tokens_only():
    assert redact_uri("postgresql://bob:s3cret@db:5432/ml") == "postgresql://bob:***@db:5432/ml"
    assert redact_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    # a server's user name alone is a token (sent as basic auth); a database's is a name
    assert redact_uri("http://SEKRET@127.0.0.1:5077") == "http://***@127.0.0.1:5077"
    assert redact_uri("http://SEKRET:@127.0.0.1:5077") == "http://***@127.0.0.1:5077"
    assert redact_uri("postgresql://postgres@db:5432/ml") == "postgresql://postgres@db:5432/ml"
    assert (
        redact_uri("https://mlflow.example/path?access_token=abc&x=1&sig=zz")
        == "https://mlflow.example/path?access_token=***&x=1&sig=***"
    )


def test_a_sqlite_store_exists_by_its_file_whatever_its_uri_options(tmp_path):
    db = tmp_path / "mlflow.db"
    assert not store_exists(f"sqlite:///{db}") and not store_exists(f"sqlite:///{db}?timeout=30")
    db.touch()
    assert store_exists(f"sqlite:///{db}") and store_exists(f"sqlite:///{db}?timeout=30")
    assert store_exists("http://127.0.0.1:5000")  # a server: only the server knows


def test_flatten_gives_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def _spec(tmp_path):
    cfg = {
        "data": {"name": "digits"},
        "members": {"m": {"model": "logistic"}},
        "ensemble": {"method": "mean"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/t.db"},
        "runner": {"sweep_id": "s1"},
    }
    return from_config(cfg, "unit", str(tmp_path))


def test_close_ends_every_open_run_so_nothing_stays_running(tmp_path):
    spec = _spec(tmp_path)
    tracker = RunTree(spec, "fp", {"train": 1, "val": 1, "test": 1})
    child = tracker.child("m", "member", {"runner.member": "m"})
    tracker.close("FAILED")
    client = MlflowClient(spec.tracking_uri)
    assert client.get_run(child).info.status == "FAILED"
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["runner.role"] == "sweep"
    assert parent.data.tags["runner.sweep_id"] == "s1"
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == tracker.parent_run_id


def test_a_second_sweep_reuses_the_experiment(tmp_path):
    spec = _spec(tmp_path)
    a = RunTree(spec, "fp", {})
    b = RunTree(replace(spec, sweep_id="s2"), "fp", {})
    a.close("FINISHED")
    b.close("FINISHED")
    assert a.experiment_id == b.experiment_id
    assert a.parent_run_id != b.parent_run_id


def test_tracking_uri_password_is_not_logged_as_a_param(tmp_path):
    spec = _spec(tmp_path)
    tracker = RunTree(spec, "fp", {})
    tracker.close("FINISHED")
    client = MlflowClient(spec.tracking_uri)
    params = client.get_run(tracker.parent_run_id).data.params
    assert not any("tracking" in k for k in params)
    config = client.download_artifacts(tracker.parent_run_id, "resolved_config.json", str(tmp_path))
    assert "tracking" not in json.loads(Path(config).read_text())


def _member_runs(spec):
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.experiment).experiment_id
    return client.search_runs([experiment], "tags.`runner.role` = 'member'")


def test_a_member_run_lists_its_kinds_defaults_beside_the_hyperparameters_it_set(tmp_path):
    from models.base import Task
    from runner.contracts import TrialInput

    spec = _spec(tmp_path)
    tree = RunTree(spec, "fp", {}, task=Task("classification", 10))
    member = TrialInput("m", "logistic", "sklearn", {"C": 0.5}, {}, {"cpu": 1, "gpu": 0}, 7)
    tree.open_member("m", member, trial_id="t1", attempt=1, config_hash="h")
    tree.create_due(now=time.time() + RunTree.DEFER_SECONDS + 1)
    (run,) = _member_runs(spec)
    params = run.data.params
    assert params["hparams.C"] == "0.5" and params["hparams.max_iter"] == "2000"  # the zoo's
    assert params["hparams.solver"] == "lbfgs" and params["seed"] == "7"
    # what the runner sets when it trains, or the library picks itself, is not a default
    assert not {"hparams.random_state", "hparams.n_jobs", "hparams.verbose"} & set(params)
    tree.close("FINISHED")


def test_a_member_run_appears_once_its_trial_has_run_a_while_with_what_was_logged(tmp_path):
    from runner.contracts import TrialInput

    spec = _spec(tmp_path)
    tree = RunTree(spec, "fp", {})
    options = {"epochs": 30, "optimizer": "adam"}  # Keras' options: not a logistic's params
    member = TrialInput("m", "logistic", "sklearn", {"C": 0.5}, options, {"cpu": 1, "gpu": 0}, 0)
    handle = tree.open_member("m", member, trial_id="t1", attempt=1, config_hash="h")
    tree.log_epoch(handle, {"val_loss": 0.5}, 1, {"node_ip": "1.2.3.4", "hostname": "h"})
    tree.log_epoch(handle, {"val_loss": 0.4}, 2)
    tree.create_due()  # the trial started just now: not yet
    assert _member_runs(spec) == []
    tree.create_due(now=time.time() + RunTree.DEFER_SECONDS + 1)
    (run,) = _member_runs(spec)
    assert run.info.status == "RUNNING" and run.data.params["hparams.C"] == "0.5"
    assert not [k for k in run.data.params if k.startswith("training.")], run.data.params
    assert run.data.tags["runner.node_ip"] == "1.2.3.4"
    history = MlflowClient(spec.tracking_uri).get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.4)]
    tree.log_epoch(handle, {"val_loss": 0.3}, 3)  # now written straight away
    tree.stop_member(handle, "m", "logistic", 3)
    (run,) = _member_runs(spec)
    assert run.info.status == "KILLED" and "after epoch 3" in run.data.tags["runner.stopped"]
    assert len(MlflowClient(spec.tracking_uri).get_metric_history(run.info.run_id, "val_loss")) == 3


def test_a_short_trial_is_created_with_everything_at_its_end_and_an_unseen_end_leaves_none(
    tmp_path,
):
    from runner.contracts import TrialInput

    spec = _spec(tmp_path)
    tree = RunTree(spec, "fp", {})
    member = TrialInput("m", "logistic", "sklearn", {}, {}, {"cpu": 1, "gpu": 0}, 0)
    quick = tree.open_member("m-1", member, trial_id="t1", attempt=1, config_hash="h")
    tree.log_epoch(quick, {f"metric_{i}": float(i) for i in range(1500)}, 1)  # > one batch
    tree.fail_member(quick, "m-1", "logistic", "ValueError: bad")
    never = tree.open_member("m-2", member, trial_id="t2", attempt=1, config_hash="h")
    assert never.startswith("pending")
    tree.close("KILLED", "stopped")
    (run,) = _member_runs(spec)
    assert run.info.status == "FAILED" and run.data.tags["runner.error"] == "ValueError: bad"
    assert len(run.data.metrics) == 1500


def test_writes_made_after_their_events_keep_the_events_times(tmp_path):
    # the writer thread may run behind Tune: a run's start, metrics and end carry the times
    # of the trial's events, not of the writes
    from runner.contracts import TrialInput

    spec = _spec(tmp_path)
    tree = RunTree(spec, "fp", {})
    member = TrialInput("m", "logistic", "sklearn", {}, {}, {"cpu": 1, "gpu": 0}, 0)
    start = int(time.time() * 1000) - 60_000  # a minute ago
    tree.event_ms = start
    handle = tree.open_member("m", member, trial_id="t1", attempt=1, config_hash="h")
    tree.event_ms = start + 30_000
    tree.log_epoch(handle, {"val_loss": 0.5}, 1)
    tree.event_ms = start + 45_000
    tree.stop_member(handle, "m", "logistic", 1)
    tree.event_ms = None
    (run,) = _member_runs(spec)
    assert (run.info.start_time, run.info.end_time) == (start, start + 45_000)
    (metric,) = MlflowClient(spec.tracking_uri).get_metric_history(run.info.run_id, "val_loss")
    assert metric.timestamp == start + 30_000
    tree.close("FINISHED")
    parent = MlflowClient(spec.tracking_uri).get_run(tree.parent_run_id)
    assert parent.info.end_time >= start + 59_000  # ended now: no event time left behind


def test_a_bag_the_time_limit_cut_short_says_how_many_folds_it_lacks_also_after_a_resume(tmp_path):
    from runner.contracts import TrialInput

    spec = _spec(tmp_path)
    tree = RunTree(spec, "fp", {})
    member = TrialInput(
        "m", "logistic", "sklearn", {}, {}, {"cpu": 1, "gpu": 0}, 0, folds=5, fold=0
    )
    fold = tree.open_member("m/fold0", member, trial_id="t1", attempt=1, config_hash="h")
    tree.fail_member(fold, "m/fold0", "logistic", "ValueError: bad")
    tree.skip_member(
        tree.bags["m"],
        "m",
        "logistic",
        "4 of 5 folds did not finish",
        {"folds_missing": 4, "folds": 5},
    )
    assert tree.records["m"].fit == {"folds_missing": 4, "folds": 5}
    tree.close("KILLED", "stopped")  # the driver stopped: a resume follows
    again = RunTree(replace(spec, resume="true"), "fp", {})
    assert again.ended_record("m", "logistic").fit == {"folds_missing": 4, "folds": 5}
    again.close("FINISHED")


def test_a_bag_skipped_before_its_tag_existed_still_says_how_many_folds_it_lacks():
    from runner.runtree import _folds_missing

    old = {"runner.folds": "5", "runner.skipped": "3 of 5 folds did not finish: m/fold2 ..."}
    assert _folds_missing(old) == {"folds_missing": 3, "folds": 5}
    assert _folds_missing({**old, "runner.folds_missing": "4"})["folds_missing"] == 4
    assert _folds_missing({"runner.skipped": "runner.time_limit passed"}) == {}


def test_a_named_sweep_of_an_experiment_renamed_in_mlflow_is_not_started_anew(tmp_path):
    """Renamed in the UI, the experiment's name was free: the same sweep id trained anew."""
    import pytest

    from runner.errors import ResumeError

    spec = _spec(tmp_path)
    tree = RunTree(spec, "fp", {"train": 1, "val": 1, "test": 1})
    tree.close("KILLED")
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name("unit").experiment_id
    client.rename_experiment(experiment, "unit-2025")
    with pytest.raises(ResumeError, match=r"sweep s1 of experiment 'unit' is in the MLflow "):
        RunTree.check_not_finished(spec)
    RunTree.check_not_finished(replace(spec, sweep_id="s2"))  # another id: a new sweep
    RunTree.check_not_finished(replace(spec, experiment="unit-2025"))  # resumed there


def test_an_experiment_made_by_another_sweep_at_the_same_moment_is_taken_as_it_is(tmp_path):
    """Two team members' first sweeps of a new experiment: one makes it between the other's
    look-up and its own create, which the store refuses (the sweep stopped with a traceback)."""
    from runner.runtree import ensure_experiment

    uri = f"sqlite:///{tmp_path}/t.db"
    client, colleague = MlflowClient(uri), MlflowClient(uri)
    made = []
    look_up = client.get_experiment_by_name

    def colleague_first(name):
        if not made:  # the colleague's sweep makes it right after this look-up
            made.append(colleague.create_experiment(name))
            return None
        return look_up(name)

    client.get_experiment_by_name = colleague_first
    assert ensure_experiment(client, "team") == made[0]
    assert (
        ensure_experiment(colleague, "fresh")
        == colleague.get_experiment_by_name("fresh").experiment_id
    )


def test_a_store_error_as_the_sweep_starts_is_one_line_naming_it_and_others_are_left_alone(
    tmp_path,
):
    from mlflow.exceptions import MlflowException

    from runner.errors import StoreFailed
    from runner.sweep import _store_failed

    spec = _spec(tmp_path)
    padding = "x" * 280  # the password straddles the cut at 300 characters
    down = MlflowException(
        f"API request {padding} to http://alice:S3cretPw@srv/api failed: Max retries exceeded"
    )
    failed = _store_failed(down, False, spec)
    assert isinstance(failed, StoreFailed)
    text = str(failed)
    assert text.startswith("the tracking store failed as the sweep started (MlflowException: API")
    assert "nothing was trained" in text and "S3cret" not in text and "\n" not in text
    assert "runner.sweep_id=s1) once the store answers" in text
    assert "resume with runner.sweep_id=s1" in str(_store_failed(down, True, spec))
    assert _store_failed(ValueError("a bug of ours"), True, spec) is None


def test_resuming_a_sweep_another_version_of_the_code_started_says_so(tmp_path, caplog):
    """A resume across an upgrade trained the missing folds of a bag with another table
    encoding than its finished ones, and said nothing."""
    from runner.contracts import CODE_DIGEST
    from runner.runtree import code_digest

    spec = _spec(tmp_path)
    first = RunTree(spec, "fp", {})
    assert (
        MlflowClient(spec.tracking_uri).get_run(first.parent_run_id).data.tags[CODE_DIGEST]
        == code_digest()
    )
    first.close("KILLED")
    client = MlflowClient(spec.tracking_uri)
    again = RunTree(spec, "fp", {})  # the same code: nothing said
    again.close("KILLED")
    assert "another version of the runner's code" not in caplog.text
    client.set_tag(first.parent_run_id, CODE_DIGEST, "an-older-release")
    resumed = RunTree(spec, "fp", {})
    resumed.close("FINISHED")
    assert resumed.parent_run_id == first.parent_run_id
    assert "was started by another version of the runner's code" in caplog.text
    tags = client.get_run(first.parent_run_id).data.tags  # the version it began with, kept
    assert tags[CODE_DIGEST] == "an-older-release"
    assert tags["runner.code_digest_resumed"] == code_digest()


def test_the_code_digest_covers_the_users_kind_modules(tmp_path, monkeypatch):
    """Editing a kind of one's own between a stop and a resume went unsaid: only the
    runner's packages were hashed."""
    from runner.runtree import code_digest

    (tmp_path / "digest_kind.py").write_text("import digest_helper\nWIDTH = 8\n")
    (tmp_path / "digest_helper.py").write_text("SCALE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_digest(("digest_kind",))
    assert before != code_digest()
    (tmp_path / "digest_helper.py").write_text("SCALE = 2\n")  # a helper it ships
    code_digest.cache_clear()
    assert code_digest(("digest_kind",)) != before
    assert code_digest(("models.shallow",)) == code_digest()  # the zoo's: hashed already


def test_a_resume_refused_for_a_changed_member_leaves_the_sweep_as_it_was(tmp_path):
    """The member check ran after the parent was set RUNNING under the new driver: a
    refused resume (a runner upgrade changing a member's hash) left it RUNNING for good."""
    import pytest

    from runner.errors import ResumeError

    spec = _spec(tmp_path)
    first = RunTree(spec, "fp", {})
    child = first.child("m", "member", {"runner.member": "m", "runner.config_hash": "old"})
    first.close("KILLED")
    client = MlflowClient(spec.tracking_uri)
    client.set_terminated(child, "FINISHED")
    before = client.get_run(first.parent_run_id).data.tags["runner.driver"]
    with pytest.raises(ResumeError, match=r"member 'm' changed since sweep s1 started"):
        RunTree(spec, "fp", {})
    parent = client.get_run(first.parent_run_id)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["runner.driver"] == before


def test_close_says_whether_it_ended_the_runs_so_the_sentinel_stays_armed_when_not(tmp_path):
    """The sweep disarmed its sentinel after a close the store refused: runs stayed RUNNING."""
    spec = _spec(tmp_path)
    tracker = RunTree(spec, "fp", {})
    tracker.child("m", "member", {"runner.member": "m"})
    (tmp_path / "t.db").write_bytes(b"not a database any more")
    assert tracker.close("FINISHED") is False
    again = RunTree(replace(spec, tracking_uri=f"sqlite:///{tmp_path}/u.db"), "fp", {})
    assert again.close("FINISHED") is True


def test_registering_again_drops_the_version_an_earlier_attempt_left_on_a_dead_run(tmp_path):
    """A crash between registering the ensemble and finishing its run left a version on a
    KILLED run; the rerun fitted and registered another: two versions for one sweep."""
    from runner.export import register

    client = MlflowClient(f"sqlite:///{tmp_path}/r.db")
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))

    def ensemble_run(sweep, status):
        run = client.create_run(
            experiment, tags={"runner.sweep_id": sweep, "runner.role": "ensemble"}
        )
        client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    dead = register(client, ensemble_run("s1", "KILLED"), "m")
    kept_alias = register(client, ensemble_run("s1", "KILLED"), "m")
    client.set_registered_model_alias("m", "champion", kept_alias)
    other_sweep = register(client, ensemble_run("s2", "KILLED"), "m")
    finished = register(client, ensemble_run("s1", "FINISHED"), "m")
    new = register(client, ensemble_run("s1", "RUNNING"), "m")
    left = sorted(str(v.version) for v in client.search_model_versions("name = 'm'"))
    assert left == sorted([kept_alias, other_sweep, finished, new])
    assert dead not in left


def test_a_version_registered_from_a_run_is_found_so_a_rerun_registers_it_once(tmp_path):
    """A student registered only when its model was logged in the same attempt: a crash
    between logging and registering left it never registered."""
    from runner.export import register, registered_from

    client = MlflowClient(f"sqlite:///{tmp_path}/r.db")
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment).info.run_id
    other = client.create_run(experiment).info.run_id
    assert registered_from(client, "m-student", run) is None  # no such model yet
    version = register(client, run, "m-student")
    assert registered_from(client, "m-student", run) == version
    assert registered_from(client, "m-student", other) is None


def test_a_forced_resume_records_the_config_the_sweep_runs_now(tmp_path):
    """After a forced resume with fewer members, the first config's rerun said the sweep had
    finished with nothing to do (its recorded config was still the first's), though the
    members the forced config dropped never trained."""
    import pytest

    from runner.errors import ResumeError
    from runner.runtree import recorded_config

    spec = _spec(tmp_path)
    first = RunTree(spec, "fp", {})
    first.close("KILLED")
    cfg = {
        "data": {"name": "digits"},
        "members": {"m": {"model": "logistic", "hparams": {"C": 0.5}}},
        "ensemble": {"method": "mean"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/t.db"},
        "runner": {"sweep_id": "s1", "resume": "force"},
    }
    forced = RunTree(from_config(cfg, "unit", str(tmp_path)), "fp", {})
    assert forced.parent_run_id == first.parent_run_id
    forced.close("FINISHED")
    client = MlflowClient(spec.tracking_uri)
    assert recorded_config(client, first.parent_run_id)["members"]["m"]["hparams"] == {"C": 0.5}
    with pytest.raises(ResumeError, match=r"already finished with another config") as err:
        RunTree.check_not_finished(spec, "fp")
    assert "python -m ensembles" not in str(err.value)  # members changed: retrain
    # only the ensemble's settings changed: its members can be ensembled again
    cfg["ensemble"] = {"method": "greedy"}
    again = from_config({**cfg, "runner": {"sweep_id": "s1"}}, "unit", str(tmp_path))
    with pytest.raises(ResumeError) as err:
        RunTree.check_not_finished(again, "fp")
    assert str(err.value).endswith(
        "or ensemble its members again: python -m ensembles experiment=unit sweeps=s1 with the "
        "ensemble settings (README: Re-ensembling)"
    )


def test_a_sweep_runner_resume_picked_of_another_config_is_not_offered_to_force(tmp_path):
    """On a team's store runner.resume=true picked a teammate's unfinished sweep of another
    config, and the refusal advised runner.resume=force: that took the sweep over."""
    import pytest

    from runner.errors import ResumeError

    spec = _spec(tmp_path)
    RunTree(spec, "fp", {}).close("KILLED")
    cfg = {
        "data": {"name": "digits"},
        "members": {"m": {"model": "logistic", "hparams": {"C": 0.5}}},
        "ensemble": {"method": "mean"},
        "tracking": {"uri": f"sqlite:///{tmp_path}/t.db"},
        "runner": {"resume": True},
    }
    mine = replace(from_config(cfg, "unit", str(tmp_path)), sweep_id="s1", picked_by_resume=True)
    with pytest.raises(ResumeError) as said:
        RunTree(mine, "fp", {})
    assert "runner.resume=true found no unfinished sweep with this config" in str(said.value)
    assert "the latest unfinished one, s1, ran another config" in str(said.value)
    assert "force" not in str(said.value)


def test_a_served_model_requires_keras_and_tensorflow_only_for_a_keras_member():
    """A served LightGBM ensemble pinned TensorFlow: an environment built from its
    requirements installed it for nothing (the model never imports it)."""
    from runner.export import _requirements

    boosters = {r.split("==")[0] for r in _requirements(["lightgbm", "logistic"])}
    assert {"mlflow", "scikit-learn", "lightgbm"} <= boosters
    assert not {"keras", "tensorflow"} & boosters
    nets = {r.split("==")[0] for r in _requirements(["lightgbm", "mlp"])}
    assert {"keras", "tensorflow", "lightgbm"} <= nets
