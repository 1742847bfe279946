"""Erasure with exact unlearning, and retention: the audit table, the markers, snapshot cuts.

Revision ID: 0005
Revises: 0004

- ``erasures``: one audit row per ``EraseUnit`` request (its ``request_id`` is unique: a
  repeated request returns the stored counts), with the principal who asked.
- ``learnings.erased_before`` (NULL allowed): an erasure's marker in the learning order; every
  process rebuilds the experiment's models there.
- ``snapshots.applied`` (NULL allowed): the fold position a snapshot was taken at (its policy
  and statistics reflect every seq up to it). Older snapshots keep NULL.
- ``ix_decisions_unit_hash``: erasure finds a unit's decisions without a scan. On a large
  PostgreSQL log, build it first with ``CREATE INDEX CONCURRENTLY ix_decisions_unit_hash ON
  decisions (unit_hash)``: this revision then finds it and skips the (locking) build.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column("rewards", sa.BigInteger(), nullable=False),
        sa.Column("activations", sa.BigInteger(), nullable=False),
        sa.Column("learned_events", sa.BigInteger(), nullable=False),
        sa.Column("rebuilt", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", name="uq_erasures_request_id"),
    )
    with op.batch_alter_table("learnings") as learnings:
        learnings.add_column(sa.Column("erased_before", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("snapshots") as snapshots:
        snapshots.add_column(sa.Column("applied", sa.BigInteger(), nullable=True))
    existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("decisions")}
    if "ix_decisions_unit_hash" not in existing:
        op.create_index("ix_decisions_unit_hash", "decisions", ["unit_hash"])


def downgrade() -> None:
    op.drop_index("ix_decisions_unit_hash", table_name="decisions")
    with op.batch_alter_table("snapshots") as snapshots:
        snapshots.drop_column("applied")
    op.execute("DELETE FROM learnings WHERE erased_before IS NOT NULL")
    with op.batch_alter_table("learnings") as learnings:
        learnings.drop_column("erased_before")
    op.drop_table("erasures")
