"""A throwaway PostgreSQL cluster for the test session (initdb + pg_ctl on a free port).

initdb refuses to run as root, so as root the cluster is created and run as the ``postgres``
user. ``ARBITER_TEST_POSTGRES_URL`` points the tests at an existing server instead.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

HOW_TO_ENABLE = ("PostgreSQL server binaries not found: install them with `sudo bash "
                 "scripts/install-deps.sh` (what `make test` runs as root) or set "
                 "ARBITER_TEST_POSTGRES_URL to a server's URL")


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A running cluster: ``url`` reaches its ``postgres`` database as superuser."""

    def __init__(self) -> None:
        initdb, self._pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if initdb is None or self._pg_ctl is None:
            raise FileNotFoundError(HOW_TO_ENABLE)
        self._root = tempfile.mkdtemp(prefix="arbiter-pg-")
        self.data = os.path.join(self._root, "data")
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            postgres = pwd.getpwnam("postgres")
            os.chown(self._root, postgres.pw_uid, postgres.pw_gid)
        self._run([initdb, "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])
        self.start()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self._run([self._pg_ctl, "-D", self.data, "-o", options, "-l",
                   os.path.join(self._root, "log"), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([self._pg_ctl, "-D", self.data, "-m", mode, "-w", "stop"])

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def _run(self, command: list[str]) -> None:
        subprocess.run([*self._as_user, *command], check=True, capture_output=True, timeout=120)


def cluster_or_skip() -> Cluster:
    """A new cluster; without PostgreSQL binaries the test skips — or fails when ``CI`` is set."""
    import pytest

    try:
        return Cluster()
    except FileNotFoundError:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {HOW_TO_ENABLE}")
        pytest.skip(HOW_TO_ENABLE)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server at ``server_url``; dropped afterwards."""
    name = f"arbiter_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_SECRET_FILE: list[str] = []


def secret_file() -> str:
    """A secret file for servers on PostgreSQL (which needs ``--secret-file``), one per test
    process: every server of a test shares it, as every server of a database must."""
    if not _SECRET_FILE:
        directory = tempfile.mkdtemp(prefix="arbiter-secret-")
        atexit.register(shutil.rmtree, directory, True)
        path = Path(directory) / "arbiter.secret"
        path.write_text(secrets.token_hex(32) + "\n")
        path.chmod(0o600)
        _SECRET_FILE.append(str(path))
    return _SECRET_FILE[0]


def secret_settings(db_url: str) -> dict[str, str]:
    """``{"secret_file": ...}`` for a PostgreSQL URL (Settings keyword), ``{}`` for SQLite."""
    return {} if db_url.startswith("sqlite") else {"secret_file": secret_file()}
