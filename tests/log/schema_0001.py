"""Frozen: the decision log's tables as every release before migrations created them.

A copy of log/schema.py at 9b028be (what ``metadata.create_all`` made, with no
``alembic_version`` table): the tests build "a database written by an older release" from it.
Never edit it; revision 0001 must produce exactly these tables (tests/log/test_migrations.py).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("variant", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(160), nullable=False),
    sa.Column("unit_hash", sa.String(64), nullable=True),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("distribution", sa.JSON, nullable=False),
    sa.Column("chosen_index", sa.Integer, nullable=False),
    sa.Column("chosen_action", sa.String(256), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("shadow", sa.JSON, nullable=False, default=dict),
    sa.Column("deferred", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("event_id", name="uq_decisions_event_id"),
    sa.CheckConstraint("probability > 0 AND probability <= 1", name="ck_decisions_probability"),
    sa.Index("ix_decisions_experiment_created", "experiment", "created_at"),
)

rewards = sa.Table(
    "rewards",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("event_id", sa.String(128), sa.ForeignKey("decisions.event_id",
              name="fk_rewards_event_id"), nullable=False),
    sa.Column("reward_id", sa.String(128), nullable=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("learned", sa.Boolean, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_rewards_event_id", "event_id"),
)

activations = sa.Table(
    "activations",
    metadata,
    sa.Column("event_id", sa.String(128), sa.ForeignKey("decisions.event_id",
              name="fk_activations_event_id"), primary_key=True),
    sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
)

learnings = sa.Table(
    "learnings",
    metadata,
    # Assigned by the (single) learner in the order it learns; gaps are harmless.
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(128), sa.ForeignKey("decisions.event_id",
              name="fk_learnings_event_id"), nullable=False),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("event_id", name="uq_learnings_event_id"),
    sa.Index("ix_learnings_experiment_seq", "experiment", "seq"),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("variant", sa.String(128), nullable=False),
    sa.Column("policy", sa.String(64), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_snapshots_variant_position", "experiment", "variant", "position"),
)

experiment_states = sa.Table(
    "experiment_states",
    metadata,
    sa.Column("experiment", sa.String(128), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("control", sa.String(128), nullable=False),
    # [{"name", "traffic", "shadow"}] for every variant
    sa.Column("variants", sa.JSON, nullable=False),
    sa.Column("bucket_table", sa.JSON, nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("from_variant", sa.String(128), nullable=False),
    sa.Column("to_variant", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("automatic", sa.Boolean, nullable=False),
    sa.Column("state_version", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_promotions_experiment", "experiment", "id"),
)
