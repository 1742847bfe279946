"""A throwaway PostgreSQL cluster for the benchmarks (initdb + pg_ctl on a free loopback port).

Like the tests' cluster (``tests/postgres.py``), but durable by default: ``fsync`` and
``synchronous_commit`` stay on, because a benchmark of commits without them measures nothing a
deployment would see. As root, initdb and the server run as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


def binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if found is None:
        raise FileNotFoundError(f"PostgreSQL's {name} not found (Debian: apt-get install postgresql)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cluster(*, fsync: bool = True, max_connections: int = 200) -> Iterator[str]:
    """A running cluster on 127.0.0.1; yields the superuser URL of its ``postgres`` database."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    root = tempfile.mkdtemp(prefix="arbiter-bench-pg-")
    data = os.path.join(root, "data")
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)

    def run(command: list[str]) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    try:
        run([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={max_connections} -c fsync={'on' if fsync else 'off'}")
        run([pg_ctl, "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start"])
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def database(server_url: str) -> Iterator[str]:
    """A new empty database on ``server_url``'s server; dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield server_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def size(url: str) -> int:
    """Bytes the database at ``url`` takes (``pg_database_size``)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT pg_database_size(current_database())"))
                       .scalar_one())
    finally:
        engine.dispose()
