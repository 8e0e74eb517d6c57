"""Clusters and GPUs: attaching to a running cluster (directly and through Ray Client), shared
storage, packing members onto one GPU (GPUs declared to Ray on a CPU machine), and clear
one-line failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_spec import spec_of

from helpers import (
    INFRA_MEMBERS,
    ROOT,
    TOY_KIND,
    free_port,
    read_summary,
    run_cli,
    start_cli,
    stop_cli,
)
from models.keras_runtime import gpu_memory_limit_mb
from runner.cluster import (
    ClusterError,
    _reason,
    _session_start_failed,
    _stop_monitor,
    check_reachable,
    check_resources,
    ray_session,
)
from runner.spec import ClusterSpec, Resources, SpecError


def test_fractional_gpus_become_memory_limits():
    assert gpu_memory_limit_mb(16000, 0.25) == 3600  # 90% of a quarter
    assert gpu_memory_limit_mb(16000, 1.0) is None  # a whole GPU grows on demand
    assert gpu_memory_limit_mb(None, 0.5) is None  # unknown total: grow on demand


def test_a_request_fits_one_node_or_fails_naming_the_largest_node():
    """A trial is one actor: 3 CPUs on nodes of 2 and 1 never start (Tune waited forever)."""
    from types import SimpleNamespace

    def member(cpu, gpu=0.0):
        return SimpleNamespace(name="m", resources=Resources(cpu, gpu))

    nodes = [{"cpu": 2.0, "gpu": 0.0}, {"cpu": 1.0, "gpu": 1.0}]
    check_resources([member(2), member(1, 1), member(0.5, 0.5)], nodes, local=False)
    with pytest.raises(ClusterError) as err:
        check_resources([member(3)], nodes, local=False)
    assert str(err.value) == (
        "members.m.resources.cpu=3 cannot be met: the cluster has 3 CPU(s) and 1 GPU(s) in all, "
        "at most 2 CPU(s) and 1 GPU(s) on one node (a member runs on one node; it asks for 3 "
        "CPU(s) and 0 GPU(s)); ask for less, or add a node that large"
    )
    with pytest.raises(ClusterError, match=r"^members.m.resources.gpu=1 cannot be met: .*"):
        check_resources([member(2, 1)], nodes, local=False)  # no node has both
    with pytest.raises(ClusterError, match=r"declare more \(cluster.num_cpus / cluster.num_gpus\)"):
        check_resources([member(1, 2)], [{"cpu": 2.0, "gpu": 1.0}], local=True)


def test_a_local_clusters_size_is_checked_before_ray_starts():
    """cluster=local: its CPUs (and GPUs where declared) are known before Ray starts, so an
    unmeetable request is refused then (it took a Ray start, 13-22 s on a busy machine)."""
    from types import SimpleNamespace

    from runner.cluster import check_local_resources

    def member(cpu, gpu=0.0, name="m"):
        return SimpleNamespace(name=name, resources=Resources(cpu, gpu))

    with pytest.raises(ClusterError) as err:
        check_local_resources(ClusterSpec(num_cpus=2), [member(1), member(3)])
    assert str(err.value) == (
        "members.m.resources.cpu=3 cannot be met: the cluster will have 2 CPU(s); ask for "
        "less, or declare more (cluster.num_cpus / cluster.num_gpus)"
    )
    with pytest.raises(ClusterError, match=r"^members.m.resources.gpu=1 cannot be met"):
        check_local_resources(ClusterSpec(num_cpus=2, num_gpus=0), [member(1, 1)])
    with pytest.raises(ClusterError, match=r"^members.m.resources.gpu=1 cannot be met"):
        check_local_resources(ClusterSpec(num_gpus=0), [member(1, 1)])  # GPUs declared alone
    check_local_resources(ClusterSpec(num_cpus=2), [member(1, 1)])  # GPUs Ray detects: later
    with pytest.raises(ClusterError, match=r"^resources.cpu=2 of the student"):
        check_local_resources(ClusterSpec(num_cpus=1), [member(1)], member(2, name="s"))
    check_local_resources(ClusterSpec(kind="address", address="h:1"), [member(99)])


def test_a_local_session_passes_the_worker_env_and_stops_its_monitor_at_once(monkeypatch):
    import ray
    from ray._private import worker

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with ray_session(ClusterSpec(num_cpus=1), verbose=0):

        @ray.remote(num_cpus=1)
        def env() -> str | None:
            return os.environ.get("TF_CPP_MIN_LOG_LEVEL")

        assert ray.get(env.remote()) == "2"  # TensorFlow's start-up chatter stays quiet
        # no metrics exporter: it listens on every interface and answers without the token
        (node,) = ray.nodes()
        assert node["MetricsExportPort"] <= 0, node["MetricsExportPort"]
        assert "RAY_enable_metrics_collection" not in os.environ  # the driver's left as it was
        monitor = worker._global_node.all_processes["monitor"][0].process
        _stop_monitor()
        monitor.wait(timeout=0.5)  # killed, not asked to stop (it would take a second)


def test_an_unreachable_address_fails_fast_in_one_line():
    with pytest.raises(ClusterError, match=r"127.0.0.1:9' is unreachable within 0.5s") as err:
        check_reachable("127.0.0.1:9", 0.5)
    assert "\n" not in str(err.value)


def test_an_address_that_answers_as_a_web_server_is_refused_at_once():
    """The dashboard's port accepts connections; Ray waited minutes there for a GCS."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        with pytest.raises(
            ClusterError, match=r"answers as a web server .* \(HOST:6379 by default\)"
        ):
            check_reachable(address, 5)
    finally:
        server.shutdown()
    # Ray's own gRPC servers answer with an HTTP/2 frame: they pass (a Ray of its own, in a
    # process of its own: this one may hold another test's)
    probe = (
        "import ray; from runner.cluster import check_reachable; "
        "ctx = ray.init(address='local', num_cpus=1, include_dashboard=True, "
        "log_to_driver=False); check_reachable(ctx.address_info['gcs_address'], 5); "
        "print('gcs passes'); check_reachable(ctx.dashboard_url, 5)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert "gcs passes" in done.stdout, done.stderr[-2000:]
    assert "answers as a web server (a Ray dashboard's port?)" in done.stderr, done.stderr[-2000:]


def test_a_refused_attach_points_at_the_token_settings_never_their_values():
    from runner.cluster import _auth_hint

    assert "set RAY_AUTH_MODE=token" in _auth_hint({})
    assert "set RAY_AUTH_MODE=token" in _auth_hint({"RAY_AUTH_MODE": "disabled"})
    said = _auth_hint({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "s3cret"})
    assert "check RAY_AUTH_TOKEN" in said and "s3cret" not in said


def test_a_ray_client_refusal_is_said_by_its_last_line():
    """Ray Client puts the head's traceback under "Initialization failure from server:"; the
    user's line keeps the heading and the traceback's verdict, not an empty first line."""
    refused = ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        '  File "proxier.py", line 772, in Datapath\n    raise RuntimeError(\n'
        "RuntimeError: Proxy failed to Connect to backend! Check the logs.\n"
    )
    assert _reason(refused) == (
        "Initialization failure from server: RuntimeError: Proxy failed to Connect to "
        "backend! Check the logs."
    )
    assert _reason(ConnectionError("refused\nmore")) == "refused"
    assert _reason(RuntimeError("")) == "RuntimeError"


