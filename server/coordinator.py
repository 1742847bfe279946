"""One coordinator among the processes sharing a log: it closes windows, auto-promotes, snapshots.

Exactly one process holds the role at a time:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection the holder
  keeps open; when the process dies its connection closes and the lock is free.
- SQLite: an exclusive ``flock`` on ``<database file>.coordinator`` beside the database; the
  kernel releases it when the process dies.

Every process tries to take the role on each maintenance tick, so another takes over within one
tick of the holder's death. The role is an efficiency, not a safety device: closing a window is
decided by the database (a window row is deleted once), so two closers could never learn one
window twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os

import sqlalchemy as sa

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x4172_6269_7465_72  # "Arbiter"


class Coordinator:
    """Whether this process coordinates; ``acquire()`` on every tick, ``release()`` at stop."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._connection: sa.Connection | None = None
        self._file: int | None = None
        self.held = False

    def acquire(self) -> bool:
        """Take the role if it is free (or check that it is still held); True if held."""
        try:
            if self._engine.dialect.name == "postgresql":
                self.held = self._advisory()
            else:
                self.held = self._flock()
        except (OSError, sa.exc.SQLAlchemyError) as error:
            log.warning("coordinator role lost or not taken: %s", error)
            self.release()
        return self.held

    def release(self) -> None:
        if self._connection is not None:
            # Invalidate, not close: a closed connection would go back to the pool with its
            # session, and the session-level lock, still alive.
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._connection.invalidate()
                self._connection.close()
            self._connection = None
        if self._file is not None:
            os.close(self._file)  # closing the descriptor drops its flock
            self._file = None
        if self.held:
            log.info("coordinator role released")
        self.held = False

    def _advisory(self) -> bool:
        if self._connection is not None:  # held: the lock lives as long as this connection
            self._connection.execute(sa.text("SELECT 1"))
            self._connection.commit()  # idle in no transaction (a timeout would end the session)
            return True
        connection = self._engine.connect()
        taken = connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                   {"key": ADVISORY_KEY}).scalar()
        connection.commit()
        if not taken:
            connection.close()
            return False
        self._connection = connection
        log.info("this process is the coordinator (PostgreSQL advisory lock)")
        return True

    def _flock(self) -> bool:
        if self._file is not None:
            return True
        database = self._engine.url.database
        if not database or database == ":memory:":
            return True  # a private database: nobody to coordinate with
        descriptor = os.open(f"{database}.coordinator", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        self._file = descriptor
        log.info("this process is the coordinator (lock file %s.coordinator)", database)
        return True
