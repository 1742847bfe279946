"""Reads of the decision log used by the join, recovery and reports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from arbiter.log.schema import activations, decisions, learnings, rewards, snapshots

_JOINED = (sa.select(decisions, activations.c.activated_at,
                     learnings.c.seq.label("learned_seq"))
           .outerjoin(activations, activations.c.event_id == decisions.c.event_id)
           .outerjoin(learnings, learnings.c.event_id == decisions.c.event_id))


def find_decision(engine: sa.Engine, event_id: str) -> dict[str, Any] | None:
    """The decision with ``event_id`` joined to its activation, learning and ``rewards`` list."""
    with engine.connect() as connection:
        row = connection.execute(_JOINED.where(decisions.c.event_id == event_id)).mappings().first()
        if row is None:
            return None
        found = dict(row)
        found["rewards"] = [dict(r) for r in connection.execute(
            sa.select(rewards.c.value, rewards.c.reward_id, rewards.c.learned)
            .where(rewards.c.event_id == event_id).order_by(rewards.c.id)).mappings()]
    return found


def unlearned_decisions(engine: sa.Engine, experiment: str) -> Iterator[dict[str, Any]]:
    """Decisions of ``experiment`` not learned yet whose window has started (not deferred, or
    activated), with their ``rewards`` — the windows to restore at start-up, in log order."""
    query = (_JOINED.where(decisions.c.experiment == experiment, learnings.c.seq.is_(None),
                           sa.or_(decisions.c.deferred.is_(False),
                                  activations.c.activated_at.is_not(None)))
             .order_by(decisions.c.id))
    with engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings()]
        by_event: dict[str, list[dict[str, Any]]] = {}
        ids = [r["event_id"] for r in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for reward in connection.execute(
                    sa.select(rewards.c.event_id, rewards.c.value, rewards.c.reward_id,
                              rewards.c.learned)
                    .where(rewards.c.event_id.in_(chunk)).order_by(rewards.c.id)).mappings():
                by_event.setdefault(reward["event_id"], []).append(dict(reward))
    for row in rows:
        row["rewards"] = by_event.get(row["event_id"], [])
        yield row


def last_seq(engine: sa.Engine) -> int:
    """The highest learning seq in the log (0 when nothing was learned yet)."""
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.max(learnings.c.seq))).scalar() or 0)


def learnings_after(engine: sa.Engine, experiment: str, position: int,
                    batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Learned events of ``experiment`` with seq > ``position`` joined to their decisions, in seq order."""
    query = (sa.select(learnings.c.seq, learnings.c.value, decisions.c.variant,
                       decisions.c.context, decisions.c.actions, decisions.c.chosen_index,
                       decisions.c.probability)
             .join(decisions, decisions.c.event_id == learnings.c.event_id)
             .where(learnings.c.experiment == experiment)
             .order_by(learnings.c.seq))
    while True:
        with engine.connect() as connection:
            rows = connection.execute(query.where(learnings.c.seq > position).limit(batch))
            chunk = [dict(row) for row in rows.mappings()]
        yield from chunk
        if len(chunk) < batch:
            return
        position = chunk[-1]["seq"]


def latest_snapshot(engine: sa.Engine, experiment: str, variant: str) -> dict[str, Any] | None:
    query = (sa.select(snapshots.c.policy, snapshots.c.position, snapshots.c.state)
             .where(snapshots.c.experiment == experiment, snapshots.c.variant == variant)
             .order_by(snapshots.c.position.desc(), snapshots.c.id.desc()).limit(1))
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return dict(row) if row is not None else None
