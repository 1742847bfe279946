"""An admin change made through one server is in force on every server within a second.

Three in-process servers share one database (SQLite file, PostgreSQL). ``SetTraffic`` and
``Promote`` go through ``ExperimentService`` on one server; ``GetExperiment`` on the other two
must show the change within 1 s (it travels as a set-up change in the learning order, which
their tails fold). Assignment stays sticky per unit across servers before and after each
change: a unit gets the same variant from every server, and a change moves only the units it
must (SetTraffic: from the variant that shrank to the one that grew; promoting a shadow: the
champion's units to the new champion).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from arbiter.client import DecisionClient
from arbiter.server.app import App
from arbiter.v1 import experiments_pb2 as pb
from arbiter.v1 import experiments_pb2_grpc
from tests.cluster.helpers import query
from tests.conftest import running_apps

CONFIG = {"experiments": {"hero": {
    "control": "a",
    "variants": [
        {"name": "a", "policy": "linucb", "traffic": 1},
        {"name": "b", "policy": "uniform", "traffic": 1},
        {"name": "c", "policy": "lints", "shadow": True},
    ]}}}
UNITS = [f"user-{i}" for i in range(90)]
ACTIONS = ["low", "mid", "high"]
PROPAGATION = 1.0  # seconds within which the other servers must show a change


@pytest.fixture
def start_app(db_url: str) -> Iterator[Callable[..., App]]:
    yield from running_apps(db_url)


def target(app: App) -> str:
    return f"127.0.0.1:{app.port}"


def roles(experiment: pb.Experiment) -> tuple[str, dict[str, float | str]]:
    """(champion, variant → traffic share, or "shadow")."""
    return experiment.control, {v.name: "shadow" if v.shadow else round(v.traffic, 6)
                                for v in experiment.variants}


def get(app: App) -> pb.Experiment:
    with grpc.insecure_channel(target(app)) as channel:
        return experiments_pb2_grpc.ExperimentServiceStub(channel).GetExperiment(
            pb.GetExperimentRequest(experiment="hero"), timeout=5)


def reaches(apps: list[App], wanted: tuple[str, dict[str, float | str]], since: float) -> float:
    """Poll GetExperiment on ``apps`` until each shows ``wanted``; returns the seconds from
    ``since`` until the last one did. Fails when one does not within ``PROPAGATION``."""
    pending = list(apps)
    while pending:
        pending = [app for app in pending if roles(get(app)) != wanted]
        elapsed = time.monotonic() - since
        if pending:
            assert elapsed < PROPAGATION, (
                f"{len(pending)} server(s) still show {roles(get(pending[0]))}, not {wanted}, "
                f"{elapsed:.2f} s after the change was answered")
            time.sleep(0.01)
    return time.monotonic() - since


def assignments(apps: list[App]) -> dict[str, str]:
    """Every unit's variant, asked of every server (concurrently); each unit must get the same
    variant from all of them."""
    def ask(app: App) -> dict[str, str]:
        with DecisionClient(target(app)) as client:
            return {unit: client.choose("hero", unit_id=unit, actions=ACTIONS).variant
                    for unit in UNITS}

    with ThreadPoolExecutor(len(apps)) as pool:
        seen = list(pool.map(ask, apps))
    for unit in UNITS:
        assert len({answers[unit] for answers in seen}) == 1, (
            unit, [answers[unit] for answers in seen])
    return seen[0]


def test_set_traffic_and_promote_on_one_server_reach_the_others_and_stay_sticky(
        start_app: Callable[..., App], db_url: str) -> None:
    apps = [start_app(CONFIG) for _ in range(3)]
    before = assignments(apps)
    assert set(before.values()) == {"a", "b"}

    # SetTraffic through server 0: a 25%, b 75%.
    with grpc.insecure_channel(target(apps[0])) as channel:
        changed = experiments_pb2_grpc.ExperimentServiceStub(channel).SetTraffic(
            pb.SetTrafficRequest(experiment="hero", traffic={"a": 1, "b": 3}), timeout=10)
    answered = time.monotonic()
    wanted = ("a", {"a": 0.25, "b": 0.75, "c": "shadow"})
    assert roles(changed) == wanted
    reaches(apps[1:], wanted, answered)

    after_traffic = assignments(apps)
    moved = {(before[u], after_traffic[u]) for u in UNITS if before[u] != after_traffic[u]}
    assert moved == {("a", "b")}  # only from the variant that shrank to the one that grew
    assert sum(v == "b" for v in after_traffic.values()) > sum(v == "b" for v in before.values())

    # Promote the shadow c through server 1: it takes the champion's share, a turns shadow.
    with grpc.insecure_channel(target(apps[1])) as channel:
        promoted = experiments_pb2_grpc.ExperimentServiceStub(channel).Promote(
            pb.PromoteRequest(experiment="hero", variant="c", reason="cluster test"), timeout=10)
    answered = time.monotonic()
    wanted = ("c", {"a": "shadow", "b": 0.75, "c": 0.25})
    assert promoted.previous_champion == "a"
    assert roles(promoted.experiment) == wanted
    reaches([apps[0], apps[2]], wanted, answered)

    after_promotion = assignments(apps)
    assert {u: v for u, v in after_promotion.items() if after_traffic[u] == "b"} == {
        u: "b" for u in UNITS if after_traffic[u] == "b"}
    assert {u: v for u, v in after_promotion.items() if after_traffic[u] == "a"} == {
        u: "c" for u in UNITS if after_traffic[u] == "a"}

    # One audit row; set-up versions 1 (the TOML), 2 (traffic), 3 (promotion), each once.
    assert query(db_url, "SELECT from_variant, to_variant, reason, automatic FROM promotions") \
        == [("a", "c", "cluster test", False)]
    assert sorted(query(db_url, "SELECT version, reason FROM experiment_states")) == [
        (1, "seeded from the configuration"), (2, "traffic set"), (3, "promoted c")]
