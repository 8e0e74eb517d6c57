"""The tracking store is probed before Ray starts: a dead, refusing or unwritable store fails
in one line within tracking.connect_timeout, without MLflow's minutes of retries."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from helpers import free_port, run_cli


def _one_error_line(done) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


def test_an_unreachable_tracking_server_fails_in_one_line_within_the_timeout(workdir):
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    done = run_cli(workdir, "+experiment=quickstart", f"tracking.uri={uri}", timeout=120)
    took = time.monotonic() - start
    line = _one_error_line(done)
    assert line.startswith(f"error: tracking.uri {uri} is unreachable within 10s")
    assert took < 15, took
    assert not (workdir / "ray_results").exists() and not (workdir / "mlruns").exists()


class _Refusing(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_wrong_credentials_fail_in_one_line_and_the_password_is_not_printed(
    workdir, refusing_server
):
    uri = f"http://bob:s3cret@127.0.0.1:{refusing_server}"
    done = run_cli(
        workdir, "+experiment=quickstart", f"tracking.uri={uri}", "tracking.connect_timeout=3"
    )
    line = _one_error_line(done)
    assert "refused the credentials (HTTP 401)" in line
    assert "s3cret" not in done.stderr + done.stdout
    assert "bob:***@" in line


def test_a_store_path_that_cannot_be_written_fails_in_one_line(workdir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = run_cli(workdir, "+experiment=quickstart", f"tracking.uri=sqlite:///{blocker}/m.db")
    line = _one_error_line(done)
    assert "cannot create the store" in line and "a-file: not a directory" in line


def test_a_store_file_that_is_no_sqlite_database_fails_in_one_line_at_once(workdir, tmp_path):
    """MLflow retried opening it for minutes (twice), then printed a traceback."""
    other = tmp_path / "notes.db"
    other.write_text("a log file, not a database\n")
    start = time.monotonic()
    done = run_cli(workdir, "+experiment=quickstart", f"tracking.uri=sqlite:///{other}")
    line = _one_error_line(done)
    assert line == (
        f"error: tracking.uri sqlite:///{other}: {other} is not a SQLite database; point it at "
        "an MLflow store or at a new file"
    )
    assert time.monotonic() - start < 60
    assert other.read_text() == "a log file, not a database\n"


def test_a_bad_connect_timeout_is_refused(workdir):
    done = run_cli(workdir, "+experiment=quickstart", "tracking.connect_timeout=0")
    assert "tracking.connect_timeout: must be a finite number >= 0.1, got 0" in _one_error_line(
        done
    )


def test_a_database_uri_whose_driver_is_missing_fails_in_one_line_without_its_password(workdir):
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed here: postgresql:// has its driver")
    uri = "postgresql://mlflow:pgPW123@127.0.0.1:5439/mlflow"  # SQLAlchemy's default: psycopg
    done = run_cli(workdir, "+experiment=quickstart", f"tracking.uri={uri}")
    line = _one_error_line(done)
    assert "its database driver is not installed (No module named 'psycopg')" in line
    assert "postgresql+psycopg2://" in line and "pgPW123" not in done.stderr + done.stdout


def test_a_file_store_is_refused_as_mlflow_refuses_it(workdir, tmp_path):
    done = run_cli(workdir, "+experiment=quickstart", f"tracking.uri=file://{tmp_path}/mlruns")
    assert "MLflow refuses file stores (maintenance mode)" in _one_error_line(done)


@pytest.mark.parametrize(
    ("storage", "said"),
    [
        ("nosuch://bucket/x", "Unrecognized filesystem type"),
        ("s3://bucket/x?endpoint_override=127.0.0.1:9&scheme=http", "Could not connect"),
    ],
)
def test_a_storage_uri_that_cannot_be_used_fails_in_one_line_before_ray(workdir, storage, said):
    done = run_cli(workdir, "+experiment=quickstart", f"runner.storage_path='{storage}'")
    line = _one_error_line(done)
    assert line.startswith(f"error: runner.storage_path {storage}: ") and said in line
    assert not (workdir / "mlruns").exists() and not list(workdir.glob("*.db"))


def test_probe_storage_refuses_a_file_and_accepts_a_folder_to_be(tmp_path):
    from runner.storage_probe import StorageUnavailable, probe_storage

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StorageUnavailable, match="is a file, not a folder"):
        probe_storage(f"file://{tmp_path / 'a-file'}", timeout=5)
    probe_storage(f"file://{tmp_path / 'new' / 'folder'}", timeout=5)
    assert not (tmp_path / "new").exists()


def test_probing_a_store_this_process_writes_keeps_its_write_ahead_log(tmp_path):
    """A multirun's later job probes the store its earlier job's connections hold open. Its
    header read by open() and close() dropped this process's locks on the file: another
    process closing the store then took itself for the last user and deleted the
    write-ahead log this process still wrote to (its later runs never reached the store)."""
    import sqlite3
    import subprocess
    import sys

    from runner.store_probe import probe

    db = tmp_path / "mlflow.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1)")
    probe(f"sqlite:///{db}", timeout=5)
    reader = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('select * from t')"
    subprocess.run([sys.executable, "-c", reader + "; c.close()", str(db)], check=True)
    assert (tmp_path / "mlflow.db-wal").exists()  # still this process's, not checkpointed away
    writer.execute("INSERT INTO t VALUES (2)")
    count = "; print(c.execute('select count(*) from t').fetchone()[0])"
    seen = subprocess.run(
        [sys.executable, "-c", reader + count, str(db)], capture_output=True, text=True
    )
    assert seen.stdout.strip() == "2"
    writer.close()


def test_the_probe_checks_an_https_servers_certificate_as_mlflow_is_told_to(tmp_path, monkeypatch):
    """A self-signed server MLflow accepts (MLFLOW_TRACKING_INSECURE_TLS or a CA bundle in
    MLFLOW_TRACKING_SERVER_CERT_PATH) was refused by the probe as unreachable."""
    import http.server
    import shutil
    import ssl
    import subprocess
    import threading

    from runner.store_probe import StoreUnavailable, _probe_server

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"experiments": []}')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"https://127.0.0.1:{server.server_port}"
    try:
        for name in ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(StoreUnavailable):
            _probe_server(uri, 5.0, uri)  # the system's CAs do not know it
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
        _probe_server(uri, 5.0, uri)
        monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
        monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
        _probe_server(uri, 5.0, uri)
        monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "1")  # as MLflow reads it too
        _probe_server(uri, 5.0, uri)
        monkeypatch.delenv("MLFLOW_TRACKING_INSECURE_TLS")
        folder = tmp_path / "cas"  # a folder of CA certificates, hashed as OpenSSL looks them up
        folder.mkdir()
        digest = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", str(cert)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        (folder / f"{digest}.0").write_bytes(cert.read_bytes())
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(folder))
        _probe_server(uri, 5.0, uri)
    finally:
        server.shutdown()
