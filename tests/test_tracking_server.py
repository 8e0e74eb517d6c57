"""A team tracking server as a real component: ``mlflow server`` on PostgreSQL (Debian's
postgresql, started here on loopback), a sweep against it, and the server stopped and
restarted mid-sweep: the sweep finishes with every member recorded once."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import INFRA_MEMBERS, free_port, read_summary, run_cli, start_cli, sweep_runs


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*cmd: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 with an empty database ``mlflow``; its URI."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    try:
        import psycopg2  # noqa: F401  (MLflow's driver for postgresql:// stores)
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install -e '.[dev]')")
    # outside pytest's tmp folders, which the postgres user may not enter
    root = Path(tempfile.mkdtemp(prefix="runner-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        _as_postgres(str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    start = _as_postgres(
        str(pg / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "log"),
        "-w",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {root}",
        "start",
    )
    subprocess.run(start, check=True, capture_output=True)
    try:
        subprocess.run(
            _as_postgres(
                str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"
            ),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            _as_postgres(str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 against ``backend``, artifacts proxied to a folder."""

    def __init__(self, backend: str, artifacts: Path, extra: tuple[str, ...] = ()) -> None:
        self.backend, self.artifacts, self.port = backend, artifacts, free_port()
        self.extra = extra  # more options of ``mlflow server``
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--artifacts-destination",
                str(self.artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            # as deploy/README.md says: a password in the environment, not on a command line
            env={**os.environ, "MLFLOW_BACKEND_STORE_URI": self.backend},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except urllib.error.HTTPError:  # it answers (refusing this client's request)
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"mlflow server did not answer on {self.uri} in {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def mlflow_server(postgres: str, tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(postgres, tmp_path / "artifacts")
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_sweep_survives_a_tracking_server_restart_and_records_each_member_once(
    mlflow_server, workdir
):
    proc = start_cli(
        workdir,
        "+experiment=quickstart",
        "tracking=server",
        f"tracking.uri={mlflow_server.uri}",
        *INFRA_MEMBERS,
        "training.epochs=30",
        "hydra.run.dir=out",
        # registered, and loaded back from the server's artifacts (with no MLflow variable
        # set, which run_cli clears, the download fell back to a local SQLite store)
        "ensemble.register_as=team_digits",
        "ensemble.champion=true",
        until="mlp (mlp) started",  # runs exist, epochs are being logged
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7"},  # ride out the restart: up to 2 minutes
    )
    try:
        mlflow_server.stop()  # the team's server goes away mid-sweep ...
        time.sleep(3)
        mlflow_server.start()  # ... and comes back on the same address
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "View run" not in out  # MLflow's two lines per ended run, with a request each
    summary = read_summary(workdir / "out")
    assert all(m["status"] == "FINISHED" for m in summary["members"]), summary["members"]
    client = MlflowClient(mlflow_server.uri)
    runs = sweep_runs(client, summary["sweep_id"])
    assert Counter(r.data.tags["runner.role"] for r in runs) == Counter(
        {"sweep": 1, "member": 3, "ensemble": 1}
    )
    assert all(r.info.status == "FINISHED" for r in runs)
    mlp = next(r for r in runs if r.data.tags.get("runner.member") == "mlp")
    epochs = [m.step for m in client.get_metric_history(mlp.info.run_id, "loss")]
    assert epochs == list(range(1, 31))  # no epoch lost, none doubled, across the restart
    # the ensemble's model is stored on the server's artifact root and serves from it
    model_uri = summary["ensemble"]["model_uri"]
    assert client.list_artifacts(summary["ensemble"]["run_id"], "model")
    assert model_uri.endswith("/model")
    champion = summary["ensemble"]["champion"]
    assert champion["decision"] == "first champion", champion
    assert client.get_model_version_by_alias("team_digits", "champion").version == "1"
    # a colleague re-ensembles it through the server, their password in the URI: MLflow's
    # "View run ... at <uri>" lines (with the password) stay out of the output
    uri = mlflow_server.uri.replace("http://", "http://alice:pw-Zq7@")
    again = subprocess.run(
        [sys.executable, "-m", "ensembles", "experiment=quickstart", "method=mean"]
        + [f"tracking_uri={uri}", f"sweeps={summary['sweep_id']}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pw-Zq7" not in again.stdout + again.stderr and "View run" not in again.stdout


@pytest.mark.slow
def test_a_store_down_for_good_stops_in_one_line_and_a_resume_loses_and_doubles_nothing(
    mlflow_server, workdir
):
    args = [
        "+experiment=quickstart",
        "tracking=server",
        f"tracking.uri={mlflow_server.uri}",
        *INFRA_MEMBERS,
        "training.epochs=30",
        "runner.sweep_id=store-down",
    ]
    proc = start_cli(
        workdir,
        *args,
        until="mlp (mlp) started",
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},  # the server stays down: fail at once
    )
    try:
        mlflow_server.stop()
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "the tracking store failed mid-sweep" in errors[0], stderr[-3000:]
    assert "resume with runner.sweep_id=store-down once the store answers" in errors[0]
    assert "Traceback" not in stderr

    mlflow_server.start()
    done = run_cli(workdir, *args, "hydra.run.dir=out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "View run" not in done.stdout
    summary = read_summary(workdir / "out")
    assert all(m["status"] == "FINISHED" for m in summary["members"])
    client = MlflowClient(mlflow_server.uri)
    runs = sweep_runs(client, "store-down")
    finished = Counter(
        r.data.tags["runner.member"]
        for r in runs
        if r.data.tags["runner.role"] == "member" and r.info.status == "FINISHED"
    )
    assert finished == Counter({"mlp": 1, "logistic": 1, "svm": 1})
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (parent,) = [r for r in runs if r.data.tags["runner.role"] == "sweep"]
    assert parent.info.status == "FINISHED" and parent.info.run_id == summary["parent_run_id"]


@pytest.mark.slow
def test_a_database_store_refusing_the_login_stops_in_one_line_before_ray(postgres, workdir):
    """A wrong user or database name (or password) is said at once by the probe's login, in
    one line without the password, before Ray starts: MLflow's engine retried for minutes,
    silently, then printed a traceback."""
    host = postgres.split("@", 1)[1].split("/", 1)[0]
    for uri, reason in (
        (f"postgresql+psycopg2://nobody:pw-Wr0ng@{host}/mlflow", 'role "nobody" does not exist'),
        (postgres.rsplit("/", 1)[0] + "/nodb", 'database "nodb" does not exist'),
    ):
        done = run_cli(workdir, "+experiment=quickstart", *INFRA_MEMBERS, f"tracking.uri={uri}")
        assert done.returncode == 2, done.stderr[-2000:]
        (line,) = [x for x in done.stderr.splitlines() if x.strip()]
        assert "the database refused the login" in line and reason in line, line
        assert "pw-Wr0ng" not in done.stdout + done.stderr
        assert not (workdir / "ray_results").exists()  # nothing started


@pytest.mark.slow
@pytest.mark.parametrize("multirun", [False, True])
def test_a_store_password_is_in_no_file_the_sweep_writes_nor_in_its_output(
    postgres, workdir, multirun
):
    secret = "pw-s3cret-42"
    uri = postgres.replace("postgres@", f"postgres:{secret}@")  # trust auth ignores it
    mode = ["--multirun", "hydra.sweep.dir=out"] if multirun else ["hydra.run.dir=out"]
    done = run_cli(
        workdir,
        *mode,
        "+experiment=quickstart",
        f"tracking.uri={uri}",
        # an experiment of its own: the module's server tests made 'quickstart' in this
        # database with mlflow-artifacts:/ locations, which only a server can write
        f"experiment_name=secret-{'multirun' if multirun else 'run'}",
        *INFRA_MEMBERS,
        "training.epochs=2",
        f"runner.storage_path={workdir / 'tune'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert secret not in done.stdout + done.stderr
    job = workdir / "out" / ("0" if multirun else "")
    assert (job / ".hydra" / "overrides.yaml").is_file()
    assert (workdir / "out" / "multirun.yaml").is_file() == multirun
    assert (workdir / "tune").is_dir()
    holding = [
        str(path.relative_to(workdir))
        for path in workdir.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]
    assert holding == []


def test_a_server_refusing_the_host_name_is_said_as_that_not_as_credentials(tmp_path):
    """MLflow 3 answers 403 to a Host header it was not told to allow (--allowed-hosts): the
    probe said the server "refused the credentials", and the user chased a password."""
    from runner.store_probe import StoreUnavailable, probe

    server = MlflowServer(
        f"sqlite:///{tmp_path}/s.db", tmp_path / "artifacts", ("--allowed-hosts", "only.example")
    )
    server.start()
    try:
        with pytest.raises(StoreUnavailable) as refused:
            probe(server.uri, 10)
    finally:
        server.stop()
    text = str(refused.value)
    assert f"refuses requests addressed to 127.0.0.1:{server.port}" in text, text
    assert "--allowed-hosts" in text and "credentials" not in text, text
