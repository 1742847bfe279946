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
sees seq ``n`` has every seq below it; so the fold applies the seqs after ``applied`` in order,
reading from the log whatever it was not handed. (Seqs may be missing: erasure and retention
delete rows.)

Erasure (exact unlearning): an erasure deletes a unit's events and adds a marker
(``erased_before`` = the earliest erased seq) to the order. At the marker every process
rebuilds that experiment — beside the live one, so Choose keeps using the old models until the
new ones are swapped in: fresh policies or each variant's latest remaining snapshot before the
marker (the erasure deleted those that may hold an erased event), the set-up in force at their
position, the report statistics likewise, then the log up to the marker (the erased events are
gone). So the models are exactly the fold of a log that never had the unit, on every process.
A marker needs no rebuild where this process's state of the experiment was read after the
erasure committed (``_clean``): a restore, or a rebuild, that started after it — so a restart
never replays the log once per past erasure. Markers also tell listeners (``on_erase``) to drop
the experiment's cached decisions.

Freshness: events of other processes are applied within the tail's poll interval; their lag
(apply time minus commit time) is kept in a bounded window for ``lag()`` and handed to the
``on_lag`` listeners (the ``arbiter_fold_lag_seconds`` histogram).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from arbiter.log import store
from arbiter.log.store import LearnedEvent
from arbiter.policies import restore as restore_policy
from arbiter.server import traffic
from arbiter.server.experiments import Experiment
from arbiter.server.stats import ExperimentStats, Stats, VariantStats

log = logging.getLogger(__name__)

IDLE_POLLS = 3  # the tail's longest wait while polls find nothing, in poll intervals (Tail)
READ_CHUNK = 2000
LAG_WINDOW = 10_000  # the last lags kept for the percentiles
OWN_GRACE = 0.002  # seconds a poll leaves this process's writer to fold what it committed


