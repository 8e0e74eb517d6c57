"""The MLflow store is a dependency that can fail: probe it before Ray starts, in bounded
time, without MLflow's own retries (minutes against a dead server), and say in one line
what is wrong: unreachable, wrong credentials, or a path that cannot be written.

Imports neither MLflow nor Ray.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from runner.folders import unmakeable_folder

SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "token", "secret", "key", "signature", "sig")


def redact_uri(uri: str) -> str:
    """The URI without a password or secret query values (``?token=...``), safe to print
    and to store."""
    parts = urlsplit(uri)
    pairs = [pair.partition("=") for pair in parts.query.split("&")] if parts.query else []
    secret = [any(s in k.lower() for s in SECRET_QUERY_KEYS) and eq for k, eq, _ in pairs]
    # http://TOKEN@host: a server's user name alone is a token (sent as basic auth); a
    # database's (postgresql://bob@db) is a user name
    token = parts.scheme in ("http", "https") and parts.username and not parts.password
    if parts.password is None and not token and not any(secret):
        return uri  # unchanged, to the letter (urlunsplit would drop sqlite:///'s empty host)
    if token:  # TOKEN@ or TOKEN:@ (an empty password)
        parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])
    elif parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    query = "&".join(
        f"{k}{eq}***" if hide else f"{k}{eq}{v}"
        for (k, eq, v), hide in zip(pairs, secret, strict=True)
    )
    return urlunsplit(parts._replace(query=query))


DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


class StoreUnavailable(RuntimeError):
    """The MLflow store cannot be used as configured; one line for the user."""


def probe(uri: str, timeout: float, shown: str | None = None) -> None:
    """Raise StoreUnavailable if the store at ``uri`` cannot be reached, authenticated to or
    written within ``timeout`` seconds; ``shown`` is the URI as it may be printed (by default
    ``uri`` without its credentials)."""
    shown = redact_uri(uri) if shown is None else shown
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme in ("http", "https"):
        _probe_server(uri, timeout, shown)
    elif scheme == "sqlite":
        path = uri[len("sqlite:///") :].split("?", 1)[0]  # without SQLAlchemy's ?mode=...
        if path:  # sqlite:// alone is a store in memory
            _probe_path(Path(path), shown, is_file=True)
    elif scheme == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
            raise StoreUnavailable(
                f"tracking.uri {shown}: MLflow refuses file stores (maintenance mode); use "
                "sqlite:///PATH/mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true"
            )
        _probe_path(Path(unquote(parts.path)), shown, is_file=False)
    elif scheme in DATABASE_PORTS:
        _probe_driver(uri, shown)
        _probe_socket(
            parts.hostname or "localhost", parts.port or DATABASE_PORTS[scheme], timeout, shown
        )
        _probe_login(uri, timeout, shown)


def _probe_driver(uri: str, shown: str) -> None:
    """The database's Python driver that SQLAlchemy picks for the URI's scheme imports."""
    from sqlalchemy.engine import make_url

    try:
        make_url(uri).get_dialect().import_dbapi()
    except ImportError as err:
        raise StoreUnavailable(
            f"tracking.uri {shown}: its database driver is not installed ({err}); install it, "
            "or name an installed one in the scheme (e.g. postgresql+psycopg2://)"
        ) from None


# what a database says when the login itself is wrong (the rest, such as "too many clients"
# or "starting up", may pass: MLflow's own retries wait those out)
LOGIN_REFUSALS = (
    "password",
    "authentication",
    "does not exist",
    "access denied",
    "unknown database",
    "login failed",
    "permission denied",
)


def _probe_login(uri: str, timeout: float, shown: str) -> None:
    """Log in to the database once, as MLflow will, within ``timeout`` seconds (in a thread,
    whatever the driver bounds): a wrong password, user or database name is said at once
    (MLflow retries its engine for minutes, silently, before it fails). Anything else the
    login meets is left to MLflow."""
    import threading

    outcome: list[BaseException | None] = []

    def login() -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        try:
            engine = create_engine(uri, poolclass=NullPool)
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
            finally:
                engine.dispose()
        except BaseException as err:  # noqa: BLE001 (handed to the caller's thread)
            outcome.append(err)
        else:
            outcome.append(None)

    thread = threading.Thread(target=login, name="store-login", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise StoreUnavailable(
            f"tracking.uri {shown} accepts connections but did not answer a login within "
            f"{timeout:g}s; check the database behind it"
        )
    err = outcome[0]
    if err is None:
        return
    reason = " ".join(str(getattr(err, "orig", None) or err).split()) or type(err).__name__
    if not any(word in reason.lower() for word in LOGIN_REFUSALS):
        return
    password = urlsplit(uri).password
    if password:
        reason = reason.replace(unquote(password), "***").replace(password, "***")
    raise StoreUnavailable(
        f"tracking.uri {shown}: the database refused the login ({reason[:300]}); check its "
        "user, password and database name"
    )


def _probe_socket(host: str, port: int, timeout: float, shown: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise StoreUnavailable(
            f"tracking.uri {shown} is unreachable within {timeout:g}s "
            f"({type(err).__name__}: {err}); start the store or fix tracking.uri"
        ) from None


def _headers(uri: str) -> dict[str, str]:
    """The credentials MLflow would send: user:password in the URI or the environment's
    MLFLOW_TRACKING_USERNAME/PASSWORD, or MLFLOW_TRACKING_TOKEN."""
    parts = urlsplit(uri)
    user = unquote(parts.username) if parts.username else os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = (
        unquote(parts.password) if parts.password else os.environ.get("MLFLOW_TRACKING_PASSWORD")
    )
    if user and password is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
    return {}


def _tls_context(parts: SplitResult) -> ssl.SSLContext | None:
    """The certificate checks MLflow's own client makes of an https server: none with
    MLFLOW_TRACKING_INSECURE_TLS=true (or 1), the CA bundle (file or folder)
    MLFLOW_TRACKING_SERVER_CERT_PATH or REQUESTS_CA_BUNDLE names (a self-signed server's),
    else the system's; MLFLOW_TRACKING_CLIENT_CERT_PATH's certificate is shown."""
    if parts.scheme != "https":
        return None
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
        context = ssl._create_unverified_context()
    else:
        bundle = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or os.environ.get(
            "REQUESTS_CA_BUNDLE"
        )
        if bundle and Path(bundle).is_dir():  # a folder of CA certificates, as requests takes
            context = ssl.create_default_context(capath=bundle)
        elif bundle:
            context = ssl.create_default_context(cafile=bundle)
        else:
            context = ssl.create_default_context()
    client = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    if client:  # a server that asks for the client's certificate (its key in the same file)
        context.load_cert_chain(client)
    return context


def _probe_server(uri: str, timeout: float, shown: str) -> None:
    parts = urlsplit(uri)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/experiments/search",
        data=json.dumps({"max_results": 1}).encode(),
        headers={"Content-Type": "application/json", **_headers(uri)},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_tls_context(parts)):
            return
    except urllib.error.HTTPError as err:
        body = ""
        with contextlib.suppress(Exception):
            body = err.read(2000).decode("utf-8", "replace")
        if err.code == 403 and "host header" in body.lower():  # MLflow 3's DNS-rebinding guard
            raise StoreUnavailable(
                f"tracking.uri {shown}: the server refuses requests addressed to "
                f"{netloc} (HTTP 403, 'Invalid Host header'); start "
                "mlflow server with --allowed-hosts naming the host and port clients use"
            ) from None
        if err.code in (401, 403):
            raise StoreUnavailable(
                f"tracking.uri {shown} refused the credentials (HTTP {err.code}); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            ) from None
        raise StoreUnavailable(
            f"tracking.uri {shown} answered HTTP {err.code} ({err.reason}), not as an MLflow "
            "tracking server; fix tracking.uri"
        ) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise StoreUnavailable(
            f"tracking.uri {shown} is unreachable within {timeout:g}s ({reason}); start the "
            "server or fix tracking.uri"
        ) from None


def _probe_path(path: Path, shown: str, is_file: bool) -> None:
    path = path.expanduser()
    reason = unmakeable_folder(path.parent if is_file else path)
    if reason is not None:
        raise StoreUnavailable(f"tracking.uri {shown}: cannot create the store ({reason})")
    if is_file and path.exists() and not os.access(path, os.W_OK):
        raise StoreUnavailable(f"tracking.uri {shown}: the store file {path} is not writable")
    if is_file and path.is_dir():
        raise StoreUnavailable(f"tracking.uri {shown}: {path} is a folder, not a store file")
    # MLflow would retry opening another kind of file for minutes, then fail anyway
    if is_file and path.is_file() and path.stat().st_size and not _is_sqlite(path, shown):
        raise StoreUnavailable(
            f"tracking.uri {shown}: {path} is not a SQLite database; point it at an MLflow "
            "store or at a new file"
        )


def _is_sqlite(path: Path, shown: str) -> bool:
    """Whether the file at ``path`` is a SQLite database, asked of SQLite itself. Reading its
    header with open() and closing the file would drop every POSIX lock this process holds on
    it (a multirun's earlier job keeps the store open): another process closing the store
    would then take itself for its last user and delete the write-ahead log this process
    still writes to, losing those writes. SQLite keeps its own descriptors open until its
    locks go."""
    import sqlite3

    if not os.access(path, os.R_OK):
        raise StoreUnavailable(f"tracking.uri {shown}: cannot read the store file {path}")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return True  # MLflow says why it cannot open it
    try:
        con.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as err:  # other errors (locked...): MLflow says why
        return "not a database" not in str(err)
    finally:
        con.close()
    return True