def test_a_per_connection_server_dying_as_the_proxy_looks_is_tried_once_more():
    """The proxy's wait for the server it starts per connection can raise itself (a process
    that died between two looks is a psutil.ZombieProcess): a passing fault of the head, so
    the attach is retried and, if it fails again, pointed at the head's logs, not at tokens."""
    died = ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        '  File "proxier.py", line 764, in Datapath\n'
        '  File "proxier.py", line 396, in start_specific_server\n'
        "    cmd = psutil_proc.cmdline()\n"
        "psutil.ZombieProcess: PID still exists but it's a zombie (pid=9239)\n"
    )
    assert _session_start_failed("ray://head:10001", died)
    assert not _session_start_failed("head:6379", died)  # no proxy without ray://
    refused = ConnectionAbortedError("Initialization failure from server:\nbad token\n")
    assert not _session_start_failed("ray://head:10001", refused)
    assert _reason(RuntimeError("")) == "RuntimeError"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["cluster=address", "cluster.address=null"], "cluster=address needs an address"),
        (["cluster=address", "cluster.address=head"], "must be auto, HOST:PORT or ray://"),
        (["cluster=address"], "needs storage every node shares"),
        (["cluster=address", "runner.storage_path=/nope/shared"], "is not a directory"),
        # an address without cluster=address quietly started a Ray of its own
        (["cluster.address=127.0.0.1:6390"], r"^cluster.address: '127.0.0.1:6390' is for "),
        (["cluster=address", "cluster.num_gpus=4"], r"cluster.num_gpus=4 applies to cluster="),
        (["resources.gpu=1.5"], r"resources.gpu: above 1 must be a whole number .* got 1.5$"),
    ],
)
def test_cluster_settings_are_checked(overrides, message):
    with pytest.raises(SpecError, match=message):
        spec_of(*overrides)


