"""Reading the decision log for offline evaluation and export: streamed, in time order.

:func:`read_log` yields one :class:`LoggedRow` per decision of an experiment, ordered by
``(created_at, id)`` and fetched in chunks by keyset pagination (each chunk is one short query
``WHERE (created_at, id) > last ORDER BY created_at, id LIMIT chunk``), so memory stays bounded
by the chunk size however long the log is, and a server can keep writing meanwhile.

With ``learned_only=True`` (what ``arbiter evaluate`` and the DSJson export read) the rows are
the joined decisions: decisions ⋈ learnings on ``event_id``. A ``learnings`` row holds the
reward the server actually learned — the first reward in the window, the window's sum, or the
experiment's ``default_reward`` when the window closed without one — so decisions still inside
their window are left out, and a deferred decision that was never activated (never shown) is
excluded. The set is pinned when reading starts (``learnings.seq`` ≤ the highest seq then), so
two reads of a live log see the same rows. With ``learned_only=False`` (the Parquet export)
every decision is returned, its ``reward`` None until learned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple, cast, overload

import sqlalchemy as sa

from arbiter.log.schema import activations, decisions, learnings

__all__ = ["LogQuery", "LoggedRow", "Round", "count_log", "logged_experiments", "parse_time", "read_log",
           "read_rounds"]

DEFAULT_CHUNK = 5000
"""Decisions fetched per query (20,000 a query measured no faster and 30 MB larger at 100k rows)."""


@dataclass(frozen=True, slots=True)
class LoggedRow:
    """One logged decision. ``context``/``actions``/``shadow`` are the log's JSON, decoded.

    ``distribution[k]`` is the logging policy's probability of ``actions[k]`` (length K);
    ``reward`` is the learned value (None if not learned yet; only with ``learned_only=False``).
    """

    event_id: str
    experiment: str
    variant: str
    model_version: str
    unit_hash: str | None
    context: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    distribution: list[float]
    chosen_index: int
    chosen_action: str
    probability: float
    shadow: dict[str, list[float]]
    deferred: bool
    created_at: datetime
    activated_at: datetime | None
    reward: float | None
    learned_at: datetime | None


class Round(NamedTuple):
    """What the replay needs of one learned decision, the JSON columns as text (undecoded: the
    text is the replay's cache key, and a context seen before is not decoded again)."""

    context: str
    actions: str
    distribution: str
    chosen_index: int
    probability: float
    reward: float
    variant: str


@dataclass(frozen=True, kw_only=True)
class LogQuery:
    """Which decisions to read: one experiment, optionally ``since <= created_at < until``."""

    experiment: str
    since: datetime | None = None
    until: datetime | None = None
    learned_only: bool = True


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-01-31`` or ``2026-01-31T12:00:00+01:00``) as aware UTC.

    A time without an offset is taken as UTC, like every time in the log.
    """
    moment = datetime.fromisoformat(text)
    return _utc(moment)


def count_log(engine: sa.Engine, query: LogQuery) -> int:
    """How many rows :func:`read_log` would yield now (for a progress bar)."""
    with engine.connect() as connection:
        cutoff = _cutoff(connection)
        statement = sa.select(sa.func.count()).select_from(_joined(query, cutoff).subquery())
        return int(connection.execute(statement).scalar() or 0)


def logged_experiments(engine: sa.Engine) -> list[str]:
    """The experiments with at least one decision in the log, sorted by name."""
    with engine.connect() as connection:
        statement = sa.select(decisions.c.experiment).distinct().order_by(decisions.c.experiment)
        return list(connection.execute(statement).scalars())


def read_log(engine: sa.Engine, query: LogQuery, *, chunk: int = DEFAULT_CHUNK) -> Iterator[LoggedRow]:
    """The experiment's decisions in ``(created_at, id)`` order, ``chunk`` per query."""
    for rows in _chunks(engine, query, chunk):
        for row in rows:
            yield _logged_row(row)


def read_rounds(engine: sa.Engine, query: LogQuery, *, chunk: int = DEFAULT_CHUNK) -> Iterator[Round]:
    """The learned decisions as rounds of the replay, in the order of :func:`read_log`."""
    if not query.learned_only:
        raise ValueError("the replay reads learned decisions only (learned_only=True)")
    for rows in _chunks(engine, query, chunk, _ROUND_COLUMNS):
        for context, actions, distribution, chosen_index, probability, reward, variant, _, _ in cast(
                "Sequence[tuple[Any, ...]]", rows):
            yield Round(_text(context), _text(actions), _text(distribution), chosen_index, probability,
                        reward, variant)


