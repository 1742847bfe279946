"""Reads of the decision log used by the join, recovery and reports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from server.storage.schema import decisions, learnings, rewards, snapshots


def find_decision(engine: sa.Engine, event_id: str) -> dict[str, Any] | None:
    """The logged decision with ``event_id`` plus ``reward_count``, or None."""
    reward_count = (sa.select(sa.func.count()).select_from(rewards)
                    .where(rewards.c.event_id == event_id).scalar_subquery())
    query = sa.select(decisions, reward_count.label("reward_count")).where(
        decisions.c.event_id == event_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return dict(row) if row is not None else None


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
