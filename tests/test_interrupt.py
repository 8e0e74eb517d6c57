"""Ctrl+C mid-sweep leaves nothing RUNNING in MLflow and exits 130; SIGTERM exits 143 and
the sweep resumes."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from helpers import INFRA_MEMBERS, read_summary, run_cli, start_cli, stop_cli


def test_sigint_mid_sweep_marks_open_runs_killed(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    proc = start_cli(
        workdir,
        "+experiment=quickstart",
        f"tracking.uri={db}",
        "training.epochs=200",
        until="started",  # a member run exists and its trial is training
    )
    _, stderr = stop_cli(proc, signal.SIGINT)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    # members that had not started have no result files; Tune's warning listing them is dropped
    assert "Failed to fetch metrics" not in stderr
    # the runner's way to resume, not Tune's Tuner.restore(path=..., trainable=...)
    assert "Tuner.restore" not in stderr and "runner.sweep_id=" in stderr
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    statuses = {r.data.tags["runner.role"] + ":" + r.info.status for r in runs}
    assert "sweep:KILLED" in statuses
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    assert not [r for r in runs if r.data.tags["runner.role"] == "ensemble"]


@pytest.mark.slow
def test_sigint_in_the_first_tune_run_starts_no_later_one(workdir):
    # a searched member is a Tune run of its own after the plain members' run: Tune returns
    # normally when a signal stops it, and the searched trials used to start and train anyway
    db = f"sqlite:///{workdir}/mlflow.db"
    proc = start_cli(
        workdir,
        "+experiment=quickstart",
        *(f"~members.{m}" for m in ("convnet", "resnet", "selu", "logistic")),
        "training.epochs=200",
        "search=random",
        "search.num_samples=2",
        "+members.svm.hparams.C={choice: [0.5, 1.0]}",
        f"tracking.uri={db}",
        until="mlp (mlp) started",
    )
    stdout, stderr = stop_cli(proc, signal.SIGINT, after=1.0)
    assert proc.returncode == 130, stderr[-2000:]
    assert "svm-" not in stdout, stdout[-2000:]  # no searched trial started
    assert "interrupted before mlp" in stderr
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    assert not [r for r in runs if r.data.tags["runner.role"] == "ensemble"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_trials_stops_the_ensemble_stage(workdir, sig):
    # Tune leaves its own SIGINT handler behind when no signal came during its run: the
    # first Ctrl+C (or SIGTERM, which the runner routes through it) in the ensemble stage
    # only set the finished Tune run's flag, and the sweep went on to FINISHED
    db = f"sqlite:///{workdir}/mlflow.db"
    proc = start_cli(
        workdir,
        "+experiment=quickstart",
        *(f"~members.{m}" for m in ("mlp", "convnet", "resnet", "selu")),
        "ensemble.n_boot=3000000",  # a bootstrap of seconds: the signal lands in it
        f"tracking.uri={db}",
        until="2/2 done",
    )
    _, stderr = stop_cli(proc, sig, after=1.0)
    assert proc.returncode == 128 + sig, stderr[-2000:]
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    (parent,) = [r for r in runs if r.data.tags["runner.role"] == "sweep"]
    assert parent.info.status == "KILLED"
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]


@pytest.mark.slow
def test_sigterm_mid_sweep_stops_cleanly_and_a_rerun_resumes_the_sweep(workdir):
    """What Kubernetes and cron timeouts send: exit 143 with one line of ours (no native
    abort), open runs KILLED with the reason, and the same sweep id finishes the sweep with
    one FINISHED run per member."""
    db = f"sqlite:///{workdir}/mlflow.db"
    args = [
        "+experiment=quickstart",
        *INFRA_MEMBERS,
        f"tracking.uri={db}",
        "runner.sweep_id=nightly-term",
        "training.epochs=40",
    ]
    proc = start_cli(workdir, *args, until="mlp (mlp) started")  # the Keras member trains
    _, stderr = stop_cli(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-2000:]
    assert "interrupted (stopped by SIGTERM)" in stderr
    assert "Fatal Python error" not in stderr and "Aborted" not in stderr
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    runs = client.search_runs([experiment])
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    (parent,) = [r for r in runs if r.data.tags["runner.role"] == "sweep"]
    assert parent.info.status == "KILLED"
    assert parent.data.tags["runner.error"] == "stopped by SIGTERM"

    # a resubmission with another config is refused, naming what changed ...
    changed = run_cli(workdir, *args, "training.batch_size=16")
    assert changed.returncode == 2, changed.stderr[-3000:]
    (line,) = [x for x in changed.stderr.splitlines() if x.strip()]
    assert line.startswith(
        "error: sweep nightly-term was started with another config (training.batch_size: 32 -> 16)"
    )
    # ... unless forced, which the parent run records
    forced = ("training.batch_size=16", "runner.resume=force", "hydra.run.dir=out")
    done = run_cli(workdir, *args, *forced)
    assert done.returncode == 0, done.stderr[-3000:]
    tags = client.get_run(parent.info.run_id).data.tags
    assert tags["runner.resume_forced"] == "training.batch_size: 32 -> 16"
    assert "runner.error" not in tags  # the first attempt's reason is not the finished sweep's
    summary = read_summary(workdir / "out")
    assert summary["parent_run_id"] == parent.info.run_id
    assert all(m["status"] == "FINISHED" for m in summary["members"])
    finished = Counter(
        r.data.tags["runner.member"]
        for r in client.search_runs([experiment])
        if r.data.tags["runner.role"] == "member" and r.info.status == "FINISHED"
    )
    assert finished == Counter({"mlp": 1, "logistic": 1, "svm": 1})


def test_only_tunes_warning_about_trials_without_any_result_files_is_dropped():
    import logging

    from runner.sweep import _NoResultFilesYet

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("ray", logging.WARNING, __file__, 1, message, None, None)

    unstarted = "- t_00001: FileNotFoundError('Could not fetch metrics for t_00001: both ...')"
    unreadable = "- t_00002: JSONDecodeError('Expecting value: line 1 column 1 (char 0)')"
    head = "Failed to fetch metrics for {} trial(s):\n"
    keep = _NoResultFilesYet()
    assert not keep.filter(record(head.format(1) + unstarted))
    assert keep.filter(record(head.format(2) + unstarted + "\n" + unreadable))
    assert keep.filter(record("No checkpoints have been found for trial t_00001."))


@pytest.mark.slow
def test_a_searched_sweep_resumed_after_the_scheduler_stopped_trials_finishes(workdir):
    # trials ASHA stopped in the first attempt ended for good: the resume counts them as
    # done (it waited for them for ever, blaming a Ctrl+C that never came)
    db = f"sqlite:///{workdir}/mlflow.db"
    args = (
        "+experiment=quickstart",
        *(f"~members.{m}" for m in ("selu", "convnet", "resnet", "svm")),
        f"tracking.uri={db}",
        "training.epochs=3",
        "search=random",
        "search.num_samples=6",
        "search.seed=4",
        "search.scheduler=asha",
        "+members.mlp.hparams.width={randint:[16,65]}",
        "+members.mlp.training.learning_rate={loguniform:[0.0001,0.01]}",
        "runner.sweep_id=asha",
    )
    proc = start_cli(workdir, *args, until="stopped early")
    stop_cli(proc, signal.SIGINT)
    assert proc.returncode == 130
    # Tune would resume the six trials it sampled whatever the new count: refused, forced or not
    forced = run_cli(workdir, *args, "search.num_samples=8", "runner.resume=force")
    assert forced.returncode == 2, forced.stderr[-2000:]
    assert "another search (search.num_samples: 6 -> 8)" in forced.stderr
    done = run_cli(workdir, *args, "hydra.run.dir=out")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    statuses = {m["name"]: m["status"] for m in summary["members"]}
    assert "STOPPED" in statuses.values() and summary["ensemble"] is not None, statuses
    client = MlflowClient(db)
    runs = client.search_runs(
        [client.get_experiment_by_name("quickstart").experiment_id],
        "tags.`runner.role` = 'member'",
    )
    ended = [r.data.tags["runner.member"] for r in runs if r.info.status in ("FINISHED", "KILLED")]
    assert sorted(set(ended)) == sorted(statuses), ended


@pytest.mark.slow
def test_an_interrupted_multirun_finishes_on_resume_each_job_in_its_own_sweep(workdir):
    """The multirun command again with runner.resume=true: a job that finished does nothing,
    the interrupted one resumes its own sweep, one never started starts; nothing doubled."""
    db = f"sqlite:///{workdir}/mlflow.db"
    common = [
        "+experiment=quickstart",
        *INFRA_MEMBERS,
        f"tracking.uri={db}",
        "smoke=true",
        "runner.smoke_epochs=40",
    ]
    first = run_cli(workdir, *common, "ensemble=mean")
    assert first.returncode == 0, first.stderr[-3000:]
    proc = start_cli(workdir, *common, "ensemble=greedy", until="mlp (mlp) started")
    _, stderr = stop_cli(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-2000:]
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    sweeps = "tags.`runner.role` = 'sweep'"
    (killed,) = [r for r in client.search_runs([experiment], sweeps) if r.info.status == "KILLED"]

    methods = "ensemble=mean,greedy,stacking"
    again = ("-m", *common, methods, "runner.resume=true", "hydra.sweep.dir=multi")
    done = run_cli(workdir, *again)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already finished" in done.stdout
    assert not (workdir / "multi" / "0" / "summary.json").exists()  # nothing to do
    assert read_summary(workdir / "multi" / "1")["parent_run_id"] == killed.info.run_id
    assert read_summary(workdir / "multi" / "2")["ensemble"]["method"] == "stacking"
    parents = client.search_runs([experiment], sweeps)
    assert len(parents) == 3 and all(r.info.status == "FINISHED" for r in parents)
    finished = Counter(
        r.data.tags["runner.member"]
        for r in client.search_runs([experiment])
        if r.data.tags["runner.role"] == "member" and r.info.status == "FINISHED"
    )
    assert finished == Counter({"mlp": 3, "logistic": 3, "svm": 3})
    # and once more: every job finished, nothing new
    assert run_cli(workdir, *again).returncode == 0
    assert len(client.search_runs([experiment], sweeps)) == 3


def test_a_multirun_job_finds_its_sweep_among_more_than_the_latest_fifty(tmp_path):
    """Each job's sweep is found by its config's digest: a long grid resumed late had looked
    at the 50 newest sweeps only, and trained its first jobs again."""
    from dataclasses import replace

    from test_spec import spec_of

    from runner.contracts import CONFIG_DIGEST
    from runner.runtree import RunTree, config_digest

    db = f"sqlite:///{tmp_path}/mlflow.db"
    spec = replace(spec_of(tmp=tmp_path), tracking_uri=db, resume=True, multirun_job=True)
    client = MlflowClient(db)
    exp = client.create_experiment(spec.experiment)
    for k in range(61):  # the job's own sweep first, then 60 newer ones of other configs
        digest = config_digest(spec.resolved) if k == 0 else f"other-{k}"
        tags = {"runner.role": "sweep", "runner.sweep_id": f"s{k}", CONFIG_DIGEST: digest}
        run = client.create_run(exp, start_time=1000 + k, tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED")
    assert RunTree.resumable_sweep_id(spec) == "s0"
    # a job whose config has no sweep yet starts one
    assert RunTree.resumable_sweep_id(replace(spec, resolved={"other": 1})) is None


STOPPED_WHILE_RAY_STARTS = """
import os, signal, sys
import ray
from runner import signals
from runner.cluster import ray_session
from runner.errors import SweepInterrupted
from runner.spec import ClusterSpec
real_init = ray.init
def init(**kwargs):  # the signal lands inside ray.init: before Ray's handler, or after it
    if sys.argv[1] == "before":
        os.kill(os.getpid(), signal.SIGTERM)
    real_init(**kwargs)
    os.kill(os.getpid(), signal.SIGTERM)  # Ray's own handler is set by now
