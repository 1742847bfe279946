"""Schema migrations of the decision log: Alembic revisions in ``log/migrations/versions``.

Alembic is configured here, in code (there is no alembic.ini): the caller's engine is passed
in and every revision runs on one of its connections.

- :func:`upgrade` brings a database to this release's revision (:func:`head`): an empty one
  gets every table, one at an older revision gets the revisions after it, and one written
  before migrations existed (Arbiter's tables, no ``alembic_version``) is stamped
  :data:`BASELINE` first, never recreated. At head it changes nothing. Upgrades of one
  database are serialized, so processes starting at once are safe: PostgreSQL holds a session
  advisory lock (``pg_advisory_lock``) for the whole upgrade, SQLite runs it in one
  ``BEGIN IMMEDIATE`` transaction (the database's write lock).
- :func:`prepare_schema` is what ``arbiter serve`` calls: upgrade, or with ``--no-migrate``
  refuse a database that is not at head.
- :func:`require_readable` is what the read-only commands call: they never create or change
  a table.

``python -m arbiter.log.migrate revision -m "what changes"`` drafts the next revision
(``--autogenerate`` fills it in from log/schema.py); see log/migrations/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

__all__ = [
    "BASELINE",
    "SchemaError",
    "Upgraded",
    "current_revision",
    "head",
    "is_current",
    "prepare_schema",
    "require_current",
    "require_readable",
    "upgrade",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
BASELINE = "0001"
# The tables and columns every database written before migrations existed has: ``create_all``
# of log/schema.py at 9b028be, i.e. revision 0001. Frozen, like that revision.
BASELINE_TABLES: dict[str, frozenset[str]] = {
    "decisions": frozenset({
        "id", "event_id", "experiment", "variant", "model_version", "unit_hash", "context",
        "actions", "distribution", "chosen_index", "chosen_action", "probability", "shadow",
        "deferred", "created_at"}),
    "rewards": frozenset({"id", "event_id", "reward_id", "value", "learned", "received_at"}),
    "activations": frozenset({"event_id", "activated_at"}),
    "learnings": frozenset({"seq", "event_id", "experiment", "value", "learned_at"}),
    "snapshots": frozenset({"id", "experiment", "variant", "policy", "position", "state",
                            "created_at"}),
    "experiment_states": frozenset({"experiment", "version", "control", "variants",
                                    "bucket_table", "reason", "created_at"}),
    "promotions": frozenset({"id", "experiment", "from_variant", "to_variant", "reason",
                             "evidence", "automatic", "state_version", "created_at"}),
}
# The PostgreSQL advisory lock held while one process upgrades: "Arbiter\0" in ASCII.
LOCK_KEY = 0x4172626974657200
# How long an upgrade of a SQLite file waits for another process's upgrade (milliseconds).
SQLITE_LOCK_TIMEOUT_MS = 600_000


class SchemaError(Exception):
    """The database's schema is not one this Arbiter can use as asked.

    The message is one line and says what to run.
    """


@dataclass(frozen=True)
class Upgraded:
    """What :func:`upgrade` did: revision ``before`` (None: no ``alembic_version``) → ``after``."""

    before: str | None
    after: str
    adopted: bool  # written before migrations existed: stamped BASELINE, then upgraded


def head() -> str:
    """The revision this release's code reads and writes."""
    revision = _scripts().get_current_head()
    if revision is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS / 'versions'}")
    return revision


def current_revision(engine: sa.Engine) -> str | None:
    """The database's revision; None without an ``alembic_version`` table (empty, or written
    before migrations existed). Reads only."""
    with _connect(engine) as connection:
        return _revision(connection)


def is_current(engine: sa.Engine) -> bool:
    """Whether the database is at :func:`head`."""
    return current_revision(engine) == head()


def upgrade(engine: sa.Engine, to: str = "head") -> Upgraded:
    """Bring the database to :func:`head` (or to revision ``to``, which tests of a revision use
    to write a database of the one before); safe when several processes do it at once.

    Raises :class:`SchemaError` for a revision this release does not know (a newer release
    wrote it) and for tables that are some, but not all, of :data:`BASELINE`'s.
    """
    target = head() if to == "head" else to
    before = current_revision(engine)
    if before == target:  # the common start: no lock, no write
        return Upgraded(before=before, after=target, adopted=False)
    with _connect(engine) as connection, _exclusive(connection):
        return _upgrade(connection, target)


