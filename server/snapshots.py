"""Snapshots: a cache of the fold — each variant's policy bytes at the position it reflects.

Taken by the coordinator every ``every_events`` learned events or ``every_seconds`` (whichever
comes first, and only when something was learned since), and on its graceful shutdown. Every
variant is read under the fold's lock, so a snapshot's variants all reflect one position.
Written straight to the database (not through the group-commit writer): a snapshot is never on
a caller's path, and a lost one only means a longer replay at the next start.

Each row also holds the variant's live-report accumulators (``stats``, :mod:`server.stats`) at
the fold's position (``applied``); :func:`restore_stats` loads them before the fold's restore
replays the log after the snapshots.

Erasure: a snapshot taken before this process folded an erasure's marker may hold erased
events. So the rows are inserted, then the ``learning_order`` row is share-locked and the log
is checked for a marker after the fold position the rows were taken at; the rows of an
experiment with one are deleted again before the commit. (The erasure takes that lock before
it deletes snapshots, so one of the two always sees the other.)

Retention (:meth:`Snapshotter.cut`): every variant of an experiment at one fold position,
which the retention pass may later delete the log up to (server/retention.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from arbiter.log import store
from arbiter.log.schema import snapshots
from arbiter.server.clock import utc_now
from arbiter.server.experiments import Experiment
from arbiter.server.fold import READ_CHUNK, Fold
from arbiter.server.stats import Stats

log = logging.getLogger(__name__)


class Snapshotter:
    def __init__(self, engine: sa.Engine, experiments: Mapping[str, Experiment], fold: Fold, *,
                 every_events: int = 1000, every_seconds: float = 60.0,
                 stats: Stats | None = None) -> None:
        self._engine = engine
        self._stats = stats
        self._experiments = experiments
        self._fold = fold
        self._every_events = every_events
        self._every_seconds = every_seconds
        self._learned_at_last = 0
        self._time_of_last = time.monotonic()
        self._written: dict[tuple[str, str], int] = {}  # (experiment, variant) → position

    def maybe(self) -> bool:
        """Snapshot if enough events were learned, or enough time passed, since the last one."""
        new = self._fold.learned_events - self._learned_at_last
        elapsed = time.monotonic() - self._time_of_last
        if new <= 0 or (new < self._every_events and elapsed < self._every_seconds):
            return False
        self.take()
        return True

    def take(self) -> int:
        """Write the state of every variant that learned since its last snapshot; returns rows."""
        rows: list[dict[str, Any]] = []
        written: dict[tuple[str, str], int] = {}
        learned_events = self._fold.learned_events
        with self._fold.lock:
            applied = self._fold.applied
            for experiment in self._experiments.values():
                for variant in experiment.variants.values():
                    state, position, updates = variant.state()
                    key = (experiment.name, variant.name)
                    if position == 0 or self._written.get(key) == position:
                        continue
                    written[key] = position
                    rows.append(self._row(experiment, variant.name, state, position, updates,
                                          applied))
        stored = self._insert(rows, applied)
        if rows:
            log.info("snapshot of %d variants written", len(rows))
        self._written.update({key: position for key, position in written.items()
                              if key[0] in stored})
        self._learned_at_last = learned_events
        self._time_of_last = time.monotonic()
        return len(rows)

    def cut(self, name: str) -> int | None:
        """Snapshot every variant of experiment ``name`` at the fold's current position, whether
        it learned since its last snapshot or not; returns that position (None if nothing was
        learned yet, or an erasure came between)."""
        experiment = self._experiments[name]
        with self._fold.lock:
            applied = self._fold.applied
            rows = [self._row(experiment, variant.name, *variant.state(), applied)
                    for variant in experiment.variants.values()]
        if applied == 0 or name not in self._insert(rows, applied):
            return None
        log.info("experiment %s: snapshot of every variant at log position %d (retention)",
                 name, applied)
        return applied

    def _row(self, experiment: Experiment, variant: str, state: bytes, position: int,
             updates: int, applied: int) -> dict[str, Any]:
        return {"experiment": experiment.name, "variant": variant,
                "policy": experiment.variants[variant].config.policy, "position": position,
                "updates": updates, "state": state, "created_at": utc_now(), "applied": applied,
                "stats": None if self._stats is None else self._stats.dump(
                    experiment.name, variant, applied)}

    def _insert(self, rows: list[dict[str, Any]], applied: int) -> set[str]:
        """Insert ``rows`` (taken at fold position ``applied``) but those of an experiment with
        an erasure after ``applied``; returns the experiments stored."""
        if not rows:
            return set()
        with self._engine.begin() as connection:
            ids = [row[0] for row in connection.execute(
                snapshots.insert().returning(snapshots.c.id, sort_by_parameter_order=True),
                rows)]
            store.lock_learning_order(connection, share=True)
            erased = store.erasures_after(connection, applied)
            stale = [row_id for row_id, row in zip(ids, rows, strict=True)
                     if row["experiment"] in erased]
            if stale:
                connection.execute(snapshots.delete().where(snapshots.c.id.in_(stale)))
                log.info("snapshot of %s not kept: an erasure came after it was taken",
                         ", ".join(sorted(erased)))
        return {row["experiment"] for row in rows} - erased


def restore_stats(engine: sa.Engine, stats: Stats) -> int:
    """Load each variant's report accumulators from its latest snapshot, before the fold's
    restore (which replays the log from at most that snapshot's position: the accumulators skip
    what they already hold). An experiment with a snapshot that has none (written before
    revision 0003, or in a format this release does not read) has them rebuilt from the log,
    read once from its start. Returns the learned events read for that."""
    rebuild: list[str] = []
    with engine.connect() as connection:
        for name, experiment in stats.experiments.items():
            for variant in list(experiment.variants):
                found, data = store.latest_stats(connection, name, variant)
                # no snapshot: its position is 0, so the fold replays every event for it
                if found and (data is None or not stats.load(name, variant, data)):
                    rebuild.append(name)
    read = 0
    for name in dict.fromkeys(rebuild):
        experiment = stats.experiments[name]
        after, read_before = 0, read
        with engine.connect() as connection:
            while True:
                chunk = store.learned_after(connection, after, None, experiments=[name],
                                            limit=READ_CHUNK)
                for event in chunk:
                    if event.decision is not None:
                        experiment.apply(event.seq, event.variant, event.chosen,
                                         event.probability, event.shadow, event.value)
                read += len(chunk)
                if len(chunk) < READ_CHUNK:
                    break
                after = chunk[-1].seq
        log.info("experiment %s: report statistics rebuilt from %d learned events (snapshots "
                 "without them)", name, read - read_before)
    return read
