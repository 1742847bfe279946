"""Reading the log: the joined learned decisions, in time order, in chunks, within a window.

Each test runs on SQLite and on a real PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from arbiter.evaluation.logdata import LogQuery, count_log, parse_time, read_log
from arbiter.log.engine import create_engine
from arbiter.log.migrate import upgrade
from arbiter.log.schema import activations, decisions, learnings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _decision(event: str, at: datetime, *, deferred: bool = False, experiment: str = "exp") -> dict[str, Any]:
    return {
        "event_id": event, "experiment": experiment, "variant": "v", "model_version": "v@1",
        "unit_hash": "hash-" + event,
        "context": [{"name": "user", "numbers": {"age": 3.0}, "categories": {}}],
        "actions": [{"id": "a", "features": []}, {"id": "b", "features": []}],
        "distribution": [0.25, 0.75], "chosen_index": 1, "chosen_action": "b", "probability": 0.75,
        "shadow": {}, "deferred": deferred, "created_at": at,
    }


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """Seven decisions of ``exp``: four learned (two share a timestamp), one in its window, one
    deferred and never activated (with a learnings row it should never have), one activated
    deferred; and a learned decision of another experiment."""
    engine = create_engine(db_url)
    upgrade(engine)
    rows = [
        _decision("e1", T0), _decision("e2", T0 + timedelta(seconds=1)),
        _decision("e3", T0 + timedelta(seconds=1)), _decision("e0", T0 - timedelta(seconds=5)),
        _decision("open", T0 + timedelta(seconds=2)),
        _decision("hidden", T0 + timedelta(seconds=3), deferred=True),
        _decision("shown", T0 + timedelta(seconds=4), deferred=True),
        _decision("other", T0, experiment="elsewhere"),
    ]
    learned = ["e1", "e2", "e3", "e0", "hidden", "shown", "other"]
    with engine.begin() as connection:
        connection.execute(sa.insert(decisions), rows)
        connection.execute(sa.insert(activations), [{"event_id": "shown", "activated_at": T0}])
        connection.execute(sa.insert(learnings), [
            {"seq": i + 1, "event_id": e, "experiment": "elsewhere" if e == "other" else "exp",
             "value": float(i), "learned_at": T0} for i, e in enumerate(learned)])
    yield engine
    engine.dispose()


def test_reads_learned_shown_decisions_in_time_order_across_chunks(engine: sa.Engine) -> None:
    query = LogQuery(experiment="exp")

    rows = list(read_log(engine, query, chunk=2))

    assert [r.event_id for r in rows] == ["e0", "e1", "e2", "e3", "shown"]
    assert count_log(engine, query) == 5
    assert [r.reward for r in rows] == [3.0, 0.0, 1.0, 2.0, 5.0]
    first = rows[0]
    assert first.created_at == T0 - timedelta(seconds=5) and first.created_at.tzinfo is UTC
    assert first.distribution == [0.25, 0.75] and first.actions[1]["id"] == "b"
    assert json.dumps(first.context) == '[{"name": "user", "numbers": {"age": 3.0}, "categories": {}}]'


def test_since_until_bound_the_decision_time(engine: sa.Engine) -> None:
    query = LogQuery(experiment="exp", since=T0, until=T0 + timedelta(seconds=4))

    assert [r.event_id for r in read_log(engine, query)] == ["e1", "e2", "e3"]


def test_every_decision_when_not_learned_only(engine: sa.Engine) -> None:

    rows = {r.event_id: r for r in read_log(engine, LogQuery(experiment="exp", learned_only=False), chunk=3)}

    assert set(rows) == {"e0", "e1", "e2", "e3", "open", "hidden", "shown"}
    assert rows["open"].reward is None and rows["open"].learned_at is None
    assert rows["shown"].activated_at == T0 and rows["hidden"].activated_at is None


def test_parse_time_reads_iso_8601_as_utc() -> None:
    assert parse_time("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_time("2026-03-01T13:00:00+01:00") == T0