class Fold:
    """Applies learned events to ``experiments`` in seq order; thread-safe."""

    def __init__(self, engine: sa.Engine, experiments: Mapping[str, Experiment],
                 clock: Callable[[], datetime], stats: Stats | None = None) -> None:
        self._engine = engine
        self.experiments = experiments
        self._clock = clock
        self.stats = stats  # the report's accumulators (also fed by on_apply): rebuilt on erasure
        self.rebuilds = 0  # experiments rebuilt at an erasure's marker
        self._clean_all = 0  # erasures at seqs <= this are reflected in every restored state
        self._clean: dict[str, int] = {}  # ... per experiment, since its last rebuild
        self._erase_listeners: list[Callable[[str], object]] = []
        self.lock = threading.RLock()  # held while applying; hold it to read models consistently
        self.applied = 0  # every seq <= applied is folded
        # Every seq <= handed is folded, or being folded by the writer's committed() (which
        # reads any other process's seqs before its own): a poll has nothing to read up to it.
        self._handed = 0
        self.learned_events = 0  # decisions folded since start (snapshot cadence)
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self._listeners: list[Callable[[Experiment, LearnedEvent], None]] = []
        self._last_seq = store.LastSeqProbe(engine)  # the polls' cheap question
        self._lag_listeners: list[Callable[[float], None]] = []

    def on_apply(self, listener: Callable[[Experiment, LearnedEvent], None]) -> None:
        """Call ``listener(experiment, event)`` for every learned decision applied (e.g. the
        incremental report statistics)."""
        self._listeners.append(listener)

    def on_lag(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(seconds)`` with the lag of every event of another process folded."""
        self._lag_listeners.append(listener)

    def on_erase(self, listener: Callable[[str], object]) -> None:
        """Call ``listener(experiment)`` at every erasure marker (e.g. to drop cached decisions
        of that experiment: some may be erased)."""
        self._erase_listeners.append(listener)

    # ------------------------------------------------------------------ restore
    def log_position(self) -> int:
        """The last seq handed out: read it before reading anything to restore, and pass it as
        ``restore(clean_through=...)``."""
        with self._engine.connect() as connection:
            return store.last_seq(connection)

    def restore(self, *, use_snapshots: bool = True, clean_through: int | None = None) -> int:
        """Load each variant's latest snapshot and replay the log after it; returns events read.

        Each experiment's roles are those in force at its earliest variant position; set-up
        changes after it are replayed like every other event. ``clean_through``: a
        :meth:`log_position` read before anything restored was read (the report statistics
        included); erasures up to it need no rebuild (default: read here, first)."""
        start: int | None = None
        clean = self.log_position() if clean_through is None else clean_through
        with self._engine.connect() as connection:
            for experiment in self.experiments.values():
                position, _ = self._restore_experiment(connection, experiment,
                                                       use_snapshots=use_snapshots)
                start = position if start is None else min(start, position)
        self._clean_all = clean
        self.applied = start or 0
        replayed = self.catch_up()
        log.info("restored: %d learned events replayed, log position %d", replayed, self.applied)
        return replayed

    @staticmethod
    def _restore_experiment(connection: sa.Connection, experiment: Experiment, *,
                            use_snapshots: bool = True, before: int | None = None
                            ) -> tuple[int, dict[str, dict[str, Any] | None]]:
        """Load each variant's latest snapshot (below ``before`` if given) and the set-up in
        force at the earliest variant position; returns that position and the snapshot rows."""
        rows: dict[str, dict[str, Any] | None] = {}
        for variant in experiment.variants.values():
            snapshot = (store.latest_snapshot(connection, experiment.name, variant.name, before)
                        if use_snapshots else None)
            rows[variant.name] = snapshot
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
        return position, rows

    # ------------------------------------------------------------------ live
    def close(self) -> None:
        """Give back the polls' connection (before the engine is disposed)."""
        self._last_seq.close()

    def committed(self, events: Sequence[LearnedEvent]) -> None:
        """The writer's batch, just committed, in seq order: fold it now (reading from the log
        the seqs before it that other processes committed, and decisions it was not handed)."""
        if not events:
            return
        self._handed = max(self._handed, events[-1].seq)  # before the lock: see catch_up
        try:
            with self.lock:
                needed = [e for e in events if e.seq > self.applied]
                if not needed:
                    return
                complete = all(e.decision is not None or e.state_version is not None
                               or e.erased_before is not None for e in needed)
                if needed[0].seq != self.applied + 1 or not complete:
                    known = {e.seq: e for e in needed if e.decision is not None}
                    needed = [known.get(e.seq, e)
                              for e in self._read(self.applied, needed[-1].seq)]
                for event in needed:
                    self._apply(event)
        except BaseException:
            self._handed = 0  # not all folded: the next poll reads from ``applied``
            raise

    def catch_up(self) -> int:
        """Fold everything committed so far (the tail's poll); returns events applied.

        A poll first reads the one ``learning_order`` row: when nothing was learned past what
        is folded, or handed to :meth:`committed` by this process's writer (the usual case for
        a single process, whose writer folds its own events at once), that is all it costs;
        the events and their decisions are read and decoded only when another process
        committed some."""
        applied = 0
        while True:
            last = self._last_seq()
            if last <= max(self.applied, self._handed):
                return applied
            time.sleep(OWN_GRACE)  # this process's writer may be handing these over right now
            if last <= max(self.applied, self._handed):
                return applied
            events = self._read(self.applied, None)  # outside the lock: the writer goes on
            with self.lock:
                # The writer may have folded part of this read meanwhile: skip that part. What
                # is left follows ``applied`` (seqs commit in order; erased ones are gone).
                fresh = [e for e in events if e.seq > self.applied]
                for event in fresh:
                    self._apply(event, remote=True)
                applied += len(fresh)
                if len(events) < READ_CHUNK:
                    # Every seq up to ``last`` was committed before this read, so what the
                    # read did not return was erased or retired: nothing is left to wait for.
                    self.applied = max(self.applied, last)
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
        experiment = self.experiments.get(event.experiment)
        if experiment is not None and event.erased_before is not None:
            self._erasure(experiment, event)  # if it fails, the marker is read and tried again
            self.applied = event.seq
            return
        self.applied = event.seq
        if experiment is None:
            return
        if event.state_version is not None:
            with self._engine.connect() as connection:
                self._set_up(connection, experiment, event)
            return
        if not self._learn(experiment, event):
            return
        self.learned_events += 1
        for listener in self._listeners:
            listener(experiment, event)
        if remote and event.learned_at is not None:
            lag = (self._clock() - event.learned_at).total_seconds()
            self._lags.append(lag)
            for lagged in self._lag_listeners:
                lagged(lag)

    def _set_up(self, connection: sa.Connection, experiment: Experiment,
                event: LearnedEvent) -> None:
        """A set-up change: swap the experiment's roles in (unless its roles are newer)."""
        assert event.state_version is not None
        if event.seq > experiment.roles_position:
            state = traffic.load(connection, experiment.name, event.state_version)
            if state is not None:
                traffic.apply_state(experiment, state)
            experiment.roles_position = event.seq

    @staticmethod
    def _learn(experiment: Experiment, event: LearnedEvent) -> bool:
        """A learned decision: each of its learners that has not seen ``seq`` learns it."""
        if event.decision is None:
            log.error("learned event %d has no decision; skipped", event.seq,
                      extra={"event_id": event.event_id})
            return False
        learners = experiment.learners(event.variant)
        for variant in learners:
            if variant.position < event.seq:
                variant.learn(event.decision, event.chosen, event.value, event.probability,
                              event.seq, event.event_id)
        for variant in experiment.variants.values():
            if variant.name not in experiment.listed and variant not in learners \
                    and variant.position < event.seq:
                variant.skip(event.seq)  # cold: a restart need not read this event for it again
        return True

    # ------------------------------------------------------------------ erasure
    def _erasure(self, experiment: Experiment, event: LearnedEvent) -> None:
        """An erasure's marker (under the lock): drop caches; rebuild if this process's models
        of the experiment may hold an erased event."""
        for listener in self._erase_listeners:
            listener(experiment.name)
        assert event.erased_before is not None
        if event.erased_before >= event.seq:
            return  # none of the erased decisions was learned
        if event.seq <= max(self._clean_all, self._clean.get(experiment.name, 0)):
            return  # restored (or rebuilt) from what was read after this erasure
        started = time.monotonic()
        replayed = self._rebuild(experiment, event.seq)
        log.warning("experiment %s rebuilt after an erasure (marker %d, earliest erased event "
                    "%d): %d learned events replayed in %.2f s", experiment.name, event.seq,
                    event.erased_before, replayed, time.monotonic() - started)

    def _rebuild(self, experiment: Experiment, marker: int) -> int:
        """Fold ``experiment`` again from its remaining snapshots before ``marker`` and the log
        up to it, beside the live one, then swap the result in. Returns the events replayed."""
        side = Experiment(experiment.toml)
        replayed = 0
        with self._engine.connect() as connection:
            clean = store.last_seq(connection)  # everything read below is from after this
            position, rows = self._restore_experiment(connection, side, before=marker)
            statistics = self._stats_from(experiment.name, rows)
            start = position
            if statistics is not None:
                start = min(start, *(v.position for v in statistics.variants.values()))
            after = start
            while True:
                chunk = store.learned_after(connection, after, marker - 1,
                                            experiments=[experiment.name], limit=READ_CHUNK)
                for event in chunk:
                    if event.state_version is not None:
                        self._set_up(connection, side, event)
                    elif event.erased_before is None and self._learn(side, event):
                        replayed += 1
                        if statistics is not None:
                            statistics.apply(event.seq, event.variant, event.chosen,
                                             event.probability, event.shadow, event.value)
                if len(chunk) < READ_CHUNK:
                    break
                after = chunk[-1].seq
        for name, rebuilt in side.variants.items():  # the swap: each a single assignment
            live = experiment.variants[name]
            live.config = rebuilt.config
            live.restore(rebuilt.policy, rebuilt.position, rebuilt.updates)
        experiment.table = side.table
        experiment.config = side.config
        experiment.version, experiment.since = side.version, side.since
        experiment.listed, experiment.roles_position = side.listed, side.roles_position
        if statistics is not None and self.stats is not None:
            self.stats.experiments[experiment.name] = statistics
        self._clean[experiment.name] = clean
        self.learned_events += replayed  # the snapshots the erasure deleted are soon replaced
        self.rebuilds += 1
        return replayed

    def _stats_from(self, name: str,
                    rows: Mapping[str, Mapping[str, Any] | None]) -> ExperimentStats | None:
        """The report statistics of each variant from its snapshot row (fresh where it has
        none, or none readable: the replay then starts at the beginning for it)."""
        if self.stats is None or name not in self.stats.experiments:
            return None
        current = self.stats.experiments[name]
        variants: dict[str, VariantStats] = {}
        for variant in current.variants:
            row = rows.get(variant)
            data = row.get("stats") if row is not None else None
            restored = None
            if isinstance(data, Mapping):
                try:
                    restored = VariantStats.from_json(data, current.reward_range)
                except (KeyError, TypeError, ValueError, IndexError):
                    restored = None
            variants[variant] = restored if restored is not None else VariantStats()
        return ExperimentStats(variants, last_seq=current.last_seq,
                               reward_range=current.reward_range)

    # ------------------------------------------------------------------ freshness
    def lag(self) -> tuple[float, float, int] | None:
        """(p50, p99, n) in seconds of the lag of other processes' events, or None."""
        lags = sorted(self._lags)
        if not lags:
            return None
        return (lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))],
                len(lags))