def test_unreachable_cluster_exits_before_any_mlflow_run(workdir):
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "cluster=address",
        "cluster.address=127.0.0.1:9",
        "cluster.connect_timeout=1",
        f"runner.storage_path={workdir}",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cluster.address '127.0.0.1:9' is unreachable within 1s")
    assert not (workdir / "mlflow.db").exists()


def test_auto_resolves_its_address_and_checks_it_like_any_other(workdir, monkeypatch):
    # RAY_ADDRESS (or the cluster `ray start` left on record) is probed within the timeout;
    # Ray's own lookup waited minutes on a dead address, or took any Ray process it found
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "cluster=address",
        "cluster.address=auto",
        "cluster.connect_timeout=1",
        f"runner.storage_path={workdir}",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cluster.address '127.0.0.1:9' is unreachable within 1s")
    assert not (workdir / "mlflow.db").exists()


@pytest.mark.slow
def test_four_members_share_one_declared_gpu(workdir):
    """Ray on this CPU machine is told it has one GPU; four members at 0.25 GPU each run
    together on it, and each run records the device and grant it had."""
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "cluster.num_gpus=1",
        "cluster.num_cpus=2",
        "resources.gpu=0.25",
        "resources.cpu=0.5",
        "training.epochs=3",
        "~members.svm",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    client = MlflowClient(db)
    runs = [client.get_run(m["run_id"]) for m in summary["members"]]
    assert {r.data.tags["runner.resources.gpu"] for r in runs} == {"0.25"}
    assert {r.data.tags["runner.gpu_ids"] for r in runs} == {"0"}  # one shared device
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert overlap >= 3  # the fractions let several members hold the GPU at once


