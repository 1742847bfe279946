"""The decision log's schema as of the first release with migrations (log/schema.py at 9b028be).

Revision ID: 0001
Revises: (none)

Every database written before migrations existed has exactly these tables (``create_all`` made
them); :func:`arbiter.log.migrate.upgrade` recognises such a database by its tables and the
missing ``alembic_version`` table and stamps it 0001 instead of running this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    """An autoincrementing 64-bit key (INTEGER on SQLite, where only that is the rowid)."""
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                     autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "decisions",
        _id(),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(160), nullable=False),
        sa.Column("unit_hash", sa.String(64), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("distribution", sa.JSON(), nullable=False),
        sa.Column("chosen_index", sa.Integer(), nullable=False),
        sa.Column("chosen_action", sa.String(256), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("shadow", sa.JSON(), nullable=False),
        sa.Column("deferred", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_decisions_event_id"),
        sa.CheckConstraint("probability > 0 AND probability <= 1", name="ck_decisions_probability"),
    )
    op.create_index("ix_decisions_experiment_created", "decisions", ["experiment", "created_at"])

    op.create_table(
        "rewards",
        _id(),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("reward_id", sa.String(128), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("learned", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["decisions.event_id"], name="fk_rewards_event_id"),
    )
    op.create_index("ix_rewards_event_id", "rewards", ["event_id"])

    op.create_table(
        "activations",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["decisions.event_id"], name="fk_activations_event_id"),
    )

    op.create_table(
        "learnings",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["decisions.event_id"], name="fk_learnings_event_id"),
        sa.UniqueConstraint("event_id", name="uq_learnings_event_id"),
    )
    op.create_index("ix_learnings_experiment_seq", "learnings", ["experiment", "seq"])

    op.create_table(
        "snapshots",
        _id(),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_snapshots_variant_position", "snapshots", ["experiment", "variant", "position"])

    op.create_table(
        "experiment_states",
        sa.Column("experiment", sa.String(128), primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("control", sa.String(128), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("bucket_table", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "promotions",
        _id(),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("from_variant", sa.String(128), nullable=False),
        sa.Column("to_variant", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("state_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_promotions_experiment", "promotions", ["experiment", "id"])


def downgrade() -> None:
    for table in ("promotions", "experiment_states", "snapshots", "learnings", "activations",
                  "rewards", "decisions"):
        op.drop_table(table)  # their indexes go with them
