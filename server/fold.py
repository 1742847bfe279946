"""The fold: every process applies the log's learned events, in seq order, to its own models.

One :meth:`Fold.apply` serves live learning (the writer hands over its batch's events right
after the commit, so the next Choose on this process sees them), replicas (a tail thread reads
what other processes committed) and recovery (snapshot, then replay): so every process holds
the same models as a from-scratch replay of the log.

An event is either a learned decision — applied to the variant that served it and to every
shadow (and to every configured variant the experiment's set-up does not list yet, which
learns as a shadow does) — or a set-up change (``state_version``), which swaps the
experiment's roles, traffic and bucket table at exactly that point of the order.

Because transactions that learn commit in seq order (see ``learning_order``), a reader that
sees seq ``n`` has every seq below it; so the fold applies seqs ``applied+1, applied+2, ...``
with no gaps, reading from the log whatever it was not handed.

Freshness: events of other processes are applied within the tail's poll interval; their lag
(apply time minus commit time) is kept in a bounded window for ``lag()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from arbiter.log import store
from arbiter.log.store import LearnedEvent
from arbiter.policies import restore as restore_policy
from arbiter.server import traffic
from arbiter.server.experiments import Experiment

log = logging.getLogger(__name__)

READ_CHUNK = 2000
LAG_WINDOW = 10_000  # the last lags kept for the percentiles


class Fold:
    """Applies learned events to ``experiments`` in seq order; thread-safe."""

    def __init__(self, engine: sa.Engine, experiments: Mapping[str, Experiment],
                 clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self.experiments = experiments
        self._clock = clock
        self.lock = threading.RLock()  # held while applying; hold it to read models consistently
        self.applied = 0  # every seq <= applied is folded
        self.learned_events = 0  # decisions folded since start (snapshot cadence)
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self._listeners: list[Callable[[Experiment, LearnedEvent], None]] = []

    def on_apply(self, listener: Callable[[Experiment, LearnedEvent], None]) -> None:
        """Call ``listener(experiment, event)`` for every learned decision applied (e.g. the
        incremental report statistics)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ restore
    def restore(self, *, use_snapshots: bool = True) -> int:
        """Load each variant's latest snapshot and replay the log after it; returns events read.

        Each experiment's roles are those in force at its earliest variant position; set-up
        changes after it are replayed like every other event."""
        start: int | None = None
        with self._engine.connect() as connection:
            for experiment in self.experiments.values():
                for variant in experiment.variants.values():
                    snapshot = (store.latest_snapshot(connection, experiment.name, variant.name)
                                if use_snapshots else None)
                    if snapshot is not None and snapshot["policy"] == variant.config.policy:
                        variant.restore(restore_policy(variant.config.policy, snapshot["state"]),
                                        int(snapshot["position"]), int(snapshot["updates"]))
                position = min(v.position for v in experiment.variants.values())
                experiment.roles_position = position
                version = store.state_version_at(connection, experiment.name, position)
                state = (traffic.load(connection, experiment.name, version) if version is not None
                         else traffic.legacy(connection, experiment.name))
                if state is not None:
                    traffic.apply_state(experiment, state)
                start = position if start is None else min(start, position)
        self.applied = start or 0
        replayed = self.catch_up()
        log.info("restored: %d learned events replayed, log position %d", replayed, self.applied)
        return replayed

    # ------------------------------------------------------------------ live
    def committed(self, events: Sequence[LearnedEvent]) -> None:
        """The writer's batch, just committed, in seq order: fold it now (reading from the log
        the seqs before it that other processes committed, and decisions it was not handed)."""
        if not events:
            return
        with self.lock:
            needed = [e for e in events if e.seq > self.applied]
            if not needed:
                return
            complete = all(e.decision is not None or e.state_version is not None
                           for e in needed)
            if needed[0].seq != self.applied + 1 or not complete:
                known = {e.seq: e for e in needed if e.decision is not None}
                needed = [known.get(e.seq, e) for e in self._read(self.applied, needed[-1].seq)]
            for event in needed:
                self._apply(event)

    def catch_up(self) -> int:
        """Fold everything committed so far (the tail's poll); returns events applied."""
        applied = 0
        while True:
            events = self._read(self.applied, None)  # outside the lock: the writer goes on
            with self.lock:
                fresh = [e for e in events if e.seq > self.applied]
                if fresh and fresh[0].seq != self.applied + 1:
                    continue  # the writer folded past part of this read; read again
                for event in fresh:
                    self._apply(event, remote=True)
                applied += len(fresh)
            if len(events) < READ_CHUNK:
                return applied

    def _read(self, after: int, through: int | None) -> list[LearnedEvent]:
        events: list[LearnedEvent] = []
        with self._engine.connect() as connection:
            while True:
                chunk = store.learned_after(connection, after, through, limit=READ_CHUNK)
                events.extend(chunk)
                if len(chunk) < READ_CHUNK or through is None:
                    return events
                after = chunk[-1].seq

    def _apply(self, event: LearnedEvent, *, remote: bool = False) -> None:
        """Apply one event (under the lock, in seq order)."""
        self.applied = event.seq
        experiment = self.experiments.get(event.experiment)
        if experiment is None:
            return
        if event.state_version is not None:
            if event.seq > experiment.roles_position:
                with self._engine.connect() as connection:
                    state = traffic.load(connection, experiment.name, event.state_version)
                if state is not None:
                    traffic.apply_state(experiment, state)
                experiment.roles_position = event.seq
            return
        if event.decision is None:
            log.error("learned event %d has no decision; skipped", event.seq,
                      extra={"event_id": event.event_id})
            return
        for variant in experiment.learners(event.variant):
            if variant.position < event.seq:
                variant.learn(event.decision, event.chosen, event.value, event.probability,
                              event.seq, event.event_id)
        self.learned_events += 1
        for listener in self._listeners:
            listener(experiment, event)
        if remote and event.learned_at is not None:
            self._lags.append((self._clock() - event.learned_at).total_seconds())

    # ------------------------------------------------------------------ freshness
    def lag(self) -> tuple[float, float, int] | None:
        """(p50, p99, n) in seconds of the lag of other processes' events, or None."""
        lags = sorted(self._lags)
        if not lags:
            return None
        return (lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))],
                len(lags))


class Tail:
    """Polls the log every ``interval`` seconds and folds what other processes committed."""

    def __init__(self, fold: Fold, interval: float = 0.02) -> None:
        self._fold = fold
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arbiter-tail", daemon=True)
        self._last_report = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fold.catch_up()
            except sa.exc.SQLAlchemyError as error:  # the database is down: the probe sees it
                log.debug("tail: %s", error)
            except Exception:
                log.exception("tail: folding failed")
            if time.monotonic() - self._last_report >= 60:
                self._last_report = time.monotonic()
                lag = self._fold.lag()
                if lag is not None:
                    log.info("fold lag of other processes' events: p50 %.1f ms, p99 %.1f ms "
                             "(last %d)", lag[0] * 1e3, lag[1] * 1e3, lag[2])