ray.init = init
try:
    with ray_session(ClusterSpec(num_cpus=1), verbose=0):
        print("started")
except SweepInterrupted as err:
    print(f"interrupted: {err}; exit {signals.exit_code()}")
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_sigterm_while_ray_starts_is_said_and_exits_as_sigterm(tmp_path, when):
    """Ray's own handler, set while it starts, exited 15 without a word."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", STOPPED_WHILE_RAY_STARTS, when],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = "interrupted: stopped while Ray was starting, before anything was logged; exit 143"
    assert said in done.stdout, (done.returncode, done.stdout, done.stderr[-2000:])


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_stops_the_sweep_as_sigterm_to_the_driver(workdir):
    """`timeout`, systemd and CI cancels signal every process of the group: Ray's GCS and
    raylet died with it, and the driver waited 60 s for them, then aborted; the sentinel
    closed its runs without the reason."""
    import os
    import time

    db = f"sqlite:///{workdir}/mlflow.db"
    args = ["+experiment=quickstart", *INFRA_MEMBERS, f"tracking.uri={db}", "training.epochs=200"]
    proc = start_cli(workdir, *args, until="mlp (mlp) started", own_group=True)
    try:
        clock = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
        took = time.monotonic() - clock
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr[-2000:]
    assert took < 45, took  # not the GCS reconnection's 60 s
    assert "interrupted (stopped by SIGTERM)" in stderr, stderr[-2000:]
    assert "Failed to connect to GCS" not in stderr
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    assert runs and all(r.info.status == "KILLED" for r in runs), [r.info.status for r in runs]
    assert {r.data.tags.get("runner.error") for r in runs} == {"stopped by SIGTERM"}


INTERRUPTED_AS_THE_SWEEP_STARTS = """
import os, signal, sys
from runner import __main__ as cli, sentinel
from runner.runtree import RunTree
where = sys.argv.pop(1)
def interrupting(real):
    def call(*args, **kwargs):  # Ctrl+C just after the parent run was created
        if where == "lease":
            os.kill(os.getpid(), signal.SIGINT)
        out = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return out
    return call
