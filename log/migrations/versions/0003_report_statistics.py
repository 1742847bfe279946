"""Report statistics in snapshots: the live report reads accumulators, not the whole log.

Revision ID: 0003
Revises: 0002

- ``snapshots.stats`` (JSON, NULL allowed): a variant's report accumulators (server/stats.py)
  at the fold position they reflect. Snapshots written before this revision keep NULL; the
  first start after it rebuilds those experiments' accumulators from the log once, and the
  snapshots it writes from then on carry them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as snapshots:
        snapshots.add_column(sa.Column("stats", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as snapshots:
        snapshots.drop_column("stats")
