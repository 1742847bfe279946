"""Retention (an experiment's ``retention_days``), through real servers on SQLite and PostgreSQL.

The coordinator deletes what a snapshot covers: the models keep what they learned (a restart
restores them from the cut), offline data covers the retained window, a from-scratch replay no
longer reproduces the models — and an erasure after retention still rebuilds exactly.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from arbiter.client import DecisionClient
from arbiter.log.schema import decisions, learnings, snapshots
from arbiter.server.app import App
from arbiter.v1 import experiments_pb2 as pb
from arbiter.v1 import experiments_pb2_grpc
from tests.postgres import fresh_database
from tests.replay import State, replayed_states

CONFIG_TOML = """
[experiments.homepage]
control = "holdout"
retention_days = 1
[[experiments.homepage.variants]]
name = "holdout"
policy = "uniform"
traffic = 1.0
[[experiments.homepage.variants]]
name = "linucb"
policy = "linucb"
shadow = true
[[experiments.homepage.variants]]
name = "lints"
policy = "lints"
shadow = true

[experiments.checkout]
policy = "lints"
"""
CONFIG = tomllib.loads(CONFIG_TOML)
TARGET = "erased-after-retention"
StartServer = Callable[..., App]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(CONFIG_TOML)
    return path


@pytest.fixture
def second_db(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


def feed(client: DecisionClient, start: int, stop: int, *, with_target: bool = True,
         deferred_every: int = 0) -> int:
    """Choose + Reward for events ``start..stop-1`` (fixed ids); the target from event 130 on.
    Every ``deferred_every``-th decision is deferred and never activated. Returns decisions."""
    made = 0
    for i in range(start, stop):
        unit = TARGET if i >= 130 and i % 4 == 0 else f"u{i % 7}"
        if unit == TARGET and not with_target:
            continue
        experiment = "checkout" if i % 5 == 0 else "homepage"
        deferred = bool(deferred_every) and experiment == "homepage" and i % deferred_every == 1
        choice = client.choose(experiment, context={"user": {"x": (i % 9) / 9,
                                                             "city": f"c{i % 3}"}},
                               actions=["a", "b", "c"], unit_id=unit, event_id=f"r{i:04d}",
                               deferred=deferred)
        made += 1
        if not deferred:
            client.reward(choice.event_id, float((i * 5 + ord(choice.action_id)) % 3 == 0))
    return made


def live_states(app: App) -> dict[tuple[str, str], State]:
    with app.fold.lock:
        return {(e.name, v.name): v.state() for e in app.experiments.values()
                for v in e.variants.values()}


def count(app: App, table: sa.Table, experiment: str) -> int:
    column = table.c.experiment
    query = sa.select(sa.func.count()).select_from(table).where(column == experiment)
    if table is learnings:
        query = query.where(learnings.c.event_id.is_not(None))
    with app.engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def test_retention_deletes_what_a_snapshot_covers_and_the_models_keep_what_they_learned(
        start_server: StartServer, db_url: str, second_db: str, config_file: Path) -> None:
    clock = FakeClock()
    app = start_server(CONFIG, clock=clock, tick_seconds=3600)
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        feed(client, 0, 100, deferred_every=10)
        first = app.retention.run()
        assert first["homepage"].rows == 0 and first["homepage"].cut is None  # no cut yet
        assert first["homepage"].new_cut == app.fold.applied
        assert "checkout" not in first  # no retention_days: kept for ever

        clock.now += timedelta(days=2)
        feed(client, 100, 160)
    old_homepage = count(app, decisions, "homepage")
    old_checkout = count(app, decisions, "checkout")
    kept = live_states(app)

    second = app.retention.run()["homepage"]

    assert second.cut == first["homepage"].new_cut
    day0 = sum(1 for i in range(100) if i % 5)  # homepage decisions of day 0
    assert second.decisions == day0  # learned up to the cut, and deferred never activated
    assert second.learned_events == day0 - sum(1 for i in range(100) if i % 5 and i % 10 == 1)
    assert count(app, decisions, "homepage") == old_homepage - day0
    assert count(app, learnings, "homepage") == old_homepage - day0
    assert count(app, decisions, "checkout") == old_checkout
    with app.engine.connect() as connection:
        left = connection.execute(sa.select(snapshots.c.applied).where(
            snapshots.c.experiment == "homepage")).scalars().all()
    assert left and min(left) == second.cut  # older snapshots dropped, the cut kept
    assert live_states(app) == kept  # the models keep what they learned

    # a restart restores from the cut; a replay from scratch no longer can
    app.stop(grace=1)
    app = start_server(CONFIG, clock=clock, tick_seconds=3600)
    assert live_states(app) == kept
    replayed = replayed_states(db_url, config_file)
    assert replayed[("homepage", "linucb")] != kept[("homepage", "linucb")]
    assert replayed[("checkout", "default")] == kept[("checkout", "default")]

    # an erasure after retention still rebuilds exactly: from the cut, not from scratch
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        feed(client, 160, 220)
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        answer = experiments_pb2_grpc.ExperimentServiceStub(channel).EraseUnit(
            pb.EraseUnitRequest(unit_id=TARGET, request_id="after-retention"), timeout=60)
    assert "homepage" in answer.rebuilt_experiments
    other = start_server(CONFIG, db=second_db, clock=FakeClock(), tick_seconds=3600)
    with DecisionClient(f"127.0.0.1:{other.port}") as client:
        feed(client, 0, 100, with_target=False, deferred_every=10)
        feed(client, 100, 220, with_target=False)
    never = live_states(other)
    other.stop(grace=1)
    for key, (state, _, updates) in live_states(app).items():
        if key[0] == "homepage":
            assert (state, updates) == (never[key][0], never[key][2]), key


def test_the_coordinator_applies_retention_on_its_own(start_server: StartServer) -> None:
    config = {"experiments": {"homepage": {"policy": "linucb", "retention_days": 2e-5}}}  # 1.7 s
    app = start_server(config, tick_seconds=0.1, retention_seconds=0.3)
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        for i in range(20):
            choice = client.choose("homepage", context={"user": {"x": i / 20}},
                                   actions=["a", "b"])
            client.reward(choice.event_id, 1.0)
    learned = live_states(app)
    assert count(app, decisions, "homepage") == 20
    deadline = time.monotonic() + 20
    while count(app, decisions, "homepage") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count(app, decisions, "homepage") == 0
    assert live_states(app) == learned