if where == "sentinel":
    sentinel.start = interrupting(sentinel.start)
else:  # while the new parent run gets its params, config and lease
    RunTree._record_lease = interrupting(RunTree._record_lease)
sys.argv = ["runner", *sys.argv[1:]]
cli.main()
"""


@pytest.mark.parametrize("where", ["sentinel", "lease"])
def test_a_ctrl_c_just_after_the_parent_run_was_created_ends_it_killed(workdir, where):
    """The parent run stayed RUNNING while the console said its runs were marked KILLED: the
    sweep's try began after the sentinel started, and the tree's set-up after creating the
    run had no handler at all."""
    import subprocess
    import sys

    from helpers import _as_from_a_terminal

    db = f"sqlite:///{workdir}/mlflow.db"
    members = [f"~members.{m}" for m in ("mlp", "selu", "convnet", "resnet")]
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_AS_THE_SWEEP_STARTS, where, "+experiment=quickstart"]
        + [*members, f"tracking.uri={db}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_as_from_a_terminal,
    )
    assert done.returncode == 130, (done.stdout, done.stderr[-2000:])
    from mlflow.entities import ViewType

    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    runs = client.search_runs([experiment], run_view_type=ViewType.ALL)
    assert [r.info.status for r in runs] == ["KILLED"], [r.info.status for r in runs]
    # a run interrupted while it was set up holds nothing: deleted, so no resume takes it
    # for a sweep of before configs were recorded
    active = client.search_runs([experiment])
    assert len(active) == (1 if where == "sentinel" else 0), [r.info.run_id for r in active]


def test_multirun_jobs_differing_only_in_how_they_run_each_resume_their_own_sweep(
    tmp_path, monkeypatch
):
    """`-m cluster.num_cpus=1,2 runner.resume=true`: both jobs' configs have one digest (how
    a sweep runs is left out of it), so job 1 took job 0's finished sweep for its own ("nothing
    to do"), and after a Ctrl+C job 0 resumed job 1's sweep."""
    import sys
    from dataclasses import replace
    from types import SimpleNamespace

    from omegaconf import OmegaConf
    from test_spec import spec_of

    from runner.__main__ import _swept_volatile
    from runner.contracts import CONFIG_DIGEST, MULTIRUN_JOB
    from runner.runtree import RunTree, config_digest

    argv = ["runner", "-m", "+experiment=quickstart", "cluster.num_cpus=1,2", "ensemble=mean"]
    monkeypatch.setattr(sys, "argv", argv)
    task = ["+experiment=quickstart", "cluster.num_cpus=2", "ensemble=mean"]
    job = SimpleNamespace(overrides=SimpleNamespace(task=OmegaConf.create(task)))
    assert _swept_volatile(job) == "cluster.num_cpus=2"  # ensemble=mean is not swept
    # swept by the config's hydra.sweeper.params instead of the command line
    monkeypatch.setattr(sys, "argv", ["runner", "-m", "+experiment=quickstart"])
    sweeper = SimpleNamespace(params=OmegaConf.create({"cluster.num_cpus": "1,2", "seed": "0,1"}))
    task = ["cluster.num_cpus=1", "seed=0", "+experiment=quickstart"]
    job = SimpleNamespace(overrides=SimpleNamespace(task=OmegaConf.create(task)), sweeper=sweeper)
    assert _swept_volatile(job) == "cluster.num_cpus=1"
    monkeypatch.setattr(sys, "argv", argv)

    db = f"sqlite:///{tmp_path}/mlflow.db"
    spec = replace(spec_of(tmp=tmp_path), tracking_uri=db, resume=True, multirun_job=True)
    client = MlflowClient(db)
    exp = client.create_experiment(spec.experiment)
    for k, status in ((1, "FINISHED"), (2, "KILLED")):  # job 0's finished, job 1's newer
        tags = {
            "runner.role": "sweep",
            "runner.sweep_id": f"s{k}",
            CONFIG_DIGEST: config_digest(spec.resolved),
            MULTIRUN_JOB: f"cluster.num_cpus={k}",
        }
        run = client.create_run(exp, start_time=1000 + k, tags=tags)
        client.set_terminated(run.info.run_id, status)
    for k in (1, 2):
        mine = replace(spec, multirun_key=f"cluster.num_cpus={k}")
        assert RunTree.resumable_sweep_id(mine) == f"s{k}"
    assert RunTree.resumable_sweep_id(replace(spec, multirun_key="cluster.num_cpus=3")) is None
    # a sweep of a release that left a config's sweeper out of the key: untagged, found by
    # the values its recorded config holds (else every job of it trained anew)
    from runner.contracts import RESOLVED_CONFIG

    for k in (3, 4):
        tags = {
            "runner.role": "sweep",
            "runner.sweep_id": f"old{k}",
            CONFIG_DIGEST: config_digest(spec.resolved),
        }
        run = client.create_run(exp, start_time=2000 + k, tags=tags).info.run_id
        recorded = {**spec.resolved, "cluster": {**spec.resolved["cluster"], "num_cpus": k}}
        client.log_dict(run, recorded, RESOLVED_CONFIG)
        client.set_terminated(run, "FINISHED")
    for k in (3, 4):
        mine = replace(spec, multirun_key=f"cluster.num_cpus={k}")
        assert RunTree.resumable_sweep_id(mine) == f"old{k}"
    assert RunTree.resumable_sweep_id(replace(spec, multirun_key="cluster.num_cpus=5")) is None