@dataclass(frozen=True)
class TwoNodes:
    """A running two-node cluster: where to attach, and where to connect a Ray Client."""

    address: str
    client_address: str


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    """A head and a worker node on this machine, one CPU each, shared by the attach and Ray
    Client tests (starting a cluster costs seconds); the Ray Client server listens on
    127.0.0.1. (`ray job submit` gets a head of its own in test_deploy: nodes on one machine
    share a session directory, so a working_dir one node lets go of vanishes for the other.)"""
    from ray.cluster_utils import Cluster

    port = free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "ray_client_server_port": port},
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield TwoNodes(cluster.address, f"ray://127.0.0.1:{port}")
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_runner_attaches_to_a_two_node_cluster_and_uses_both_nodes(two_nodes, workdir, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "cluster=address",
        f"cluster.address={two_nodes.address}",
        f"runner.storage_path={shared}",
        "training.epochs=2",
        *INFRA_MEMBERS,
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    assert all(m["status"] == "FINISHED" for m in summary["members"])
    assert summary["ensemble"] is not None
    client = MlflowClient(db)
    nodes = Counter(
        client.get_run(m["run_id"]).data.tags["runner.node_id"] for m in summary["members"]
    )
    assert len(nodes) == 2, nodes  # members ran on both nodes
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
def test_a_kind_from_the_users_folder_trains_on_cluster_nodes_that_lack_it(
    two_nodes, workdir, tmp_path
):
    """The nodes were started without the user's kind on their path: the runner ships its
    module and the helper beside it that it imports to the workers, as it ships its own."""
    team = tmp_path / "team_code"
    team.mkdir()
    for name in ("toy_kind.py", "toy_model.py"):
        shutil.copy(ROOT / "tests" / name, team / name)
    shared = tmp_path / "shared"
    shared.mkdir()
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "cluster=address",
        f"cluster.address={two_nodes.address}",
        f"runner.storage_path={shared}",
        "smoke=true",
        *TOY_KIND,
        "+model@members.toy=toy",
        "~members.mlp",
        *INFRA_MEMBERS,
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
        "hydra.run.dir=out",
        pythonpath=team,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    toy = next(m for m in summary["members"] if m["name"] == "toy")
    assert toy["status"] == "FINISHED", toy


@pytest.mark.gpu
def test_tensorflow_caps_memory_at_the_granted_fraction(tmp_path):
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU on this machine (nvidia-smi not found)")
    code = (
        "import tensorflow as tf\n"
        "from models.keras_runtime import configure_tensorflow\n"
        "out = configure_tensorflow(1, 0.25)\n"
        "assert tf.config.list_physical_devices('GPU'), 'TensorFlow sees no GPU'\n"
        "gpu = tf.config.list_physical_devices('GPU')[0]\n"
        "(cfg,) = tf.config.get_logical_device_configuration(gpu)\n"
        "assert cfg.memory_limit == out['gpu_memory_limit_mb'], (cfg, out)\n"
        "print('ok', cfg.memory_limit)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if "TensorFlow sees no GPU" in done.stderr:
        pytest.skip("TensorFlow was built without GPU support here")
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_ray_client_address_runs_the_sweep_on_the_head(two_nodes, workdir, tmp_path):
    """cluster.address=ray://...: the sweep runs as a task on the head (Tune would put its
    loop there anyway); MLflow gets one complete run tree and summary.json lands here."""
    shared = tmp_path / "shared"
    shared.mkdir()
    db = f"sqlite:///{workdir}/mlflow.db"

    def on_client(*overrides: str):
        return run_cli(
            workdir,
            "+experiment=quickstart",
            "cluster=address",
            f"cluster.address={two_nodes.client_address}",
            f"runner.storage_path={shared}",
            *overrides,
        )

    relative = on_client("tracking.uri=sqlite:///mlflow.db")
    assert relative.returncode == 2 and "runs on the head" in relative.stderr
    # refused on the head: the runner's one line, not Ray's traceback
    unmet = on_client("smoke=true", *INFRA_MEMBERS, f"tracking.uri={db}", "resources.gpu=1")
    assert unmet.returncode == 2, unmet.stderr[-3000:]
    (line,) = [x for x in unmet.stderr.splitlines() if x.startswith("error:")]
    assert "resources.gpu=1 cannot be met" in line and "ray::" not in unmet.stderr
    # the store is probed from the head, which writes to it
    dead = on_client("smoke=true", *INFRA_MEMBERS, "tracking.uri=http://127.0.0.1:9")
    assert dead.returncode == 2, dead.stderr[-3000:]
    (line,) = [x for x in dead.stderr.splitlines() if x.startswith("error:")]
    assert "from the head: tracking.uri http://127.0.0.1:9 is unreachable" in line, line
    done = on_client("smoke=true", *INFRA_MEMBERS, f"tracking.uri={db}", "hydra.run.dir=out")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    assert summary["ensemble"] is not None
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    assert sorted(r.data.tags["runner.role"] for r in runs).count("sweep") == 1
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow
def test_ctrl_c_stops_a_ray_client_sweep_on_the_head(two_nodes, workdir, tmp_path):
    """The sweep runs as a task on the head: Ctrl+C on the client cancels it, and the runs it
    had open end KILLED, as in a local sweep (it used to run on to FINISHED)."""
    import signal

    shared = tmp_path / "shared"
    shared.mkdir()
    db = f"sqlite:///{workdir}/mlflow.db"
    proc = start_cli(
        workdir,
        "+experiment=quickstart",
        *INFRA_MEMBERS,
        "training.epochs=200",
        "cluster=address",
        f"cluster.address={two_nodes.client_address}",
        f"runner.storage_path={shared}",
        f"tracking.uri={db}",
        until="mlp (mlp) started",
    )
    _, stderr = stop_cli(proc, signal.SIGINT, timeout=180)
    assert proc.returncode == 130, stderr[-3000:]
    client = MlflowClient(db)
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    (parent,) = [r for r in runs if r.data.tags["runner.role"] == "sweep"]
    assert parent.info.status == "KILLED"
    assert not [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
    assert not [r for r in runs if r.data.tags["runner.role"] == "ensemble"]


def test_a_local_sweep_writes_no_aws_key_into_rays_logs_and_trials_still_have_it(
    monkeypatch, tmp_path
):
    """Tune put the driver's AWS keys in every trial actor's runtime environment, which Ray
    logged in plain text under /tmp/ray, readable by every user of the machine."""
    import ray
    from ray import tune
    from ray._private import worker

    secret = "SEKRET-aws-4242"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with ray_session(ClusterSpec(num_cpus=1), verbose=0):

        def trial(config):
            return {"has_key": os.environ.get("AWS_SECRET_ACCESS_KEY") == secret}

        grid = tune.Tuner(
            trial, run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)
        ).fit()
        assert grid[0].metrics["has_key"]  # inherited, as every local worker's environment
        logs = Path(worker._global_node.get_logs_dir_path())
        holding = [
            p.name
            for p in logs.rglob("*")
            if p.is_file() and secret in p.read_text(errors="ignore")
        ]
    assert holding == []
    assert "AWS_SECRET_ACCESS_KEY" in ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE
