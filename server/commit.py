"""One group-commit batch as one transaction: the steps, in order, and what each caller is told.

The writer thread hands :func:`commit_batch` every :class:`Op` of a batch; inside one
transaction it runs, each step one statement for the whole batch:

1. set-up changes (a version another process wrote first is a ``Conflict``) and their
   promotion audit rows;
2. decisions (an event id already logged is turned away: ``Conflict``) and their windows;
3. activations (idempotent) and the windows they open;
4. rewards: the retries the log already holds, then ``first`` rewards take their windows
   (``DELETE ... RETURNING``) and ``sum`` rewards hold theirs (``FOR SHARE``), then every
   stored reward is inserted with the ``learned`` flag :func:`server.rewards.judge` gives it
   (a plain try reads what the log holds only for the rewards that missed their window);
5. due windows are closed (``FOR UPDATE SKIP LOCKED``) with their default reward or sum;
6. every learning of the batch (rewards learned now, closed windows, set-up changes) takes
   the next seqs from ``learning_order`` and is inserted; the row lock on ``learning_order``
   is held to commit, so commit order is seq order across every process;
7. erasures (last, so that they also take what this batch learned of the unit): each finds
   the unit's decisions (both pseudonym forms; not those this batch logged: the erasure
   comes first in their order), deletes them with their rewards, activations, windows and
   learned events, deletes the snapshots that may reflect an erased event, writes its audit
   row (a request id already stored is a retry: its counts, nothing changed), and adds one
   marker per experiment to the learning order, where every process rebuilds its models.

Each op's ``outcome`` is set for its caller; the learnings come back with their seqs, in order,
for the fold (and, with metrics, for ``arbiter_learned_events_total``: a closed window's event
carries its decision's variant, read in step 5, though not the decision itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from arbiter.log import store
from arbiter.log.schema import erasures, promotions
from arbiter.log.store import (
    OWN_SEQ,
    ActivationRecord,
    DecisionRecord,
    LearnedEvent,
    Learning,
    RewardRecord,
)
from arbiter.server.config import ExperimentConfig
from arbiter.server.rewards import Judgement, Verdict, judge


@dataclass(frozen=True, slots=True)
class CloseDue:
    """Close up to ``limit`` windows that closed before the batch's time."""

    limit: int = 1000


@dataclass(frozen=True, slots=True)
class StateChange:
    """A new set-up version of ``experiment`` (its ``experiment_states`` row), an optional
    promotion audit row, and its place in the learning order."""

    experiment: str
    state_row: dict[str, Any]
    audit_row: dict[str, Any] | None
    learned_at: datetime


@dataclass(frozen=True, slots=True)
class Erase:
    """Erase a unit: its decisions whose ``(experiment, unit_hash)`` is one of ``units`` (every
    pseudonym form of the unit in every experiment of the scope), audited under
    ``request_id``."""

    request_id: str
    experiment: str | None  # the scope; None: every experiment
    units: tuple[tuple[str, str], ...]
    fingerprint: str  # tells a retry of this request from another request with its id
    principal: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Erased:
    """An erasure's outcome: what it deleted, and the experiments whose models it rebuilt.
    ``repeated``: the request id was already done; these are its stored counts."""

    request_id: str
    decisions: int
    rewards: int
    activations: int
    learned_events: int
    rebuilt: tuple[str, ...]
    repeated: bool = False


class Conflict(Exception):
    """The event id is already logged (by this or another process)."""


class Reused(Exception):
    """An erasure's request id is stored for another unit or scope."""


class Raced(Exception):
    """A reward the log turned away although no retry was seen at the start of the
    transaction: cannot happen under the window locks; the batch is rolled back."""


Record = DecisionRecord | ActivationRecord | RewardRecord | CloseDue | StateChange | Erase


@dataclass(slots=True)
class Op:
    """One record to write. ``source``: a reward's decision, so the fold needs no read.

    ``outcome`` after commit: decisions — ``True`` or a :class:`Conflict`; activations —
    ``True`` if activated now; rewards — a :class:`~server.rewards.Judgement`; closes — the
    number closed; set-up changes — its seq, or a :class:`Conflict`; erasures — an
    :class:`Erased`, or :class:`Reused`."""

    record: Record
    source: DecisionRecord | None = None
    outcome: Any = None


@dataclass(slots=True)
class _Learnings:
    items: list[Learning] = field(default_factory=list)
    sources: list[DecisionRecord | None] = field(default_factory=list)
    owners: list[Op | None] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)  # where ``source`` is None: "" or known

    def add(self, item: Learning, source: DecisionRecord | None, owner: Op | None = None,
            variant: str = "") -> None:
        self.items.append(item)
        self.sources.append(source)
        self.owners.append(owner)
        self.variants.append(variant)


def commit_batch(connection: sa.Connection, ops: Sequence[Op], now: datetime,
                 configs: Callable[[], Mapping[str, ExperimentConfig]], *,
                 plain: bool = False) -> list[LearnedEvent]:
    """Run the steps above for ``ops`` in ``connection``'s transaction; returns the batch's
    learned events (with decisions where known) in seq order.

    ``plain``: decisions and rewards go in with plain inserts, expecting no conflict (see
    :func:`~arbiter.log.store.insert_values`); any constraint violation raises
    :class:`~sqlalchemy.exc.IntegrityError`, and the caller runs the batch again without
    ``plain``, where the log tells a key already stored (a ``Conflict``, a retried reward)
    from a row refused for another reason (which still raises)."""
    learned = _Learnings()
    _state_changes(connection, ops, learned)
    _decisions(connection, ops, plain)
    _activations(connection, ops)
    _rewards(connection, ops, now, configs(), learned, plain)
    _closes(connection, ops, now, configs(), learned)
    events = _learn(connection, learned)
    markers = _Learnings()
    _erasures(connection, ops, markers)
    return events + _learn(connection, markers)


def _learn(connection: sa.Connection, learned: _Learnings) -> list[LearnedEvent]:
    """Give ``learned`` the next seqs, insert them; the events for the fold, in seq order."""
    if not learned.items:
        return []
    first = store.take_seqs(connection, len(learned.items))
    store.insert_learnings(connection, first, learned.items)
    events = []
    for offset, (item, source, owner, variant) in enumerate(zip(
            learned.items, learned.sources, learned.owners, learned.variants, strict=True)):
        seq = first + offset
        if owner is not None:
            owner.outcome = seq
        if source is None:
            events.append(LearnedEvent(seq=seq, experiment=item.experiment, value=item.value,
                                       state_version=item.state_version,
                                       event_id=item.event_id, variant=variant,
                                       erased_before=(seq if item.erased_before == OWN_SEQ
                                                      else item.erased_before)))
        else:
            events.append(LearnedEvent(seq=seq, experiment=item.experiment, value=item.value,
                                       event_id=item.event_id, variant=source.variant,
                                       decision=source.decision, chosen=source.chosen,
                                       probability=source.distribution[source.chosen],
                                       shadow=source.shadow))
    return events


def _state_changes(connection: sa.Connection, ops: Sequence[Op], learned: _Learnings) -> None:
    changes = [(op, op.record) for op in ops if isinstance(op.record, StateChange)]
    if not changes:
        return
    written = store.insert_states(connection, [record.state_row for _, record in changes])
    for op, record in changes:
        version = int(record.state_row["version"])
        if (record.experiment, version) not in written:
            op.outcome = Conflict(f"{record.experiment} version {version}")
            continue
        written.discard((record.experiment, version))
        if record.audit_row is not None:
            store.insert_rows(connection, promotions, [record.audit_row])
        learned.add(Learning(experiment=record.experiment, event_id=None, value=0.0,
                             learned_at=record.learned_at, state_version=version), None, op)


def _decisions(connection: sa.Connection, ops: Sequence[Op], plain: bool) -> None:
    """Outcome: True, or a :class:`Conflict` when the event id is already logged."""
    _insert_once(ops, DecisionRecord,
                 lambda records: store.insert_decisions(connection, records, plain=plain),
                 lambda event_id: Conflict(event_id))


def _activations(connection: sa.Connection, ops: Sequence[Op]) -> None:
    """Outcome: True when activated now, False when it was activated before."""
    _insert_once(ops, ActivationRecord,
                 lambda records: store.insert_activations(connection, records), lambda _: False)


def _insert_once(ops: Sequence[Op], kind: type[DecisionRecord] | type[ActivationRecord],
                 insert: Callable[[list[Any]], set[str]], refused: Callable[[str], Any]) -> None:
    """Insert the ``kind`` records of ``ops`` keyed by event id; each op's outcome is True if
    its row went in, else ``refused(event_id)`` (already logged, or twice in this batch)."""
    mine = [op for op in ops if isinstance(op.record, kind)]
    if not mine:
        return
    inserted = insert([op.record for op in mine])
    for op in mine:
        event_id = op.record.event_id  # type: ignore[union-attr]
        if event_id in inserted:
            op.outcome = True
            inserted.discard(event_id)  # the same id twice in one batch: the second is refused
        else:
            op.outcome = refused(event_id)


def _rewards(connection: sa.Connection, ops: Sequence[Op], now: datetime,
             configs: Mapping[str, ExperimentConfig], learned: _Learnings,
             plain: bool) -> None:
    mine = [op for op in ops if isinstance(op.record, RewardRecord)]
    if not mine:
        return
    records: list[RewardRecord] = [op.record for op in mine]  # type: ignore[misc]
    # What the log holds for these events. A ``plain`` try skips this read: a new reward takes
    # its open window or misses it, and only the missed are read (below). A retry that does
    # take a window (one opened since its first try was stored: a deferred decision activated
    # meanwhile) is refused by the rewards' unique key, and the batch runs again, not plain.
    existing = (store.ExistingRewards() if plain
                else store.existing_rewards(connection, [r.event_id for r in records]))
    retry = _retries(records, existing.keys)
    taken: set[str] = set()
    held: set[str] = set()
    missed: set[str] = set()
    for experiment in sorted({r.experiment for r in records}):
        since = now - timedelta(seconds=configs[experiment].reward_wait_seconds)
        mine_here = [(r, again) for r, again in zip(records, retry, strict=True)
                     if r.experiment == experiment and not again]
        firsts = [r.event_id for r, _ in mine_here
                  if r.aggregation == "first" and r.event_id not in existing.learned]
        sums = [r.event_id for r, _ in mine_here if r.aggregation != "first"]
        if firsts:
            got = store.take_windows(connection, firsts, since)
            taken |= got
            missed.update(e for e in firsts if e not in got)
        if sums:
            held |= store.hold_windows(connection, sums, since)
    learned_events = set(existing.learned)
    if missed:
        # A window that was open when ``existing`` was read may have been taken meanwhile by
        # another process's reward (PostgreSQL: this DELETE waited for its row lock until that
        # transaction committed). That reward is committed now: read again, so this one is a
        # duplicate (ALREADY_EXISTS), not a late reward.
        reread = store.existing_rewards(connection, sorted(missed))
        learned_events |= reread.learned
        if plain:
            retry = _retries(records, reread.keys)
    judgements: list[Judgement] = []
    for record, again in zip(records, retry, strict=True):
        took = record.aggregation == "first" and record.event_id in taken
        if took:
            taken.discard(record.event_id)  # a second reward of the event in this batch is late
        judgement = judge(aggregation=record.aggregation, retry=again,
                          already_learned=record.event_id in learned_events, took_window=took,
                          window_open=record.event_id in held)
        if judgement.counted:
            learned_events.add(record.event_id)
        judgements.append(judgement)
    stored = [(r, j.counted) for r, j in zip(records, judgements, strict=True)
              if j.verdict is not Verdict.RETRY]
    inserted = store.insert_rewards(connection, stored, plain=plain)
    for op, record, judgement in zip(mine, records, judgements, strict=True):
        op.outcome = judgement
        if judgement.verdict is Verdict.RETRY:
            continue
        key = record.dedupe_key
        if key is not None and (record.event_id, key) not in inserted:
            raise Raced(f"reward {key} of {record.event_id} was turned away by the log")
        if judgement.learn_now:
            learned.add(Learning(experiment=record.experiment, event_id=record.event_id,
                                 value=record.value, learned_at=record.received_at), op.source)


def _retries(records: Sequence[RewardRecord], stored: set[tuple[str, str]]) -> list[bool]:
    """Whether each reward is a retry: its ``(event_id, dedupe_key)`` is in ``stored`` or
    belongs to an earlier reward of the batch."""
    keys = set(stored)
    retry = []
    for record in records:
        key = record.dedupe_key
        retry.append(key is not None and (record.event_id, key) in keys)
        if key is not None:
            keys.add((record.event_id, key))
    return retry


def _closes(connection: sa.Connection, ops: Sequence[Op], now: datetime,
            configs: Mapping[str, ExperimentConfig], learned: _Learnings) -> None:
    mine = [op for op in ops if isinstance(op.record, CloseDue)]
    if not mine:
        return
    limit = sum(op.record.limit for op in mine if isinstance(op.record, CloseDue))
    closed = 0
    for name, config in sorted(configs.items()):
        if closed >= limit:
            break
        since = now - timedelta(seconds=config.reward_wait_seconds)
        due = store.due_windows(connection, name, since, limit - closed)
        sums = (store.counted_sums(connection, due) if config.reward_aggregation == "sum"
                else {})
        variants = store.decision_variants(connection, due) if due else {}
        for event_id in due:
            learned.add(Learning(experiment=name, event_id=event_id,
                                 value=sums.get(event_id, config.default_reward),
                                 learned_at=now), None, variant=variants.get(event_id, ""))
        closed += len(due)
    for index, op in enumerate(mine):
        op.outcome = closed if index == 0 else 0


def _erasures(connection: sa.Connection, ops: Sequence[Op], markers: _Learnings) -> None:
    mine = [op for op in ops if isinstance(op.record, Erase)]
    if not mine:
        return
    # First: a snapshot writer checks for markers under a share of this lock, so none can
    # store models that still hold what is deleted here (see store.lock_learning_order).
    store.lock_learning_order(connection)
    logged_now = {op.record.event_id for op in ops
                  if isinstance(op.record, DecisionRecord) and op.outcome is True}
    for op in mine:
        record = op.record
        assert isinstance(record, Erase)
        stored = store.find_erasure(connection, record.request_id)
        if stored is not None:
            op.outcome = (_erased(stored, repeated=True)
                          if stored["fingerprint"] == record.fingerprint else
                          Reused(f"request_id {record.request_id!r} was used for another "
                                 "erasure; give this one a new request_id"))
            continue
        found = [event_id for event_id, _ in store.find_unit_decisions(connection, record.units)
                 if event_id not in logged_now]
        deleted = store.delete_events(connection, found)
        for experiment, earliest in sorted(deleted.erased_before.items()):
            store.drop_snapshots_from(connection, experiment, earliest)
        row = {"request_id": record.request_id, "experiment": record.experiment,
               "fingerprint": record.fingerprint, "decisions": deleted.decisions,
               "rewards": deleted.rewards, "activations": deleted.activations,
               "learned_events": deleted.learned_events,
               "rebuilt": sorted(deleted.erased_before), "created_at": record.at,
               "principal": record.principal}
        store.insert_rows(connection, erasures, [row])
        for experiment in sorted(deleted.experiments):
            markers.add(Learning(experiment=experiment, event_id=None, value=0.0,
                                 learned_at=record.at,
                                 erased_before=deleted.erased_before.get(experiment, OWN_SEQ)),
                        None)
        op.outcome = _erased(row, repeated=False)


def _erased(row: Mapping[str, Any], *, repeated: bool) -> Erased:
    return Erased(request_id=row["request_id"], decisions=int(row["decisions"]),
                  rewards=int(row["rewards"]), activations=int(row["activations"]),
                  learned_events=int(row["learned_events"]), rebuilt=tuple(row["rebuilt"]),
                  repeated=repeated)
