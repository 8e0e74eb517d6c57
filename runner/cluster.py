"""Ray start/attach and shutdown on the driver (TensorFlow threads and GPU memory in the
workers are the Keras kinds' business: models/keras_runtime.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner import process_env
from runner.errors import SweepInterrupted
from runner.spec import ClusterSpec, MemberSpec

# Keep TensorFlow's C++ start-up chatter out of the user's terminal; errors still show.
# the driver's environment defaults, for the workers (and a sweep that writes from a ray://
# head): bounded MLflow retries, no progress bars or run URLs in the output
WORKER_ENV = process_env.current()
METRICS_SWITCH = "RAY_enable_metrics_collection"  # Ray's own spelling of its config key


class ClusterError(RuntimeError):
    """The cluster cannot be reached or used as configured; one line for the user."""


def check_reachable(address: str, timeout: float) -> None:
    """Fail fast, in one line, when HOST:PORT does not accept connections, or answers as a web
    server (a dashboard's port: Ray would wait minutes for a GCS there)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            answer = _first_bytes(conn, min(timeout, 2.0))
    except OSError as err:
        raise ClusterError(
            f"cluster.address {address!r} is unreachable within {timeout:g}s "
            f"({type(err).__name__}: {err}); start the cluster or fix the address"
        ) from None
    if answer.startswith((b"HTTP/", b"<")):  # a status line, or an HTML error page
        raise ClusterError(
            f"cluster.address {address!r} answers as a web server (a Ray dashboard's port?), "
            "not as Ray: pass the address `ray start --head` printed (HOST:6379 by default), "
            "or ray://HOST:10001 for Ray Client"
        )


def _first_bytes(conn: socket.socket, timeout: float) -> bytes:
    """What the server sends back to HTTP/2's connection preface: Ray's gRPC servers (and a
    gRPC proxy before them) a SETTINGS frame, a web server that speaks HTTP/1 only an error
    (``HTTP/1.0 400`` or an HTML page); nothing within ``timeout``: empty."""
    conn.settimeout(timeout)
    try:
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        return conn.recv(16)
    except OSError:
        return b""


def _auth_hint(env: Mapping[str, str]) -> str:
    """What to check when attaching failed: the token settings Ray reads (never their values)."""
    if env.get("RAY_AUTH_MODE", "").lower() != "token":
        return (
            "; a cluster started by `ray start` wants token auth: set RAY_AUTH_MODE=token "
            "(and its token) here"
        )
    return (
        "; with RAY_AUTH_MODE=token, a token the cluster does not know is refused this way: "
        "check RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) against the cluster's"
    )


def _auto_address() -> str:
    """``cluster.address=auto``: ``RAY_ADDRESS``, else the cluster ``ray start`` last
    started on this machine; never Ray's fallback of any Ray process it finds running (the
    private instance of another user's sweep)."""
    from ray._private.services import find_bootstrap_address

    address = os.environ.get("RAY_ADDRESS") or find_bootstrap_address(None)
    if not address or address == "auto":
        raise ClusterError(
            "cluster.address=auto found no cluster: RAY_ADDRESS is unset and `ray start` "
            "started none on this machine; start one or pass cluster.address=HOST:PORT"
        )
    return address


def _package_dirs(model_modules: Sequence[str] = ()) -> list[str]:
    """The project's packages, shipped to cluster workers that may not have them installed,
    and the user's modules of model kinds (``runner.model_modules``) with their helpers."""
    import ensembles
    import models
    import runner
    from models.registry import users_code

    ours = [Path(m.__file__).parent for m in (runner, models, ensembles)]
    return [str(p) for p in ours + users_code(model_modules)]


# how Ray Client's proxy says the server it starts per connection did not come up (the
# process died, its channel was not ready within 30 s, or the proxy's own wait for it
# raised, as psutil.ZombieProcess when the process died while being looked at); other
# refusals would repeat
SESSION_STARTS = (
    "Starting Ray client server failed",
    "Proxy failed to Connect to backend",
    "in start_specific_server",
)


def _session_start_failed(address: str, err: BaseException) -> bool:
    """Whether a Ray Client head refused because the server it starts per connection did
    not come up: a passing fault of a busy head, not of the settings."""
    return address.startswith("ray://") and any(m in str(err) for m in SESSION_STARTS)


def _attach(address: str, runtime_env: dict, common: dict) -> None:
    """``ray.init`` on a running cluster. A Ray Client head starts a server process per
    connection, and on a busy head that start can fail once (its channel wait times out);
    a second connection gets a new one, so it is tried once more, said on stderr."""
    import ray

    try:
        ray.init(address=address, runtime_env=runtime_env, **common)
    except ConnectionAbortedError as err:
        if not _session_start_failed(address, err):
            raise
        print(
            f"warning: the head did not start a Ray Client session ({_reason(err)}); "
            "trying once more",
            file=sys.stderr,
            flush=True,
        )
        ray.init(address=address, runtime_env=runtime_env, **common)


def _reason(err: BaseException) -> str:
    """One line for an attach error: Ray Client puts the server's traceback under a
    heading line, and its last line says what went wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[-1]}"
    return lines[0]


@contextmanager
def ray_session(
    spec: ClusterSpec,
    verbose: int = 1,
    storage_path: str | None = None,
    model_modules: Sequence[str] = (),
) -> Iterator[None]:
    """Start a local Ray instance, or attach to a running cluster, and always let go of it.

    Attaching checks the address answers (within ``connect_timeout``) and that every alive
    node sees ``storage_path`` (Tune's checkpoints must be readable everywhere), and ships
    the project's packages and the user's ``model_modules`` to the workers.
    """
    import ray

    common = {
        "log_to_driver": verbose >= 2,
        "logging_level": logging.INFO if verbose >= 2 else logging.WARNING,
    }
    from runner import signals

    signals.install()  # a SIGTERM while Ray starts is said as any other (ray.init sets its own)
    try:
        if spec.kind == "local":
            # Local workers inherit the driver's environment. A job-wide runtime_env would do the
            # same, but then Ray boots a new worker process for each trial's actor instead of
            # handing it one of the workers it starts with the instance (about 1 s each).
            process_env.apply()  # the workers inherit the driver's environment
            # the metrics exporter listens on every interface and answers without the token;
            # nothing reads it without the dashboard (the instance's processes inherit this)
            quiet = not spec.include_dashboard and METRICS_SWITCH not in os.environ
            if quiet:
                os.environ[METRICS_SWITCH] = "0"
            try:
                with _ray_processes_in_a_session_of_their_own():
                    ray.init(
                        address="local",
                        num_cpus=spec.num_cpus,
                        num_gpus=spec.num_gpus,
                        include_dashboard=spec.include_dashboard,
                        dashboard_host=spec.dashboard_host,
                        **common,
                    )
            finally:
                if quiet:
                    os.environ.pop(METRICS_SWITCH, None)
        else:
            client = spec.address.startswith("ray://")
            if client:  # the sweep runs on the head; its output comes back through Ray's logs
                common["log_to_driver"] = True
            address = _auto_address() if spec.address == "auto" else spec.address
            check_reachable(address, spec.connect_timeout)
            try:
                code = _package_dirs(model_modules)
                _attach(address, {"env_vars": WORKER_ENV, "py_modules": code}, common)
            except (ConnectionError, RuntimeError) as err:
                hint = (
                    "; twice, so see ray_client_server*.err in the head's Ray logs "
                    "(/tmp/ray/session_latest/logs by default)"
                    if _session_start_failed(address, err)
                    else _auth_hint(os.environ)
                )
                raise ClusterError(
                    f"cannot attach to Ray at cluster.address={spec.address!r}"
                    f"{f' ({address})' if address != spec.address else ''}: "
                    f"{_reason(err)}{hint}"
                ) from None
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, SystemExit) and err.code != signal.SIGTERM:
            raise
        if isinstance(err, SystemExit):  # Ray's handler took the SIGTERM: exit(15)
            signals.note_sigterm()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl+C: still said as one
            ray.shutdown()
        raise SweepInterrupted(
            "stopped while Ray was starting, before anything was logged"
        ) from None
    signals.install()  # after ray.init: Ray's own SIGTERM handler aborts the driver
    try:
        remote = spec.kind == "address" and spec.address.startswith("ray://")
        if spec.kind == "address" and storage_path and "://" not in storage_path and not remote:
            check_storage_on_nodes(storage_path)
        with _cloud_keys_inherited() if spec.kind == "local" else contextlib.nullcontext():
            yield
    finally:
        if spec.kind == "local":
            _stop_monitor()
        ray.shutdown()


@contextlib.contextmanager
def _cloud_keys_inherited() -> Iterator[None]:
    """Tune hands the driver's AWS keys to each trial's actor in its runtime environment,
    which Ray writes in plain text to its session logs (readable by every user of the machine
    under /tmp/ray); a local instance's workers inherit the driver's environment, keys
    included, so Tune is left to pass none of them meanwhile."""
    try:  # Tune's own (private) list: a release without it hands them differently, if at all
        from ray.tune.execution import class_cache

        handed = set(class_cache.ENV_VARS_TO_PROPAGATE)
    except (ImportError, AttributeError, TypeError):
        yield
        return
    class_cache.ENV_VARS_TO_PROPAGATE = {v for v in handed if not v.startswith("AWS_")}
    try:
        yield
    finally:
        class_cache.ENV_VARS_TO_PROPAGATE = handed


@contextlib.contextmanager
def _ray_processes_in_a_session_of_their_own() -> Iterator[None]:
    """The processes a local Ray instance starts meanwhile (GCS, raylet, and the workers
    the raylet starts later) get a session of their own, so that a SIGTERM to the driver's
    process group (``timeout``, systemd's stop, a CI job's cancel) reaches the driver alone:
    it stops the sweep as after Ctrl+C and shuts them down. Killed with the group, they
    left the driver waiting 60 s for the GCS and then aborting, its runs closed by the
    sentinel with no reason. Only where the kernel kills them with the driver (Ray's
    fate-sharing on Linux), so that a driver's SIGKILL still leaves none behind. Through
    Ray's private process starter; a Ray without it keeps its processes in the group."""
    try:
        from ray._private import services, utils

        base = services.ConsolePopen
        shared = sys.platform.startswith("linux") and utils.detect_fate_sharing_support()
    except (ImportError, AttributeError):
        shared = False
    if not shared:
        yield
        return

    class OwnSession(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSession
    try:
        yield
    finally:
        services.ConsolePopen = base


def _stop_monitor() -> None:
    """Kill the local instance's autoscaler monitor at once. Ray's shutdown sends it SIGTERM,
    which it does not act on, and kills it a second later: a second added to every sweep's
    end. Through Ray's private node handle; a Ray without it only loses the second."""
    with contextlib.suppress(Exception):
        from ray._private import worker

        if worker._global_node is not None:
            worker._global_node.kill_monitor(check_alive=False)


def check_storage_on_nodes(storage_path: str) -> None:
    """Every alive node writes a marker into ``storage_path``; the driver must see them all."""
    import uuid

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    folder = Path(storage_path, f".runner-storage-check-{uuid.uuid4().hex[:8]}")

    @ray.remote(num_cpus=0)
    def touch(path: str) -> str:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(socket.gethostname())
        return str(target)

    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    refs = [
        touch.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            str(folder / node)
        )
        for node in nodes
    ]
    try:
        ray.get(refs, timeout=60)
        missing = [node for node in nodes if not (folder / node).is_file()]
    except Exception as err:  # a node without the path raises in the task
        missing = [f"({type(err).__name__}: {str(err).splitlines()[-1]})"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if missing:
        raise ClusterError(
            f"runner.storage_path {storage_path!r} is not shared: nodes {missing} wrote "
            "markers this machine cannot see; use a shared directory or a cloud URI"
        )


def node_resources() -> list[dict[str, float]]:
    """The CPUs and GPUs of each alive node of the cluster Ray is attached to."""
    import ray

    return [
        {"cpu": float(n["Resources"].get("CPU", 0.0)), "gpu": float(n["Resources"].get("GPU", 0.0))}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def _machine_cpus() -> float:
    """The CPUs a local Ray will declare: its own count, which honours a container's CPU
    quota (``os.cpu_count`` does not)."""
    try:
        from ray._private.utils import get_num_cpus

        return float(get_num_cpus(override_docker_cpu_warning=True))
    except (ImportError, AttributeError, TypeError):  # a Ray without it: the machine's
        return float(os.cpu_count() or 1)


def check_local_resources(
    spec: ClusterSpec, members: Sequence[MemberSpec], student: MemberSpec | None = None
) -> None:
    """``check_resources`` before a local Ray starts, on the one node it will have:
    ``cluster.num_cpus`` (or this machine's CPUs) and ``cluster.num_gpus`` where declared (GPUs
    Ray detects itself are checked once it has started)."""
    if spec.kind != "local":
        return
    asked = [m.resources.cpu for m in (*members, *([student] if student else []))]
    if spec.num_cpus is None and spec.num_gpus is None and max(asked, default=0.0) <= 1:
        return  # any machine Ray starts on has a CPU (and the GPUs it finds wait for Ray)
    cpus = spec.num_cpus if spec.num_cpus is not None else _machine_cpus()
    known = spec.num_gpus is not None  # else not known yet: only the CPUs are checked now
    node = [{"cpu": float(cpus), "gpu": float(spec.num_gpus) if known else float("inf")}]
    check_resources(members, node, True, gpus_known=known)
    if student is not None:
        check_resources([student], node, True, student=True, gpus_known=known)


def check_resources(
    members: Sequence[MemberSpec],
    nodes: Sequence[Mapping[str, float]],
    local: bool = True,
    student: bool = False,
    gpus_known: bool = True,
) -> None:
    """Every member's request fits on one node of the cluster as it is (a trial is one actor:
    it never spans nodes): an unmeetable one fails in one line, instead of Tune waiting for it
    forever. ``local``: the cluster is the sweep's own, sized by cluster.num_cpus/num_gpus;
    ``student``: the members are ensemble.distill's student."""
    total = {k: sum(n[k] for n in nodes) for k in ("cpu", "gpu")}
    largest = {k: max((n[k] for n in nodes), default=0.0) for k in ("cpu", "gpu")}
    for m in members:
        cpu, gpu = m.resources.cpu, m.resources.gpu
        if any(n["cpu"] >= cpu and n["gpu"] >= gpu for n in nodes):
            continue
        key, asked = ("gpu", gpu) if gpu > largest["gpu"] else ("cpu", cpu)
        if asked <= largest[key]:  # each fits some node, both together none
            key, asked = ("gpu", gpu) if gpu else ("cpu", cpu)
        where = f"the cluster has {total['cpu']:g} CPU(s) and {total['gpu']:g} GPU(s) in all"
        if not gpus_known:
            where = f"the cluster will have {total['cpu']:g} CPU(s)"
        if len(nodes) > 1:
            where += (
                f", at most {largest['cpu']:g} CPU(s) and {largest['gpu']:g} GPU(s) on one node "
                f"(a member runs on one node; it asks for {cpu:g} CPU(s) and {gpu:g} GPU(s))"
            )
        more = (
            "or declare more (cluster.num_cpus / cluster.num_gpus)"
            if local
            else "or add a node that large"
        )
        what = f"members.{m.name}.resources.{key}={asked:g}"
        if student:
            what = f"resources.{key}={asked:g} of the student (ensemble.distill={m.name})"
        raise ClusterError(f"{what} cannot be met: {where}; ask for less, {more}")