def require_current(engine: sa.Engine) -> None:
    """Raise :class:`SchemaError` naming the command to run unless the database is at head."""
    with _connect(engine) as connection:
        revision = _revision(connection)
        if revision == head():
            return
        where = _display(engine)
        if revision is not None and not _known(revision):
            raise SchemaError(f"the database {where} {_state(connection, revision)}; this arbiter "
                              "cannot use it (run the release that wrote it)")
        raise SchemaError(f"the database {where} {_state(connection, revision)}; "
                          f"run `arbiter db upgrade --db {where}`")


def prepare_schema(engine: sa.Engine, *, migrate: bool) -> None:
    """``arbiter serve``'s step after building the engine: :func:`upgrade` the database, or
    (``migrate=False``, ``--no-migrate``) :func:`require_current`."""
    if migrate:
        upgrade(engine)
    else:
        require_current(engine)


def require_readable(engine: sa.Engine) -> str:
    """The revision, if this release can read the database; :class:`SchemaError` otherwise.

    Reads only: for ``arbiter evaluate`` and ``arbiter export``, which must never create or
    change a table (a mistyped URL must not get an empty Arbiter schema).
    """
    with _connect(engine) as connection:
        revision = _revision(connection)
        present = _arbiter_tables(connection)
        where = _display(engine)
        if revision is None and not present:
            raise SchemaError(f"no Arbiter decision log in {where}: it has none of Arbiter's tables "
                              "(is --db right?)")
        readable = revision if revision is not None else (
            BASELINE if present == set(BASELINE_TABLES) else None)
        if readable == head():
            return readable
        if revision is not None and not _known(revision):
            raise SchemaError(f"the database {where} {_state(connection, revision)}; this arbiter "
                              "cannot read it (run the release that wrote it)")
        raise SchemaError(f"the database {where} {_state(connection, revision)}; "
                          f"run `arbiter db upgrade --db {where}` first")


def _upgrade(connection: sa.Connection, target: str) -> Upgraded:
    """The upgrade itself, inside the exclusive transaction (another process may have done it)."""
    before = _revision(connection)
    adopted = False
    if before is None:
        present = _arbiter_tables(connection)
        if present:
            _check_baseline(connection, present)
            command.stamp(_config(connection), BASELINE)
            adopted = True
    elif not _known(before):
        raise SchemaError(f"the database {_display(connection)} {_state(connection, before)}; this "
                          "arbiter cannot upgrade it (run the release that wrote it)")
    command.upgrade(_config(connection), target)
    after = _revision(connection)
    if after is None:  # pragma: no cover - alembic always writes the version row
        raise RuntimeError("the upgrade left no revision in alembic_version")
    return Upgraded(before=before, after=after, adopted=adopted)


@contextlib.contextmanager
def _connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection of ``engine``; on SQLite one that waits out another process's upgrade.

    (An engine whose transactions all begin with ``BEGIN IMMEDIATE`` takes the write lock even
    to read the revision; the engine's own busy timeout is too short to wait for an upgrade.)
    """
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            yield connection
            return
        raw = connection.connection.dbapi_connection
        assert raw is not None
        wait = _sqlite_pragma(raw, "busy_timeout")
        _sqlite_pragma(raw, f"busy_timeout = {SQLITE_LOCK_TIMEOUT_MS}")
        try:
            yield connection
        finally:
            _sqlite_pragma(raw, f"busy_timeout = {int(wait or 0)}")


@contextlib.contextmanager
def _exclusive(connection: sa.Connection) -> Iterator[None]:
    """One transaction on ``connection`` that no other upgrade of this database runs beside."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # A session lock, not a transaction one: it outlives a revision that commits part of
        # its work (op.get_context().autocommit_block(), e.g. CREATE INDEX CONCURRENTLY).
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        connection.commit()
        try:
            with connection.begin():
                yield
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):  # a lost session lost its lock too
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                connection.commit()
    elif dialect == "sqlite":
        # Straight on the driver's connection, outside any transaction: foreign keys off while
        # revisions rebuild tables (SQLite's ALTER TABLE procedure, what op.batch_alter_table
        # does; the pragma is ignored inside a transaction); a revision that broke a reference
        # fails the check below and rolls back.
        raw = connection.connection.dbapi_connection
        assert raw is not None
        enforced = _sqlite_pragma(raw, "foreign_keys")
        _sqlite_pragma(raw, "foreign_keys = OFF")
        try:
            with connection.begin():
                if not getattr(raw, "in_transaction", False):  # the engine's begin did not lock
                    connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, now
                yield
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise SchemaError(f"the upgrade broke foreign keys (first: {tuple(broken[0])}); "
                                      "rolled back")
        finally:
            _sqlite_pragma(raw, f"foreign_keys = {'ON' if enforced else 'OFF'}")
    else:
        with connection.begin():
            yield


