"""Erasure with exact unlearning (``EraseUnit``), through real servers on SQLite and PostgreSQL.

After an erasure every model is exactly the fold of the remaining log — equal to a from-scratch
replay of it, and (where the decisions do not depend on the erased unit: a uniform holdout
serves, the learning variants are shadows) equal to the models of a second database that was
fed the same traffic without the unit. Two servers on one database both rebuild. A repeated
request id changes nothing. Neither the SQLite file nor its WAL keeps the unit's context.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from arbiter.client import DecisionClient, NotFoundError
from arbiter.log.engine import create_engine
from arbiter.log.schema import activations, decisions, erasures, learnings, rewards, snapshots
from arbiter.server.app import App
from arbiter.server.assignment import pseudonym
from arbiter.server.clock import utc_now
from arbiter.server.config import load_config
from arbiter.server.experiments import Experiment
from arbiter.server.fold import Fold
from arbiter.server.stats import Stats
from arbiter.v1 import experiments_pb2 as pb
from arbiter.v1 import experiments_pb2_grpc
from tests.conftest import running_apps
from tests.postgres import fresh_database
from tests.replay import State, replayed_states

CONFIG_TOML = """
[experiments.homepage]
control = "holdout"
reward_wait_seconds = 3600
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
[[experiments.homepage.variants]]
name = "thompson"
policy = "thompson"
shadow = true
[[experiments.homepage.variants]]
name = "vw"
policy = "vw"
shadow = true

[experiments.checkout]
policy = "lints"
reward_wait_seconds = 3600
"""
CONFIG = tomllib.loads(CONFIG_TOML)
TARGET = "unit-to-erase-7c1f"
RAW_VALUES = (b"target.person@example.org", b"Zqxville-Target")  # only in the target's context
EVENTS = 200
ACTIONS = ["a", "b", "c"]
StartServer = Callable[..., App]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(CONFIG_TOML)
    return path


@pytest.fixture
def second_db(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another empty database of the same kind as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'without-the-unit.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


def unit_of(i: int) -> str:
    """The target shows up from event 50 on (after the first snapshot), every 9th event."""
    return TARGET if i >= 50 and i % 9 == 0 else f"u{i % 11}"


def context_of(unit: str, i: int) -> dict[str, dict[str, Any]]:
    if unit == TARGET:
        return {"user": {"email": "target.person@example.org", "city": "Zqxville-Target",
                         "visits": float(i % 7)}}
    return {"user": {"city": f"city{i % 3}", "visits": float(i % 5)}}


def reward_of(i: int, action: str) -> float:
    return float((i * 7 + ord(action)) % 3 == 0)


def feed(client: DecisionClient | list[DecisionClient], start: int, stop: int, *,
         with_target: bool = True,
         snapshot: Callable[[int], None] = lambda _i: None) -> dict[str, str]:
    """Events ``start..stop-1``: Choose with fixed event ids, then (mostly) Reward at once. The
    target's events include unrewarded ones (open windows) and deferred, activated ones.
    Returns the target's event ids → experiment. ``client`` may alternate between servers."""
    clients = client if isinstance(client, list) else [client]
    targets: dict[str, str] = {}
    for i in range(start, stop):
        snapshot(i)
        unit = unit_of(i)
        if unit == TARGET and not with_target:
            continue
        caller = clients[i % len(clients)]
        experiment = "checkout" if i % 4 == 0 else "homepage"
        deferred = unit == TARGET and i % 27 == 0
        choice = caller.choose(experiment, context=context_of(unit, i), actions=ACTIONS,
                               unit_id=unit, event_id=f"e{i:04d}", deferred=deferred)
        if unit == TARGET:
            targets[choice.event_id] = experiment
            if i % 5 == 0:
                continue  # its window stays open
        if deferred:
            caller.activate(choice.event_id)
        clients[(i + 1) % len(clients)].reward(choice.event_id, reward_of(i, choice.action_id))
    return targets


def erase(app: App, unit: str, experiment: str = "", request_id: str = "erase-1"
          ) -> pb.EraseUnitResponse:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        answer: pb.EraseUnitResponse = experiments_pb2_grpc.ExperimentServiceStub(
            channel).EraseUnit(pb.EraseUnitRequest(unit_id=unit, experiment=experiment,
                                                   request_id=request_id), timeout=120)
        return answer


def live_states(app: App) -> dict[tuple[str, str], State]:
    with app.fold.lock:
        return {(e.name, v.name): v.state() for e in app.experiments.values()
                for v in e.variants.values()}


