"""Building the SQLAlchemy engine: SQLite (WAL, synchronous=FULL) by default, PostgreSQL by URL.

Building one creates no table: :mod:`arbiter.log.migrate` creates and upgrades the schema.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec
import sqlalchemy as sa

SQLITE_PRAGMAS = (
    # First: so that the others (journal_mode needs a lock) wait for another process's lock.
    "PRAGMA busy_timeout=5000",
    "PRAGMA journal_mode=WAL",
    # FULL: a commit is fsynced before Choose/Reward answer, so it survives a crash of the
    # process and of the machine; group commit amortizes the fsync over a whole batch.
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    # Deleted rows (erasure, retention) are overwritten with zeros, not left in free pages;
    # a checkpoint then takes the zeroed pages into the file (server/erasure.py).
    "PRAGMA secure_delete=ON",
)


def create_engine(url: str, *, writer: bool = False) -> sa.Engine:
    """An engine for ``url``; it creates nothing (``arbiter.log.migrate.upgrade`` makes the tables).

    PostgreSQL URLs without a driver (``postgresql://``) use psycopg 3. ``writer``: on SQLite,
    every transaction begins with ``BEGIN IMMEDIATE`` (it takes the database's write lock at
    once, waiting up to the busy timeout for another process's), so a transaction that reads
    before it writes can never fail to upgrade its lock when several processes write.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    # msgspec writes the same JSON as the standard library for the log's values (finite floats,
    # ints, strings, lists, dicts: floats round-trip exactly) about 8x faster; it matters
    # because every decision's context, actions and distribution are one JSON document each.
    kwargs: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": msgspec.json.decode}
    if url.startswith("postgresql"):
        kwargs.update(pool_size=8, max_overflow=8, pool_pre_ping=True,
                      connect_args={"connect_timeout": 3})
    engine = sa.create_engine(url, **kwargs)
    # A batch's rows go in one multi-row INSERT per table, not one statement per row: the
    # writer thread gives up and takes back the GIL around every statement, and while the event
    # loop is busy each take can wait out the switch interval (5 ms): with a busy thread beside
    # it, 32 rows took 118 ms one statement each and 16 ms as one statement.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, immediate=writer)
    return engine


def _retrying_at_once_busy(cursor: Any, pragma: str) -> None:
    """Run ``pragma``, again while SQLite says the database is locked without waiting.

    Connections that turn a new file into WAL at the same moment (processes starting together
    on a fresh database) get SQLITE_BUSY at once, without the busy timeout: SQLite does not wait
    where waiting could deadlock. The conversion takes a moment; retry for up to 5 s.
    """
    deadline = time.monotonic() + 5.0
    while True:
        try:
            cursor.execute(pragma)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _configure_sqlite(engine: sa.Engine, *, immediate: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            _retrying_at_once_busy(cursor, pragma)
        cursor.close()
        if immediate:
            dbapi_connection.isolation_level = None  # pysqlite's own BEGIN off: ours below

    if immediate:
        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(connection: sa.Connection) -> None:
            # On the driver's connection: through ``exec_driver_sql`` this statement took as
            # long as the rest of a one-decision transaction's Python work.
            driver = connection.connection.driver_connection
            assert driver is not None  # a connection checked out of the pool has one
            driver.execute("BEGIN IMMEDIATE")


def truncate_wal(engine: sa.Engine, attempts: int = 50) -> bool:
    """SQLite: copy the WAL into the database file and truncate it to zero bytes
    (``PRAGMA wal_checkpoint(TRUNCATE)``), so deleted rows (zeroed by ``secure_delete``) leave
    neither file. A reader of another connection holding an old snapshot blocks it: retried
    for a while (``attempts`` times 0.1 s). True when done; True at once for other databases."""
    if engine.dialect.name != "sqlite":
        return True
    for _ in range(attempts):
        with engine.connect() as connection:
            busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            connection.commit()
        if busy is not None and busy[0] == 0:
            return True
        time.sleep(0.1)
    return False
