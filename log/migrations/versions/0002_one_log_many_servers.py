"""One log, many servers: the join's state and the learning order move into the database.

Revision ID: 0002
Revises: 0001

- ``windows``: the open reward windows (one row per decision whose window opened and was not
  learned yet), filled from the log: every decision without a learning whose window started
  (not deferred, or activated), opened at its decision or activation time.
- ``learning_order``: the one row that hands out seqs, starting after the highest seq logged.
- ``learnings.event_id`` may be NULL and ``learnings.state_version`` marks a set-up change in
  the order.
- ``rewards.dedupe_key`` with a unique index on (event_id, dedupe_key): retries become a
  constraint. Rows with a ``reward_id`` get ``id:<reward_id>``; older rows without one keep
  NULL (which one was a retry under ``first`` was decided then and is not re-decided).
- ``snapshots.updates``: the learned events a snapshot reflects (its model version); older
  snapshots take their position, which is what model versions counted before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "windows",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        sa.ForeignKeyConstraint(["event_id"], ["decisions.event_id"], name="fk_windows_event_id"),
    )
    op.create_index("ix_windows_experiment_opened", "windows", ["experiment", "opened_at"])
    op.execute(
        "INSERT INTO windows (event_id, experiment, opened_at) "
        "SELECT d.event_id, d.experiment, COALESCE(a.activated_at, d.created_at) "
        "FROM decisions d "
        "LEFT JOIN activations a ON a.event_id = d.event_id "
        "LEFT JOIN learnings l ON l.event_id = d.event_id "
        "WHERE l.seq IS NULL AND (d.deferred = false OR a.activated_at IS NOT NULL)")

    op.create_table(
        "learning_order",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO learning_order (id, last_seq) "
               "SELECT 1, COALESCE(MAX(seq), 0) FROM learnings")

    with op.batch_alter_table("learnings") as learnings:
        learnings.alter_column("event_id", existing_type=sa.String(128), nullable=True)
        learnings.add_column(sa.Column("state_version", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("rewards") as rewards:
        rewards.add_column(sa.Column("dedupe_key", sa.String(160), nullable=True))
    op.execute("UPDATE rewards SET dedupe_key = 'id:' || reward_id WHERE reward_id IS NOT NULL")
    op.create_index("uq_rewards_event_dedupe", "rewards", ["event_id", "dedupe_key"], unique=True)

    with op.batch_alter_table("snapshots") as snapshots:
        snapshots.add_column(sa.Column("updates", sa.BigInteger(), nullable=False,
                                       server_default="0"))
    op.execute("UPDATE snapshots SET updates = position")


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as snapshots:
        snapshots.drop_column("updates")
    op.drop_index("uq_rewards_event_dedupe", table_name="rewards")
    with op.batch_alter_table("rewards") as rewards:
        rewards.drop_column("dedupe_key")
    op.execute("DELETE FROM learnings WHERE event_id IS NULL")
    with op.batch_alter_table("learnings") as learnings:
        learnings.drop_column("state_version")
        learnings.alter_column("event_id", existing_type=sa.String(128), nullable=False)
    op.drop_table("learning_order")
    op.drop_index("ix_windows_experiment_opened", table_name="windows")
    op.drop_table("windows")
