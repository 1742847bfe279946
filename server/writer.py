"""Group commit: one writer thread per process turns everything queued into one transaction.

Callers ``submit`` a :class:`Write` (ops for :func:`server.commit.commit_batch` plus an optional
``after_commit`` hook) and wait on its ``done`` future: a ``concurrent.futures.Future`` for a
thread, an ``asyncio.Future`` for a coroutine (all of a batch's are resolved in one callback per
event loop, so a batch of 64 calls costs one wake-up), or none when nobody waits (relaxed
durability). The writer takes the first queued write, drains whatever else is queued (up to
``max_batch``), runs the batch's steps in one transaction and commits; then it hands the
batch's learned events (in seq order) to ``on_learned`` — the fold, so the next call already
sees them — runs the ``after_commit`` hooks in submission order, and wakes every waiter. Each
op's ``outcome`` tells its caller what the log decided.

Uniqueness conflicts are outcomes, not failures (see :mod:`server.commit`). A batch first
runs with plain inserts (``plain``: no key is expected to be taken, and a plain multi-row
INSERT is the cheapest way in); if the log refuses it, it runs again with the conflict-aware
statements, which turn a key already stored into its op's outcome. A batch that still
violates a constraint is retried write by write, so one bad write fails alone — with
:class:`StorageError` (INTERNAL; the cause goes to the log). A deadlock or serialization
failure (PostgreSQL) re-runs the batch. A database error fails the batch's writes with
:class:`~server.errors.Unavailable` — or, with ``retry_unavailable`` (relaxed durability, where
callers were answered before the commit), the batch is retried with backoff until the
database is back, so nothing acknowledged is dropped while the process lives. ``on_health`` is
told whether the last transaction reached the database, ``on_commit`` how many seconds each
transaction that committed took (begin to commit).

On SQLite the writer keeps its connection from one batch to the next instead of taking it from
the pool for each: a file handle has no network to lose, and the pool's checkout and return
(with its reset) cost 20 to 30 µs of CPU per transaction (in-process, 3,000 transactions:
50 to 84 µs against 30 to 45). A transaction refused by a constraint rolls back and keeps
it; any other failure closes it, and the next batch opens a fresh one. On PostgreSQL each
batch checks one out with the pool's liveness ping, so a server restart between batches
costs no batch.
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

from arbiter.log.store import LearnedEvent
from arbiter.server.commit import Op, Raced
from arbiter.server.errors import Overloaded, Unavailable

log = logging.getLogger(__name__)

Done = Future[None] | asyncio.Future[None] | None
Transaction = Callable[[sa.Connection, list[Op], bool], list[LearnedEvent]]
RERUN_SQLSTATES = ("40P01", "40001")  # PostgreSQL: deadlock detected, serialization failure
MAX_RERUNS = 5


class StorageError(Exception):
    """A write the database refused for a reason other than a duplicate (details in the log)."""


@dataclass
class Write:
    """Ops to commit atomically, what to run once they are committed, and the future to
    resolve then."""

    ops: Sequence[Op]
    after_commit: Callable[[], None] | None = None
    done: Done = None


_STOP = object()


def waiter() -> asyncio.Future[None]:
    """A ``done`` future for a write a coroutine will await (on the running event loop)."""
    return asyncio.get_running_loop().create_future()


class GroupCommitWriter:
    """The process's single writer. ``transaction(connection, ops, plain)`` runs a batch's steps
    and returns its learned events (``plain``: see :func:`server.commit.commit_batch`);
    ``on_learned`` folds them after the commit. ``max_pending`` bounds the queue: when it is
    full, :meth:`submit` waits and :meth:`offer` refuses."""

    def __init__(self, engine: sa.Engine, transaction: Transaction, *,
                 on_learned: Callable[[list[LearnedEvent]], None] = lambda _events: None,
                 max_batch: int = 1024, max_pending: int = 10_000,
                 on_health: Callable[[bool], None] | None = None,
                 on_commit: Callable[[float], None] | None = None,
                 retry_unavailable: bool = False) -> None:
        self._engine = engine
        self._transaction = transaction
        self._on_learned = on_learned
        self._retry_unavailable = retry_unavailable
        self._closing = threading.Event()
        self._max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._wake: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None],
                                                                BaseException | None]]] = {}
        self._on_health = on_health or (lambda _ok: None)
        self._on_commit = on_commit
        self._keep_connection = engine.dialect.name == "sqlite"
        self._connection: sa.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="arbiter-writer", daemon=True)
        self._thread.start()

    @property
    def capacity(self) -> int:
        """Writes the queue holds (``max_pending``)."""
        return self._queue.maxsize

    @property
    def pending(self) -> int:
        """Writes queued and not yet taken into a batch."""
        return self._queue.qsize()

    def submit(self, write: Write) -> None:
        """Queue ``write`` (waiting while the queue is full); ``write.done`` resolves after commit.
        For threads: a coroutine must not block its event loop, and uses :meth:`offer`."""
        self._queue.put(write)

    def offer(self, write: Write) -> None:
        """Queue ``write`` without waiting: a full queue raises
        :class:`~server.errors.Overloaded` (RESOURCE_EXHAUSTED) at once and queues nothing.
        What coroutines on the event loop use: shed load instead of stalling every call."""
        try:
            self._queue.put_nowait(write)
        except queue.Full:
            raise Overloaded(f"the write queue is full ({self._queue.maxsize} writes waiting); "
                             "retry with backoff") from None

    def write(self, ops: Sequence[Op], after_commit: Callable[[], None] | None = None) -> None:
        """Submit from a thread and wait until committed (and ``after_commit`` has run)."""
        done: Future[None] = Future()
        self.submit(Write(ops, after_commit, done=done))
        done.result()

    def close(self) -> None:
        """Commit everything already queued, then stop the thread."""
        self._closing.set()
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            if self._connection is not None:
                _close(self._connection)

    def _serve(self) -> None:
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

    def _commit_batch(self, batch: list[Write], plain: bool = True) -> None:
        backoff = 0.1
        reruns = 0
        while True:
            try:
                learned = self._insert(batch, plain)
            except (sa.exc.IntegrityError, Raced) as refused:
                if plain and isinstance(refused, sa.exc.IntegrityError):
                    plain = False  # a key already taken (a retry), or a bad row: let the log say
                    continue
                if isinstance(refused, Raced) and reruns < MAX_RERUNS:
                    reruns += 1
                    continue
                self._split(batch, refused)
                return
            except sa.exc.OperationalError as failure:
                if _sqlstate(failure) in RERUN_SQLSTATES and reruns < MAX_RERUNS:
                    reruns += 1  # a deadlock with another process's writer: run it again
                    continue
                if self._unavailable(batch, failure, backoff):
                    backoff = min(2.0, backoff * 2)
                    continue
                return
            except Exception as failure:  # the database is unreachable or failing
                if self._unavailable(batch, failure, backoff):
                    backoff = min(2.0, backoff * 2)
                    continue
                return
            break
        self._on_health(True)
        if learned:
            try:
                self._on_learned(learned)
            except Exception:  # the fold logs and recovers on its own; never lose the writer
                log.exception("folding committed learnings failed")
        for write in batch:
            error: BaseException | None = None
            if write.after_commit is not None:
                try:
                    write.after_commit()
                except Exception as hook_error:  # never lose the writer thread to a hook
                    log.exception("after-commit hook failed")
                    error = hook_error
            self._finish(write, error)

    def _unavailable(self, batch: list[Write], failure: Exception, backoff: float) -> bool:
        """The database failed: True to retry (relaxed), else every write fails UNAVAILABLE."""
        log.warning("commit of %d writes failed: %s", len(batch), failure)
        self._on_health(False)
        if self._retry_unavailable and not self._closing.is_set():
            time.sleep(backoff)
            return True
        for write in batch:
            self._finish(write, Unavailable("the database is unavailable; retry later"))
        return False

    def _split(self, batch: list[Write], refused: Exception) -> None:
        """A constraint failed: retry write by write so only the offending one fails."""
        if len(batch) == 1:
            log.error("the log refused a write: %s", refused)
            self._finish(batch[0], StorageError("the decision log refused the write"))
            return
        for write in batch:
            self._commit_batch([write], plain=False)

    def _insert(self, batch: list[Write], plain: bool) -> list[LearnedEvent]:
        ops = [op for write in batch for op in write.ops]
        started = time.perf_counter()
        connection, self._connection = self._connection or self._engine.connect(), None
        try:
            with connection.begin():
                learned = self._transaction(connection, ops, plain)
        except (sa.exc.IntegrityError, Raced):
            self._keep(connection)  # rolled back; the connection is sound (a plain try's rerun)
            raise
        except BaseException:
            _close(connection)  # it may be broken: the next batch opens a fresh one
            raise
        self._keep(connection)
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started)
        return learned

    def _keep(self, connection: sa.Connection) -> None:
        """Keep ``connection`` for the next batch (SQLite), or give it back to the pool."""
        if self._keep_connection and not connection.invalidated:
            self._connection = connection
        else:
            connection.close()

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


def _close(connection: sa.Connection) -> None:
    with contextlib.suppress(Exception):  # a broken connection may fail to close
        connection.close()


def _sqlstate(error: sa.exc.DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _resolve(results: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    """On the event loop: set each future that its waiter has not given up on."""
    for future, error in results:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
