"""Retention (an experiment's ``retention_days``): the coordinator deletes what a snapshot covers.

Once per ``Settings.retention_seconds`` the coordinator, for every experiment with
``retention_days``:

1. finds the newest *cut* — a snapshot of every variant of the experiment written together at
   one fold position (``snapshots.applied``) — such that every learned event of the experiment
   up to it was learned more than ``retention_days`` ago;
2. deletes, in batches of ``batch`` decisions (one short transaction each), the experiment's
   learned events up to that cut with their decisions, rewards, activations and windows; and
   the decisions older than ``retention_days`` that were never learned and have no open window
   (deferred ones never activated);
3. deletes the experiment's snapshots older than the cut (the cut and later ones are kept: a
   restore, and a rebuild after an erasure, start from them);
4. writes a new cut (:meth:`~server.snapshots.Snapshotter.cut`), which a later pass deletes up
   to once it is old enough. So data leaves the log between ``retention_days`` and
   ``retention_days`` plus one pass interval after it was learned.

What stays: the models keep what they learned (the cut holds it; the fold starts there), the
set-up history (``learnings`` rows without an event, ``experiment_states``) and the audit rows.
What goes: offline evaluation and the report's unit counts cover the retained window only, and
a replay from scratch is no longer possible past the cut (a restore needs the snapshot).

The deletes run straight on the database, not through the writer (nothing on a caller's path
waits for them); a constraint that fires (a late reward for a decision being deleted) ends the
pass, and the next one continues. SQLite: ``secure_delete`` zeroes what is deleted and the WAL
is checkpointed and truncated after a pass that deleted anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from arbiter.log import store
from arbiter.log.engine import truncate_wal
from arbiter.server.clock import Clock, utc_now
from arbiter.server.experiments import Experiment
from arbiter.server.snapshots import Snapshotter

log = logging.getLogger(__name__)

BATCH = 1000  # decisions (with everything joined to them) per transaction: ~0.15 s on PostgreSQL


@dataclass(frozen=True, slots=True)
class Expired:
    """One experiment's pass: decisions and learned events deleted, the cut it deleted up to
    (None: no cut old enough yet), snapshots dropped, and the new cut written."""

    decisions: int
    learned_events: int
    rows: int  # every row deleted: decisions, rewards, activations, learned events
    cut: int | None
    snapshots: int
    new_cut: int | None


class Retention:
    """The coordinator's retention pass (:meth:`run`); ``engine`` writes (SQLite: the writer
    engine, whose transactions take the write lock at once)."""

    def __init__(self, engine: sa.Engine, experiments: Mapping[str, Experiment],
                 snapshots: Snapshotter, *, clock: Clock = utc_now, batch: int = BATCH,
                 checkpoint_engine: sa.Engine | None = None) -> None:
        self._engine = engine
        self._experiments = experiments
        self._snapshots = snapshots
        self._clock = clock
        self._batch = batch
        self._checkpoint_engine = checkpoint_engine or engine

    def run(self) -> dict[str, Expired]:
        """One pass over every experiment with ``retention_days``."""
        done: dict[str, Expired] = {}
        for name, experiment in self._experiments.items():
            days = experiment.toml.retention_days
            if days is None:
                continue
            started = time.monotonic()
            expired = self._expire(experiment, days)
            done[name] = expired
            if expired.rows:
                log.warning("experiment %s: retention (%g days) deleted %d decisions, %d learned "
                            "events (%d rows) up to log position %s in %.1f s", name, days,
                            expired.decisions, expired.learned_events, expired.rows, expired.cut,
                            time.monotonic() - started)
        if any(expired.rows for expired in done.values()):
            truncate_wal(self._checkpoint_engine)
        return done

    def _expire(self, experiment: Experiment, days: float) -> Expired:
        name = experiment.name
        cutoff = self._clock() - timedelta(days=days)
        with self._engine.connect() as connection:
            through = store.learned_before(connection, name, cutoff)
            cut = store.retention_cut(connection, name, list(experiment.variants), through)
        decisions = learned = rows = dropped = 0
        try:
            if cut is not None:
                while True:
                    with self._engine.begin() as connection:
                        batch = store.expired_learned(connection, name, cut, self._batch)
                        deleted = store.delete_events(connection, batch)
                    decisions += deleted.decisions
                    learned += deleted.learned_events
                    rows += (deleted.decisions + deleted.rewards + deleted.activations
                             + deleted.learned_events)
                    if len(batch) < self._batch:
                        break
            while True:
                with self._engine.begin() as connection:
                    batch = store.expired_unlearned(connection, name, cutoff, self._batch)
                    deleted = store.delete_events(connection, batch)
                decisions += deleted.decisions
                rows += deleted.decisions + deleted.rewards + deleted.activations
                if len(batch) < self._batch:
                    break
            if cut is not None:
                with self._engine.begin() as connection:
                    dropped = store.drop_snapshots_before(connection, name, cut)
        except sa.exc.IntegrityError as error:  # a row was joined to a deleted one meanwhile
            log.warning("experiment %s: retention pass stopped, the next one goes on: %s",
                        name, error.orig)
        return Expired(decisions=decisions, learned_events=learned, rows=rows, cut=cut,
                       snapshots=dropped, new_cut=self._snapshots.cut(name))
