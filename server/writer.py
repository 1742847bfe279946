"""Group commit: one writer thread turns everything queued into one transaction.

Callers ``submit`` a :class:`Write` (rows for several tables plus an optional ``after_commit``
hook) and wait on its ``done`` future: a ``concurrent.futures.Future`` for a thread, an
``asyncio.Future`` for a coroutine (all of a batch's are resolved in one callback per event
loop, so a batch of 64 calls costs one wake-up), or none when nobody waits (relaxed
durability). The writer takes the first queued write, drains whatever else is queued (up to
``max_batch``), inserts all rows in one transaction — tables in the order of ``TABLE_ORDER``
so foreign keys hold, rows in submission order so autoincrement ids follow the queue —
commits, runs the ``after_commit`` hooks in that same order (this is where learning happens,
so the in-memory fold follows the log's order), then wakes every waiter.
A write that fails runs its ``on_failure`` hook before its waiter wakes, whether or not anyone
still waits (a caller that gave up: cancelling its ``asyncio.Future`` does not cancel the
write), so in-memory state never claims a row the log lacks.

A batch that violates a constraint is retried write by write, so one bad write fails alone.
A database error fails the batch's writes with :class:`~server.errors.Unavailable` — or, with
``retry_unavailable`` (relaxed durability, where callers were answered before the commit), the
batch is retried with backoff until the database is back, so nothing acknowledged is dropped
while the process lives. ``on_health`` is told whether the last transaction reached the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from arbiter.log import schema
from arbiter.server.errors import AlreadyExists, Unavailable

log = logging.getLogger(__name__)

TABLE_ORDER: tuple[sa.Table, ...] = (schema.decisions, schema.activations, schema.rewards,
                                     schema.learnings, schema.snapshots,
                                     schema.experiment_states, schema.promotions)
Row = tuple[sa.Table, dict[str, Any]]
Done = Future[None] | asyncio.Future[None] | None


@dataclass
class Write:
    """Rows to insert atomically, what to run once they are committed (or failed), and the
    future to resolve then."""

    rows: Sequence[Row]
    after_commit: Callable[[], None] | None = None
    on_failure: Callable[[], None] | None = None
    done: Done = None


_STOP = object()


def waiter() -> asyncio.Future[None]:
    """A ``done`` future for a write a coroutine will await (on the running event loop)."""
    return asyncio.get_running_loop().create_future()


class GroupCommitWriter:
    """The single writer. ``max_pending`` bounds the queue: a full queue makes callers wait."""

    def __init__(self, engine: sa.Engine, *, max_batch: int = 1024, max_pending: int = 10_000,
                 on_health: Callable[[bool], None] | None = None,
                 retry_unavailable: bool = False) -> None:
        self._engine = engine
        self._retry_unavailable = retry_unavailable
        self._closing = threading.Event()
        self._max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._wake: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None],
                                                                BaseException | None]]] = {}
        self._on_health = on_health or (lambda _ok: None)
        self._thread = threading.Thread(target=self._run, name="arbiter-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Queue ``write`` (waiting while the queue is full); ``write.done`` resolves after commit."""
        self._queue.put(write)

    def write(self, rows: Sequence[Row], after_commit: Callable[[], None] | None = None) -> None:
        """Submit from a thread and wait until committed (and ``after_commit`` has run)."""
        done: Future[None] = Future()
        self.submit(Write(rows, after_commit, done=done))
        done.result()

    def close(self) -> None:
        """Commit everything already queued, then stop the thread."""
        self._closing.set()
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[Write] = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit_batch(batch)
            self._wake_loops()
            if stop:
                return

    def _commit_batch(self, batch: list[Write]) -> None:
        backoff = 0.1
        while True:
            try:
                self._insert(batch)
            except sa.exc.IntegrityError:
                self._split(batch)
                return
            except Exception as failure:  # the database is unreachable or failing
                log.warning("commit of %d writes failed: %s", len(batch), failure)
                self._on_health(False)
                if self._retry_unavailable and not self._closing.is_set():
                    time.sleep(backoff)
                    backoff = min(2.0, backoff * 2)
                    continue
                for write in batch:
                    self._fail(write, Unavailable("the database is unavailable; retry later"))
                return
            break
        self._on_health(True)
        for write in batch:
            error: BaseException | None = None
            if write.after_commit is not None:
                try:
                    write.after_commit()
                except Exception as hook_error:  # never lose the writer thread to a hook
                    log.exception("after-commit hook failed")
                    error = hook_error
            self._finish(write, error)

    def _split(self, batch: list[Write]) -> None:
        """A constraint failed: retry write by write so only the offending one fails."""
        if len(batch) == 1:
            self._fail(batch[0], AlreadyExists("that event or reward is already logged"))
            return
        for write in batch:
            self._commit_batch([write])

    def _insert(self, batch: list[Write]) -> None:
        by_table: dict[sa.Table, list[dict[str, Any]]] = {table: [] for table in TABLE_ORDER}
        for write in batch:
            for table, row in write.rows:
                by_table[table].append(row)
        with self._engine.begin() as connection:
            for table in TABLE_ORDER:
                if by_table[table]:
                    connection.execute(table.insert(), by_table[table])

    def _finish(self, write: Write, error: BaseException | None) -> None:
        """Wake the waiter of a committed write (``error``: its after-commit hook failed)."""
        done = write.done
        if isinstance(done, asyncio.Future):
            self._wake.setdefault(done.get_loop(), []).append((done, error))
        elif done is None:
            if error is not None:
                log.warning("a write nobody waits for failed: %s", error)
        elif error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def _wake_loops(self) -> None:
        """Resolve the batch's asyncio futures: one callback per event loop."""
        for loop, results in self._wake.items():
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to wake
                loop.call_soon_threadsafe(_resolve, results)
        self._wake = {}

    def _fail(self, write: Write, error: BaseException) -> None:
        """Roll back the caller's state (``on_failure``), then wake the waiter with ``error``."""
        if write.on_failure is not None:
            try:
                write.on_failure()
            except Exception:  # never lose the writer thread to a hook
                log.exception("on-failure hook failed")
        self._finish(write, error)


def _resolve(results: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    """On the event loop: set each future that its waiter has not given up on."""
    for future, error in results:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