def replayed_stats(db: str, config: Path) -> dict[str, Any]:
    """The report statistics of a from-scratch fold of the log."""
    engine = create_engine(db)
    try:
        experiments = {name: Experiment(c) for name, c in load_config(config).items()}
        stats = Stats.of(experiments)
        fold = Fold(engine, experiments, utc_now, stats=stats)
        fold.on_apply(stats.on_apply)
        fold.restore(use_snapshots=False)
        return {name: s.variants for name, s in stats.experiments.items()}
    finally:
        engine.dispose()


def counts(db: str) -> dict[str, int]:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as connection:
            return {table.name: int(connection.execute(
                sa.select(sa.func.count()).select_from(table)).scalar() or 0)
                for table in (decisions, rewards, activations, learnings, erasures, snapshots)}
    finally:
        engine.dispose()


def sqlite_bytes(db: str) -> bytes:
    path = Path(db.removeprefix("sqlite:///"))
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_erased_models_equal_a_replay_and_a_log_that_never_had_the_unit(
        start_server: StartServer, db_url: str, second_db: str, config_file: Path) -> None:
    app = start_server(CONFIG, tick_seconds=3600)  # snapshots only where the test takes them
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        targets = feed(client, 0, EVENTS,
                       snapshot=lambda i: app.snapshots.take() if i in (40, 120) else None)
    app.snapshots.take()  # a snapshot holding the target's events: the erasure must drop it
    if db_url.startswith("sqlite"):
        assert all(raw in sqlite_bytes(db_url) for raw in RAW_VALUES)
    before = counts(db_url)
    learned_before = live_states(app)

    answer = erase(app, TARGET)

    rewarded = [e for e in targets if int(e[1:]) % 5 != 0]
    assert answer.request_id == "erase-1" and not answer.repeated
    assert answer.decisions_deleted == len(targets)
    assert answer.rewards_deleted == len(rewarded)
    assert answer.learned_events_deleted == len(rewarded)
    assert answer.activations_deleted == sum(1 for e in rewarded if int(e[1:]) % 27 == 0) > 0
    assert sorted(answer.rebuilt_experiments) == ["checkout", "homepage"]
    after = counts(db_url)
    assert before["decisions"] - after["decisions"] == len(targets)
    assert after["erasures"] == 1
    assert app.fold.rebuilds == 2

    # every model (and the report statistics) is the fold of the remaining log
    assert live_states(app) == replayed_states(db_url, config_file)
    assert live_states(app) != learned_before
    with app.fold.lock:
        live_stats = {name: s.variants for name, s in app.stats.experiments.items()}
    assert live_stats == replayed_stats(db_url, config_file)

    # ... and equal to the models of a log that never had the unit (homepage: a uniform holdout
    # serves, so the other units' decisions do not depend on what was learned from the target)
    other = start_server(CONFIG, db=second_db, tick_seconds=3600)
    with DecisionClient(f"127.0.0.1:{other.port}") as client:
        feed(client, 0, EVENTS, with_target=False)
    never = live_states(other)
    other.stop(grace=1)
    for key, (state, _, updates) in live_states(app).items():
        if key[0] == "homepage":
            assert (state, updates) == (never[key][0], never[key][2]), key

    # the unit is gone from the log: by pseudonym, and in the SQLite file and its WAL
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(decisions).where(
            decisions.c.unit_hash.in_([pseudonym(app.secret, name, TARGET)
                                       for name in CONFIG["experiments"]]))).scalar() == 0
    if db_url.startswith("sqlite"):
        content = sqlite_bytes(db_url)
        for raw in (*RAW_VALUES, TARGET.encode()):
            assert raw not in content, raw

    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        with pytest.raises(NotFoundError):  # the cached decision is gone too
            client.reward(next(iter(targets)), 1.0)
        feed(client, EVENTS, EVENTS + 40)  # learning goes on after the rebuild
    assert live_states(app) == replayed_states(db_url, config_file)

    # a restart restores from the snapshots the erasure left, to the same models
    app.stop(grace=1)
    again = start_server(CONFIG, tick_seconds=3600)
    assert live_states(again) == replayed_states(db_url, config_file)


def test_two_servers_on_one_database_both_rebuild(db_url: str, config_file: Path) -> None:
    starter = running_apps(db_url, CONFIG)
    start = next(starter)
    try:
        first, second = start(tick_seconds=3600), start(tick_seconds=3600)
        clients = [DecisionClient(f"127.0.0.1:{app.port}") for app in (first, second)]
        targets = feed(clients, 0, 140,
                       snapshot=lambda i: first.snapshots.take() if i in (40, 100) else None)
        cached_by_second = [e for e in targets if second.loop.cache.get(e) is not None]
        assert cached_by_second

        answer = erase(first, TARGET)

        assert sorted(answer.rebuilt_experiments) == ["checkout", "homepage"]
        deadline = time.monotonic() + 30
        while second.fold.rebuilds < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.fold.rebuilds == second.fold.rebuilds == 2
        replayed = replayed_states(db_url, config_file)
        assert live_states(first) == replayed
        with second.fold.lock:
            assert live_states(second) == replayed
        with pytest.raises(NotFoundError):  # the second server's cache forgot them
            clients[1].reward(cached_by_second[0], 1.0)
        for client in clients:
            client.close()
    finally:
        for _ in starter:  # stops every app
            pass


