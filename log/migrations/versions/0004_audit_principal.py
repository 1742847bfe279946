"""Audit rows name their principal: who changed an experiment's set-up or promoted a variant.

Revision ID: 0004
Revises: 0003

- ``experiment_states.principal`` and ``promotions.principal`` (VARCHAR(128), NULL allowed):
  the name of the caller's token (``arbiter serve --auth-tokens``). Rows written before this
  revision, the server's own changes (seeding from the TOML, automatic promotions) and the
  callers of a server without tokens keep NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiment_states") as states:
        states.add_column(sa.Column("principal", sa.String(128), nullable=True))
    with op.batch_alter_table("promotions") as promotions:
        promotions.add_column(sa.Column("principal", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotions") as promotions:
        promotions.drop_column("principal")
    with op.batch_alter_table("experiment_states") as states:
        states.drop_column("principal")
