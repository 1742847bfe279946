"""A log that already holds poisoned rewards (finite, huge: written before `reward_range`
existed) restores to working models: every policy skips what it cannot learn, logs it, and the
experiment serves Choose fine — after a replay from scratch and after a snapshot."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest

from arbiter.log import store
from arbiter.log.engine import create_engine
from arbiter.log.migrate import upgrade
from arbiter.log.store import DecisionRecord, Learning
from arbiter.policies import Decision, Namespace
from arbiter.server.app import App
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc

SHADOWS = [("lints", {}), ("vw", {}), ("epsilon_greedy", {}), ("hybrid", {"hybrid": True}),
           ("thompson", {}), ("uniform", {}), ("fixed", {"action": "a"})]
CONFIG = {"experiments": {"homepage": {"variants": [
    {"name": "default", "policy": "linucb", "params": {"alpha": 0.5}, "traffic": 1.0},
    *({"name": name, "policy": "linucb" if name == "hybrid" else name, "params": params,
       "shadow": True} for name, params in SHADOWS)]}}}
ACTIONS = ("a", "b", "c")
POISON = (1e308, -1e308, 1.7e308, 1e200, 1e155)


def write_poisoned_log(url: str, events: int = 300) -> None:
    """``events`` learned decisions of ``homepage``; every 25th has a poisoned reward, and some
    carry feature values VW's float32 cannot hold."""
    engine = create_engine(url)
    upgrade(engine)
    rng = np.random.default_rng(5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = []
    values = []
    for i in range(events):
        x = float(rng.random()) if i % 40 != 7 else 1e300
        records.append(DecisionRecord(
            event_id=f"e{i}", experiment="homepage", variant="default",
            model_version=f"linucb@{i}", unit_hash=None,
            decision=Decision(context=(Namespace("user", numbers={"x": x}),), action_ids=ACTIONS,
                              action_features=((), (), ())),
            distribution=(0.4, 0.3, 0.3), chosen=int(rng.integers(3)), shadow={},
            deferred=True, created_at=start + timedelta(milliseconds=i)))
        values.append(POISON[(i // 25) % len(POISON)] if i % 25 == 3 else float(rng.random() < 0.5))
    with engine.begin() as connection:
        store.insert_decisions(connection, records)
        first = store.take_seqs(connection, events)
        store.insert_learnings(connection, first, [
            Learning(experiment="homepage", event_id=r.event_id, value=v, learned_at=r.created_at)
            for r, v in zip(records, values, strict=True)])
    engine.dispose()


def assert_serves(app: App, calls: int = 20) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        for i in range(calls):
            context = [pb.Namespace(name="user", numbers={"x": float(i) / calls})]
            response = stub.Choose(pb.ChooseRequest(
                experiment="homepage", actions=[pb.Action(id=a) for a in ACTIONS],
                context=context), timeout=10)
            assert 0 < response.probability <= 1
            assert abs(sum(r.probability for r in response.ranking) - 1) < 1e-9
            assert stub.Reward(pb.RewardRequest(event_id=response.event_id, value=1.0),
                               timeout=10).learned


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_poisoned_log_restores_to_working_models(
        db_url: str, start_server, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    write_poisoned_log(db_url)

    with caplog.at_level(logging.WARNING, logger="arbiter.server.experiments"):
        app = start_server(CONFIG, snapshot_every=10)

    skipped = [r.getMessage() for r in caplog.records if "skipped learned event" in r.getMessage()]
    assert any(m.startswith("variant default ") for m in skipped)  # linucb, the serving one
    assert any(m.startswith("variant vw ") for m in skipped)
    assert any(m.startswith("variant hybrid ") for m in skipped)
    assert_serves(app)
    for variant in app.experiments["homepage"].variants.values():
        assert variant.updates == 300 + 20  # skipped events count: the fold is the same


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_poisoned_log_restores_from_a_snapshot_too(db_url: str, start_server) -> None:  # type: ignore[no-untyped-def]
    write_poisoned_log(db_url)
    first = start_server(CONFIG)
    assert_serves(first, calls=5)
    states = {name: v.state() for name, v in first.experiments["homepage"].variants.items()}
    first.stop(grace=1)  # a final snapshot of every variant

    second = start_server(CONFIG)

    assert {name: v.state() for name, v in second.experiments["homepage"].variants.items()} == states
    assert_serves(second)