def test_a_repeated_request_returns_the_stored_counts_and_changes_nothing(
        start_server: StartServer, db_url: str) -> None:
    app = start_server(CONFIG, tick_seconds=3600)
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        feed(client, 0, 120)
    first = erase(app, TARGET, request_id="req-7")
    settled = counts(db_url)

    again = erase(app, TARGET, request_id="req-7")

    assert again.repeated and not first.repeated
    assert (again.decisions_deleted, again.rewards_deleted, again.activations_deleted,
            again.learned_events_deleted, list(again.rebuilt_experiments)) == (
        first.decisions_deleted, first.rewards_deleted, first.activations_deleted,
        first.learned_events_deleted, list(first.rebuilt_experiments))
    assert first.decisions_deleted > 0
    assert counts(db_url) == settled
    assert app.fold.rebuilds == 2
    with pytest.raises(grpc.RpcError) as reused:  # the same id for another unit
        erase(app, "u3", request_id="req-7")
    assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert counts(db_url) == settled

    nothing = erase(app, "nobody", request_id="req-8")  # an unknown unit: audited, no marker
    assert (nothing.decisions_deleted, list(nothing.rebuilt_experiments)) == (0, [])
    assert counts(db_url)["learnings"] == settled["learnings"]


def test_an_erasure_in_one_experiment_keeps_the_units_other_decisions(
        start_server: StartServer, db_url: str, config_file: Path) -> None:
    app = start_server(CONFIG, tick_seconds=3600)
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        targets = feed(client, 0, 120)

    answer = erase(app, TARGET, experiment="checkout")

    assert list(answer.rebuilt_experiments) == ["checkout"]
    assert answer.decisions_deleted == sum(1 for x in targets.values() if x == "checkout")
    with app.engine.connect() as connection:
        left = set(connection.execute(sa.select(decisions.c.event_id).where(
            decisions.c.event_id.in_(list(targets)))).scalars())
    assert left == {e for e, x in targets.items() if x == "homepage"}
    assert live_states(app) == replayed_states(db_url, config_file)
    with pytest.raises(grpc.RpcError) as unknown:
        erase(app, TARGET, experiment="nope", request_id="erase-2")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as empty:
        erase(app, "", request_id="erase-3")
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_erasure_needs_the_admin_role_and_stays_within_the_tokens_experiments(
        start_server: StartServer, db_url: str, tmp_path: Path) -> None:
    from arbiter.server.auth import sha256_hex

    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[tokens]]\nname = "service"\nsha256 = "{sha256_hex("decide-token")}"\n'
        'roles = ["decide", "read"]\n'
        f'[[tokens]]\nname = "dpo"\nsha256 = "{sha256_hex("admin-token")}"\n'
        'roles = ["admin"]\nexperiments = ["checkout"]\n')
    app = start_server(CONFIG, tick_seconds=3600, auth_tokens=str(tokens))
    with DecisionClient(f"127.0.0.1:{app.port}", token="decide-token") as client:
        targets = feed(client, 0, 120)

    def erase_as(token: str, experiment: str = "") -> pb.EraseUnitResponse:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            answer: pb.EraseUnitResponse = experiments_pb2_grpc.ExperimentServiceStub(
                channel).EraseUnit(pb.EraseUnitRequest(unit_id=TARGET, experiment=experiment,
                                                       request_id=f"by-{token}-{experiment}"),
                                   metadata=[("authorization", f"Bearer {token}")], timeout=60)
            return answer

    with pytest.raises(grpc.RpcError) as denied:
        erase_as("decide-token")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as hidden:
        erase_as("admin-token", "homepage")
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    answer = erase_as("admin-token")  # every experiment the token sees: checkout only

    assert list(answer.rebuilt_experiments) == ["checkout"]
    assert answer.decisions_deleted == sum(1 for x in targets.values() if x == "checkout")
    with app.engine.connect() as connection:
        audit = connection.execute(sa.select(erasures.c.principal, erasures.c.experiment)
                                   .where(erasures.c.request_id == "by-admin-token-")).one()
    assert tuple(audit) == ("dpo", None)