def _chunks(engine: sa.Engine, query: LogQuery, chunk: int,
            columns: Sequence[sa.ColumnElement[Any]] | None = None) -> Iterator[Sequence[sa.Row[Any]]]:
    """The joined rows, ``chunk`` per query (keyset pagination on ``(created_at, id)``); only
    ``columns`` (ending with ``created_at`` and ``id``) if given, else every column."""
    with engine.connect() as connection:
        cutoff = _cutoff(connection)
    base = _joined(query, cutoff, columns).order_by(decisions.c.created_at, decisions.c.id).limit(chunk)
    last: tuple[datetime, int] | None = None
    while True:
        statement = base
        if last is not None:
            # (created_at, id) > last, spelled so that the index range starts at last's time.
            later = sa.or_(decisions.c.created_at > last[0], decisions.c.id > last[1])
            statement = statement.where(decisions.c.created_at >= last[0], later)
        with engine.connect() as connection:
            rows = connection.execute(statement).all()
        yield rows
        if len(rows) < chunk:
            return
        last = (_time(rows[-1].created_at), rows[-1].id)


def _cutoff(connection: sa.Connection) -> int:
    return int(connection.execute(sa.select(sa.func.max(learnings.c.seq))).scalar() or 0)


def _raw(column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[Any]:
    """``column`` without SQLAlchemy's per-value JSON/datetime processing (~60 µs a row on
    SQLite): :func:`_logged_row` decodes the raw values itself, caching repeated JSON."""
    return sa.type_coerce(column, sa.Text).label(name)


_ROUND_COLUMNS = (
    *(_raw(decisions.c[name], name) for name in ("context", "actions", "distribution")),
    decisions.c.chosen_index, decisions.c.probability, learnings.c.value.label("reward"), decisions.c.variant,
    _raw(decisions.c.created_at, "created_at"), decisions.c.id,
)
"""What :func:`read_rounds` selects: :class:`Round`'s fields in order, then the pagination keys
(half the reading time of every column at 100k rounds)."""


def _joined(query: LogQuery, cutoff: int,
            columns: Sequence[sa.ColumnElement[Any]] | None = None) -> sa.Select[Any]:
    if columns is None:
        raw = {"context", "actions", "distribution", "shadow", "created_at"}
        columns = (*(_raw(c, c.name) if c.name in raw else c for c in decisions.c),
                   _raw(activations.c.activated_at, "activated_at"), learnings.c.value.label("reward"),
                   _raw(learnings.c.learned_at, "learned_at"))
    shown = sa.or_(decisions.c.deferred.is_(False), activations.c.activated_at.is_not(None))
    statement = sa.select(*columns).outerjoin(
        activations, activations.c.event_id == decisions.c.event_id)
    if query.learned_only:
        statement = statement.join(learnings, learnings.c.event_id == decisions.c.event_id).where(
            shown, learnings.c.seq <= cutoff)
    else:
        statement = statement.outerjoin(learnings, learnings.c.event_id == decisions.c.event_id)
    statement = statement.where(decisions.c.experiment == query.experiment)
    if query.since is not None:
        statement = statement.where(decisions.c.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(decisions.c.created_at < query.until)
    return statement


def _logged_row(row: sa.Row[Any]) -> LoggedRow:
    return LoggedRow(
        event_id=row.event_id, experiment=row.experiment, variant=row.variant,
        model_version=row.model_version,
        unit_hash=row.unit_hash, context=_json(row.context), actions=_json(row.actions),
        distribution=_json(row.distribution), chosen_index=row.chosen_index,
        chosen_action=row.chosen_action, probability=row.probability,
        shadow=_json(row.shadow) or {}, deferred=bool(row.deferred),
        created_at=_time(row.created_at), activated_at=_time(row.activated_at),
        reward=row.reward, learned_at=_time(row.learned_at),
    )


@lru_cache(maxsize=4096)
def _decoded(text: str) -> Any:
    return json.loads(text)


def _text(value: Any) -> str:
    """A JSON column as text: SQLite gives text, psycopg the decoded value (encoded again)."""
    return value if isinstance(value, str) else json.dumps(value)


def _json(value: Any) -> Any:
    """A JSON column's value: SQLite gives text (decoded here; repeated action lists and
    contexts hit the cache, so treat the result as read-only), psycopg gives it decoded."""
    return _decoded(value) if isinstance(value, str) else value


@overload
def _time(value: str | datetime) -> datetime: ...
@overload
def _time(value: None) -> None: ...
def _time(value: str | datetime | None) -> datetime | None:
    """A timestamp as aware UTC: SQLite gives naive ISO text, PostgreSQL an aware datetime."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return _utc(moment)


def _utc(moment: datetime) -> datetime:
    """Every time in the log is UTC; a naive one is taken as such."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