def _sqlite_pragma(raw: Any, pragma: str) -> Any:
    """Run ``PRAGMA <pragma>`` on the driver's connection (no transaction); its value, if any."""
    cursor = raw.cursor()
    try:
        cursor.execute(f"PRAGMA {pragma}")
        row = cursor.fetchone()
        return row[0] if row else None
    finally:
        cursor.close()


def _revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}
                                      ).get_current_revision()


def _arbiter_tables(connection: sa.Connection) -> set[str]:
    return set(BASELINE_TABLES) & set(sa.inspect(connection).get_table_names())


def _check_baseline(connection: sa.Connection, present: set[str]) -> None:
    """A database without ``alembic_version`` is adopted only if it holds revision 0001's tables."""
    where = _display(connection)
    missing = sorted(set(BASELINE_TABLES) - present)
    if missing:
        raise SchemaError(f"the database {where} has some of Arbiter's tables but not "
                          f"{', '.join(missing)}, and no alembic_version: not a schema this "
                          "arbiter can adopt")
    inspector = sa.inspect(connection)
    for table, columns in BASELINE_TABLES.items():
        found = {column["name"] for column in inspector.get_columns(table)}
        if found != columns:
            raise SchemaError(f"the database {where} has a `{table}` table unlike revision "
                              f"{BASELINE}'s (columns {', '.join(sorted(found ^ columns))} differ), "
                              "and no alembic_version: not a schema this arbiter can adopt")


def _state(connection: sa.Connection, revision: str | None) -> str:
    """The database's schema in words, for a one-line message."""
    if revision is not None:
        if not _known(revision):
            return f"is at schema revision {revision}, which this arbiter does not know"
        return f"is at schema revision {revision}, this arbiter needs {head()}"
    if _arbiter_tables(connection):
        return (f"was written before schema migrations (no alembic_version table), "
                f"this arbiter needs revision {head()}")
    return f"has no Arbiter tables, this arbiter needs revision {head()}"


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _display(bind: sa.Engine | sa.Connection) -> str:
    """The database's URL without its password (messages are logged)."""
    return bind.engine.url.render_as_string(hide_password=True)


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def new_revision(message: str, *, autogenerate: bool = False, db: str | None = None) -> Path:
    """Write ``versions/NNNN_<message>.py``, the revision after :func:`head`.

    With ``autogenerate``, Alembic fills it in by comparing a database upgraded to head (``db``,
    or a temporary SQLite file) with log/schema.py; review what it wrote, as Alembic's docs say.
    """
    rev_id = f"{int(head()) + 1:04d}"
    if not autogenerate:
        script = command.revision(_config(), message=message, rev_id=rev_id)
    else:
        from arbiter.log.engine import create_engine
        from arbiter.log.schema import metadata

        with tempfile.TemporaryDirectory(prefix="arbiter-revision-") as scratch:
            engine = create_engine(db or f"sqlite:///{Path(scratch) / 'head.db'}")
            try:
                upgrade(engine)
                with engine.connect() as connection:
                    config = _config(connection)
                    config.attributes["target_metadata"] = metadata
                    script = command.revision(config, message=message, autogenerate=True,
                                              rev_id=rev_id)
            finally:
                engine.dispose()
    if script is None or isinstance(script, list):  # pragma: no cover - one head, one script
        raise RuntimeError("alembic wrote no single revision")
    return Path(script.path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m arbiter.log.migrate revision -m MESSAGE [--autogenerate] [--db URL]``."""
    parser = argparse.ArgumentParser(prog="python -m arbiter.log.migrate",
                                     description="draft the decision log's next schema revision")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="write versions/NNNN_<message>.py")
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    revision.add_argument("--autogenerate", action="store_true",
                          help="fill it in from the difference between head and log/schema.py")
    revision.add_argument("--db", help="database to compare on (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    path = new_revision(args.message, autogenerate=args.autogenerate, db=args.db)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