def next_wait(wait: float, interval: float, folded: int) -> float:
    """The tail's wait after a poll that waited ``wait`` and folded ``folded`` events:
    ``interval`` after one that folded something, else ``min(2 * wait, IDLE_POLLS *
    interval)``. A poll that failed counts as empty."""
    return interval if folded else min(2 * wait, IDLE_POLLS * interval)


class Tail:
    """Polls the log every ``interval`` seconds and folds what other processes committed.

    While polls find nothing from other processes (one process alone, or the others quiet)
    the wait doubles after each empty poll, up to :data:`IDLE_POLLS` times ``interval`` (60
    ms at the default 20), and is ``interval`` again after a poll that folded something: a
    lone process wakes a third as often, and the first event after a quiet spell is folded
    at most that much later — within the 100 ms fold-lag goal — while a steady stream from
    other processes is polled as before."""

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
        wait = self._interval
        while not self._stop.wait(wait):
            folded = 0
            try:
                folded = self._fold.catch_up()
            except sa.exc.SQLAlchemyError as error:  # the database is down: the probe sees it
                log.debug("tail: %s", error)
            except Exception:
                log.exception("tail: folding failed")
            wait = next_wait(wait, self._interval, folded)
            if time.monotonic() - self._last_report >= 60:
                self._last_report = time.monotonic()
                lag = self._fold.lag()
                if lag is not None:
                    log.info("fold lag of other processes' events: p50 %.1f ms, p99 %.1f ms "
                             "(last %d)", lag[0] * 1e3, lag[1] * 1e3, lag[2])
