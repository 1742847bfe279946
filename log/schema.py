"""The decision log's tables (SQLAlchemy 2.0 Core). Timestamps are UTC, made in Python.

- ``decisions``: one row per Choose — what was offered, the full distribution, what was drawn.
  ``context`` is ``[{"name", "numbers", "categories"}]``; ``actions`` is
  ``[{"id", "features": [namespace, ...]}]``; ``distribution[k]`` is the probability of
  ``actions[k]``; ``shadow`` maps a shadow variant's name to its distribution.
- ``rewards``: every reward received, learned or not (late or repeated ones are kept for
  offline evaluation). ``dedupe_key`` makes a retry a constraint the database enforces:
  ``"id:" + reward_id`` when the caller gave one, ``"value:" + repr(value)`` under ``first``
  aggregation without one, NULL (never a duplicate) otherwise.
- ``activations``: when a deferred decision was activated (its reward window starts then);
  a deferred decision without a row here is never learned.
- ``windows``: the open reward windows, one row per decision whose window has opened (at the
  decision — the trigger ``tr_decisions_open_window`` inserts it with the decision — or at its
  activation) and not closed: the reward join's state lives here, not in a process. A
  ``first`` reward takes (deletes) the row to be learned; ``sum`` rewards count while it
  exists; the coordinator deletes due rows and learns their default or sum.
- ``learnings``: the fold, in the one learning order. Each row is one learned event: an
  (event, reward value) the experiment's policies learned, or (``state_version`` set, no event)
  the point where an experiment's set-up changed. Replaying it from a snapshot's ``position``
  rebuilds the models, roles included.
- ``learning_order``: one row, the last ``seq`` handed out. A writer takes the next seqs with an
  ``UPDATE ... RETURNING`` whose row lock it holds until it commits, so commit order is seq
  order and a reader that sees seq ``n`` has every seq below it.
- ``snapshots``: a cache of the fold — a variant's serialized policy after learning ``position``,
  and its report statistics (``stats``, the sums behind the live report's figures).
- ``experiment_states``: append-only history of each experiment's live set-up (which variants
  serve and with what weight, which are shadows, the champion, and the bucket → variant table
  run-length encoded as ``[[variant, count], ...]``); the highest ``version`` is the current one.
  The TOML seeds version 1; ``SetTraffic`` and promotions add versions. ``principal`` is who
  made the change (a token's name).
- ``promotions``: the audit trail of every promotion, with the report figures behind it and
  the ``principal`` who asked for it.
- ``erasures``: the audit trail of every erasure of a unit (``EraseUnit``): its request id
  (idempotency), scope, counts and principal — never the unit. The erasure itself deletes the
  unit's decisions and everything joined to them, and adds one ``learnings`` row
  (``erased_before``) per experiment whose models are rebuilt.
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
    sa.Index("ix_decisions_unit_hash", "unit_hash"),  # erasure finds a unit's decisions
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
    sa.Column("dedupe_key", sa.String(160), nullable=True),
    sa.Index("ix_rewards_event_id", "event_id"),
    sa.Index("uq_rewards_event_dedupe", "event_id", "dedupe_key", unique=True),
)

windows = sa.Table(
    "windows",
    metadata,
    sa.Column("event_id", sa.String(128), sa.ForeignKey("decisions.event_id",
              name="fk_windows_event_id"), primary_key=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    # When the window opened; it closes ``reward_wait_seconds`` later (the experiment's
    # setting at the time it is checked, as configured).
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_windows_experiment_opened", "experiment", "opened_at"),
)

activations = sa.Table(
    "activations",
    metadata,
    sa.Column("event_id", sa.String(128), sa.ForeignKey("decisions.event_id",
              name="fk_activations_event_id"), primary_key=True),
    sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
)

# A decision that is not deferred opens its window in the statement that inserts it (revision
# 0006): the database inserts the ``windows`` row.
_OPEN_WINDOW = ("INSERT INTO windows (event_id, experiment, opened_at) "
                "VALUES (NEW.event_id, NEW.experiment, NEW.created_at)")
for _ddl in (
    sa.DDL(f"CREATE TRIGGER tr_decisions_open_window AFTER INSERT ON decisions "  # type: ignore[no-untyped-call]
           f"WHEN NOT NEW.deferred BEGIN {_OPEN_WINDOW}; END").execute_if(dialect="sqlite"),
    sa.DDL("CREATE FUNCTION arbiter_open_window() RETURNS trigger LANGUAGE plpgsql AS "  # type: ignore[no-untyped-call]
           f"$$ BEGIN {_OPEN_WINDOW}; RETURN NULL; END $$").execute_if(dialect="postgresql"),
    sa.DDL("CREATE TRIGGER tr_decisions_open_window AFTER INSERT ON decisions "  # type: ignore[no-untyped-call]
           "FOR EACH ROW WHEN (NOT NEW.deferred) EXECUTE FUNCTION arbiter_open_window()"
           ).execute_if(dialect="postgresql"),
):
    sa.event.listen(windows, "after_create", _ddl)

learnings = sa.Table(
    "learnings",
    metadata,
    # Taken from ``learning_order`` in the committing transaction: commit order = seq order.
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(128), sa.ForeignKey("decisions.event_id",
              name="fk_learnings_event_id"), nullable=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state_version", sa.BigInteger, nullable=True),
    # An erasure's marker (no event, no state_version): the experiment's models are rebuilt at
    # this seq from the log without the erased events; the earliest of them had this seq.
    sa.Column("erased_before", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("event_id", name="uq_learnings_event_id"),
    sa.Index("ix_learnings_experiment_seq", "experiment", "seq"),
)

learning_order = sa.Table(
    "learning_order",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)
# Its one row exists from the start (the migration that adds the table inserts it too).
sa.event.listen(learning_order, "after_create",
                sa.DDL("INSERT INTO learning_order (id, last_seq) VALUES (1, 0)"))  # type: ignore[no-untyped-call]

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("variant", sa.String(128), nullable=False),
    sa.Column("policy", sa.String(64), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updates", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The variant's live-report accumulators (server/stats.py) at fold position
    # ``stats["position"]`` (>= ``position``); NULL in snapshots written before revision 0003.
    sa.Column("stats", sa.JSON, nullable=True),
    # The fold position the row was taken at: its policy and its stats reflect every learned
    # event with seq <= applied. NULL in snapshots written before revision 0005.
    sa.Column("applied", sa.BigInteger, nullable=True),
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
    # Who made the change: the caller's token name (`--auth-tokens`); NULL for the server's own
    # changes (the TOML's seeding), an open server's callers, and rows before revision 0004.
    sa.Column("principal", sa.String(128), nullable=True),
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
    # Who promoted: the caller's token name; NULL for automatic promotions, an open server's
    # callers, and rows before revision 0004.
    sa.Column("principal", sa.String(128), nullable=True),
    sa.Index("ix_promotions_experiment", "experiment", "id"),
)

erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    # The caller's idempotency key: a repeated request returns this row's counts.
    sa.Column("request_id", sa.String(128), nullable=False),
    # NULL: every experiment.
    sa.Column("experiment", sa.String(128), nullable=True),
    # HMAC of the request (unit and scope) under the server's secret: tells a retry from a
    # reuse of the request id for another unit, and names no unit.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("decisions", sa.BigInteger, nullable=False),
    sa.Column("rewards", sa.BigInteger, nullable=False),
    sa.Column("activations", sa.BigInteger, nullable=False),
    sa.Column("learned_events", sa.BigInteger, nullable=False),
    sa.Column("rebuilt", sa.JSON, nullable=False),  # the experiments whose models were rebuilt
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Who asked: the caller's token name; NULL on an open server.
    sa.Column("principal", sa.String(128), nullable=True),
    sa.UniqueConstraint("request_id", name="uq_erasures_request_id"),
)
