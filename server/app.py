"""The composition root: engines, writer, fold, experiments, loop, gRPC server, health, roles.

Threads: the gRPC server (``grpc.aio``) and every handler run on one event loop in the
``arbiter-grpc`` thread; beside it the group-commit writer, the tail (folds what other
processes commit), the maintenance ticker (database probe; and, in the coordinator, closing
windows, snapshots, auto-promotion, retention) and a small pool for blocking reads (``Settings.workers``).
With metrics (``Settings.metrics_listen``) an HTTP thread serves them; under a supervisor
(``metrics_shared``) the maintenance ticker writes the gauges for it (:mod:`server.metrics`).
``start`` and ``stop`` are plain calls.

The event loop is uvloop's where it is installed (every platform but Windows): libuv's loop
spends less of the GIL per call than asyncio's own (``bench.threadcpu``: ~4-7% less process
CPU per Choose and Reward), and grpc.aio runs on any asyncio loop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from arbiter.log.engine import create_engine
from arbiter.log.migrate import prepare_schema
from arbiter.log.store import LearnedEvent
from arbiter.server.admin import ExperimentServicer
from arbiter.server.auth import TokenFileError, Tokens, load_tokens
from arbiter.server.clock import Clock, utc_now
from arbiter.server.commit import Op, commit_batch
from arbiter.server.config import ExperimentConfig
from arbiter.server.convert import DEFAULT_LIMITS, DEFAULT_MAX_ACTIONS, DEFAULT_MAX_BATCH, Limits
from arbiter.server.coordinator import Coordinator
from arbiter.server.dbfile import DatabaseFile
from arbiter.server.decoding import DecodingServer
from arbiter.server.erasure import Eraser
from arbiter.server.experiments import Experiment
from arbiter.server.fold import Fold, Tail
from arbiter.server.guard import guard
from arbiter.server.loop import DEFAULT_CACHE_BYTES, DecisionLoop
from arbiter.server.metrics import SAMPLE_RATIO_SECONDS, Endpoint, Metrics
from arbiter.server.privacy import load_secret
from arbiter.server.promotion import Controller
from arbiter.server.report import eras_of, recent_units, sample_ratio_of
from arbiter.server.retention import Retention
from arbiter.server.servicer import DecisionServicer
from arbiter.server.snapshots import Snapshotter, restore_stats
from arbiter.server.stats import Stats
from arbiter.server.transport import TlsFiles
from arbiter.server.writer import GroupCommitWriter
from arbiter.v1 import decision_pb2, decision_pb2_grpc, experiments_pb2, experiments_pb2_grpc

log = logging.getLogger(__name__)

DECISION_SERVICE = decision_pb2.DESCRIPTOR.services_by_name["DecisionService"]
EXPERIMENT_SERVICE = experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"]
SERVICE_NAMES = (
    DECISION_SERVICE.full_name,
    EXPERIMENT_SERVICE.full_name,
    reflection.SERVICE_NAME,
    health.SERVICE_NAME,
)
DURABILITY = ("strict", "relaxed")
SWITCH_INTERVAL = 0.001  # seconds; see App.start
T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The serving loop: uvloop's if installed (see the module's docstring), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # Windows: uvloop is not built for it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@dataclass
class Settings:
    listen: str = "127.0.0.1:50051"
    db: str = "sqlite:///arbiter.db"
    max_actions: int = DEFAULT_MAX_ACTIONS
    max_batch: int = DEFAULT_MAX_BATCH  # requests of one ChooseBatch
    workers: int = 8  # threads for blocking work off the event loop: cache-miss reads, admin calls
    reuse_port: bool = False
    durability: str = "strict"
    snapshot_every: int = 1000  # learned events between snapshots
    snapshot_seconds: float = 60.0  # ... or seconds, whichever comes first
    tick_seconds: float = 0.5  # how often windows close, snapshots and the database are checked
    auto_promote_seconds: float = 30.0  # how often `auto_promote` experiments are checked
    clock: Clock = field(default=utc_now)
    migrate: bool = True  # upgrade the log's schema at start; False: refuse one not at head
    tail_seconds: float = 0.02  # how often other processes' learned events are read and folded
    cache_bytes: int = DEFAULT_CACHE_BYTES  # the decision cache (the join's memory)
    limits: Limits = DEFAULT_LIMITS  # name lengths, features and namespaces of one Choose
    max_concurrent_rpcs: int = 1000  # more calls in flight are RESOURCE_EXHAUSTED; 0: no cap
    max_queued_writes: int = 10_000  # a call finding the write queue full: RESOURCE_EXHAUSTED
    tls: TlsFiles | None = None  # None: plaintext
    auth_tokens: str | None = None  # the token file (server/auth.py); None: an open server
    reflection: bool = True  # serve gRPC server reflection
    # The key of unit pseudonyms and hashed features (server/privacy.py); None: `arbiter.secret`
    # beside an SQLite file (made on first start); PostgreSQL needs one (SecretError)
    secret_file: str | None = None
    retention_seconds: float = 3600.0  # how often the coordinator applies `retention_days`
    metrics_listen: str | None = None  # HOST:PORT to serve Prometheus metrics on (server/metrics.py)
    # Under `--processes`: record metrics into PROMETHEUS_MULTIPROC_DIR; the supervisor serves them
    metrics_shared: bool = False
    sample_ratio_seconds: float = SAMPLE_RATIO_SECONDS  # the coordinator's SRM metric, with metrics


class App:
    """A running Arbiter: ``start()`` restores and serves, ``stop()`` drains and snapshots.

    Nothing is served before the restore finishes: the port is bound only then (a caller gets
    UNAVAILABLE until it is), and health is SERVING from then until the start of shutdown,
    while the database answers. The maintenance thread probes a database that is down, so
    service resumes on its own.
    """

    def __init__(self, settings: Settings, configs: dict[str, ExperimentConfig]) -> None:
        if settings.durability not in DURABILITY:
            raise ValueError(f"`durability` must be one of {DURABILITY}, got {settings.durability!r}")
        self.settings = settings
        # The current token set, replaced whole by reload_tokens() (one attribute assignment:
        # a call sees the old set or the new one); None: an open server.
        self.tokens: Tokens | None = (load_tokens(settings.auth_tokens)
                                      if settings.auth_tokens is not None else None)
        self.engine: sa.Engine = create_engine(settings.db)
        prepare_schema(self.engine, migrate=settings.migrate)
        self.secret = load_secret(settings.secret_file, settings.db)  # SecretError: one line
        self.write_engine: sa.Engine = create_engine(settings.db, writer=True)
        self._database_file = DatabaseFile.of(settings.db)  # SQLite: deleted or replaced?
        self._database_lost: str | None = None  # what happened to it, once noticed
        self._events = new_event_loop()
        self._events.set_default_executor(futures.ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="arbiter-io"))
        self._events_thread = threading.Thread(target=self._events.run_forever,
                                               name="arbiter-grpc", daemon=True)
        self._events_thread.start()
        self.health = health_aio.HealthServicer()
        self._ready = False
        self._db_ok = True
        self._publish_health()
        self.experiments = {name: Experiment(config) for name, config in configs.items()}
        self.metrics: Metrics | None = (
            Metrics(shared=settings.metrics_shared)
            if settings.metrics_listen is not None or settings.metrics_shared else None)
        self.metrics_address: str | None = None  # HOST:PORT bound, once started
        self._metrics_endpoint: Endpoint | None = None
        self.fold = Fold(self.engine, self.experiments, settings.clock)
        self.stats = Stats.of(self.experiments)  # the live report's sums, kept with the fold
        self.fold.on_apply(self.stats.on_apply)
        self.fold.stats = self.stats  # an erasure rebuilds them with the models
        self.writer = GroupCommitWriter(self.write_engine, self._transaction,
                                        on_learned=self._committed,
                                        on_health=self._database_answered,
                                        on_commit=(self.metrics.committed
                                                   if self.metrics is not None else None),
                                        retry_unavailable=settings.durability == "relaxed",
                                        max_pending=settings.max_queued_writes)
        self.snapshots = Snapshotter(self.write_engine, self.experiments, self.fold,
                                     every_events=settings.snapshot_every,
                                     every_seconds=settings.snapshot_seconds,
                                     stats=self.stats)
        self.server: grpc.aio.Server | None = None
        self.loop = DecisionLoop(self.experiments, self.writer, self.engine,
                                 clock=settings.clock,
                                 relaxed=settings.durability == "relaxed",
                                 available=lambda: self._db_ok,
                                 cache_bytes=settings.cache_bytes, key=self.secret,
                                 metrics=self.metrics)
        self.fold.on_erase(self.loop.cache.drop_experiment)
        self.eraser = Eraser(self.engine, self.writer, self.experiments, self.secret,
                             clock=settings.clock)
        self.retention = Retention(self.write_engine, self.experiments, self.snapshots,
                                   clock=settings.clock, checkpoint_engine=self.engine)
        self._next_retention = 0.0
        self.controller = Controller(self.engine, self.writer, self.experiments, self.fold,
                                     self.stats)
        self.coordinator = Coordinator(self.write_engine)
        self.tail = Tail(self.fold, interval=settings.tail_seconds)
        self._next_auto_promote = 0.0
        self._next_sample_ratio = 0.0
        if self.metrics is not None:
            self.fold.on_lag(self.metrics.lagged)
            self.metrics.on_refresh(self._metrics_state)
        self.port = 0
        self._stopping = threading.Event()
        self._maintenance = threading.Thread(target=self._maintain, name="arbiter-maintenance",
                                             daemon=True)
        self._stopped = False

    def _transaction(self, connection: sa.Connection, ops: list[Op],
                     plain: bool) -> list[LearnedEvent]:
        return commit_batch(connection, ops, self.settings.clock(), self._configs, plain=plain)

    def _committed(self, events: list[LearnedEvent]) -> None:
        """The writer's committed learned events: counted (decisions only), then folded."""
        if self.metrics is not None:
            for event in events:
                if event.variant and event.state_version is None and event.erased_before is None:
                    self.metrics.learned(event.experiment, event.variant)
        self.fold.committed(events)

    def _metrics_state(self) -> None:
        assert self.metrics is not None
        self.metrics.state(queue_depth=self.writer.pending, queue_capacity=self.writer.capacity,
                           database_up=self._db_ok, experiments=self.experiments.values())
        for name in self.experiments:
            with self.fold.lock:
                alarms = self.stats.alarms(name)
            self.metrics.drift(name, alarms)

    def _check_sample_ratio(self) -> None:
        """The coordinator's ``arbiter_sample_ratio_p_value``: the live report's check."""
        assert self.metrics is not None
        with self.engine.connect() as connection:
            for name, experiment in self.experiments.items():
                eras = eras_of(connection, experiment.config)
                units = recent_units(connection, experiment.config, eras)
                self.metrics.sample_ratio_checked(name, sample_ratio_of(units.eras, eras).p_value)

    def _configs(self) -> dict[str, ExperimentConfig]:
        return {name: experiment.config for name, experiment in self.experiments.items()}

    def start(self) -> str:
        """Restore the models from the log, then bind and serve (health SERVING).

        Returns the ``HOST:PORT`` actually bound (port 0 picks a free one).
        """
        host = self.settings.listen.rsplit(":", 1)[0]
        if self.tokens is None:
            log.warning("no --auth-tokens: this server is open; anyone who reaches %s may call "
                        "every method, the admin ones included", self.settings.listen)
        clean = self.fold.log_position()  # erasures before it are in everything read below
        restore_stats(self.engine, self.stats)  # before the fold replays the log after them
        self.fold.restore(clean_through=clean)
        self.controller.seed()  # the TOML's changes to the set-up, in the learning order
        if self.coordinator.acquire():
            self.loop.close_windows()  # windows that closed while no server ran
        # Everything alive now (modules, the restored models) lives as long as the server: out
        # of the collector's sight, a full collection walks only what requests made since:
        # 12 ms per full collection instead of ~55 ms in a Choose load test, and the
        # collector's share of the event loop's time halved.
        gc.collect()
        gc.freeze()
        # The writer gives up the GIL around every SQL statement and commit, and takes it back
        # by asking the event loop's thread to drop it: after up to one switch interval while
        # that thread is busy. A commit of rewards is seven statements; at CPython's 5 ms each
        # take-back can cost more than the statement. 1 ms (process-wide) shortens the
        # batch's wall time, and with it every waiting call's latency.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.port = self._on_events(self._serve())
        if self.settings.metrics_listen is not None and self.metrics is not None:
            self._metrics_endpoint = Endpoint(self.settings.metrics_listen, self.metrics.registry)
            self.metrics_address = self._metrics_endpoint.address
        self._ready = True
        self._publish_health()
        self.tail.start()
        self._maintenance.start()
        return f"{host}:{self.port}"
    async def _serve(self) -> int:
        """Build, bind and start the gRPC server on the event loop; the port bound."""
        # Arbiter's services answer a body that does not decode INVALID_ARGUMENT (guard);
        # past max_concurrent_rpcs calls in flight grpc answers RESOURCE_EXHAUSTED at once.
        server = DecodingServer(grpc.aio.server(
            options=[("grpc.so_reuseport", 1 if self.settings.reuse_port else 0)],
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs or None),
            guarded=SERVICE_NAMES[:2])
        auth = self if self.tokens is not None else None  # the guard reads self.tokens per call
        decision_pb2_grpc.add_DecisionServiceServicer_to_server(
            guard(DecisionServicer(self.loop, max_actions=self.settings.max_actions,
                                   limits=self.settings.limits,
                                   max_batch=self.settings.max_batch),
                  DECISION_SERVICE, auth, self.metrics), server)
        experiments_pb2_grpc.add_ExperimentServiceServicer_to_server(
            guard(ExperimentServicer(self.controller, self.eraser),
                  EXPERIMENT_SERVICE, auth, self.metrics), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)  # open, always
        if self.settings.reflection:
            reflection.enable_server_reflection(SERVICE_NAMES, server)
        tls = self.settings.tls
        port: int = (server.add_secure_port(self.settings.listen, tls.credentials())
                     if tls is not None else server.add_insecure_port(self.settings.listen))
        if port == 0:
            raise RuntimeError(f"cannot listen on {self.settings.listen}")
        await server.start()
        self.server = server
        return port

    def reload_tokens(self) -> bool:
        """Read the token file again and swap the new set in (``arbiter serve`` calls this on
        SIGHUP). A file that does not parse leaves the current set in force. True if swapped."""
        path = self.settings.auth_tokens
        if path is None:
            log.warning("nothing to reload: this server runs without --auth-tokens")
            return False
        try:
            tokens = load_tokens(path)
        except TokenFileError as error:
            log.error("tokens not reloaded, the previous ones stay in force: %s", error)
            return False
        self.tokens = tokens
        log.warning("tokens reloaded from %s: %d tokens", path, len(tokens))
        return True

    def _on_events(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._events).result()

    def stop(self, grace: float = 10.0) -> None:
        """NOT_SERVING, finish in-flight calls, drain the writer, final snapshot. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._ready = False
        self._publish_health()
        self._stopping.set()
        if self.server is not None:
            self._on_events(self.server.stop(grace))
        if self._maintenance.is_alive():
            self._maintenance.join()
        self.tail.stop()
        self.fold.close()
        self.writer.close()
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.stop()
        if self.coordinator.held:
            try:
                self.snapshots.take()
            except sa.exc.SQLAlchemyError as error:
                log.warning("final snapshot not written: %s", error)
        self.coordinator.release()
        self.engine.dispose()
        self.write_engine.dispose()
        gc.unfreeze()  # what this server froze can be collected again (tests run many servers)
        self._events.call_soon_threadsafe(self._events.stop)
        self._events_thread.join()
        self._events.close()

    def _maintain(self) -> None:
        while not self._stopping.wait(self.settings.tick_seconds):
            try:
                if self.metrics is not None and self.metrics.shared:
                    self.metrics.refresh()  # for the supervisor, which reads the files
                if self._database_file_lost():
                    continue
                if not self._db_ok:
                    self._probe_database()
                if not self.coordinator.acquire():
                    continue
                self.loop.close_windows()
                self.snapshots.maybe()
                if self.metrics is not None and time.monotonic() >= self._next_sample_ratio:
                    self._next_sample_ratio = time.monotonic() + self.settings.sample_ratio_seconds
                    self._check_sample_ratio()
                if time.monotonic() >= self._next_auto_promote:
                    self._next_auto_promote = time.monotonic() + self.settings.auto_promote_seconds
                    self.controller.auto_promote()
                if time.monotonic() >= self._next_retention:
                    self._next_retention = time.monotonic() + self.settings.retention_seconds
                    self.retention.run()
            except Exception as error:  # keep maintaining; the next tick tries again
                log.warning("maintenance tick failed: %s", error)

    def _probe_database(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return
        self._database_answered(True)

    def _database_file_lost(self) -> bool:
        """True once the SQLite file was deleted or replaced: NOT_SERVING and UNAVAILABLE for
        good (what is committed now is lost with the old file), said once in the log."""
        if self._database_lost is None and self._database_file is not None:
            problem = self._database_file.problem()
            if problem is not None:
                log.error("%s: serving stopped (health NOT_SERVING, calls answered UNAVAILABLE); "
                          "restart the server on the right file", problem)
                self._database_lost = problem
                self._db_ok = False
                self._publish_health()
        return self._database_lost is not None

    def _database_answered(self, ok: bool) -> None:
        if ok and self._database_lost is not None:  # a commit into the lost file: still lost
            return
        if ok != self._db_ok:
            log.warning("database %s", "is back" if ok else "is unavailable")
            self._db_ok = ok
            self._publish_health()

    def _publish_health(self) -> None:
        serving = self._ready and self._db_ok
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", SERVICE_NAMES[0]):
            asyncio.run_coroutine_threadsafe(self.health.set(name, status), self._events)
