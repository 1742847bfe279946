"""Nothing is served before the restore finishes: calls during a long replay get UNAVAILABLE."""

from __future__ import annotations

import random
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
import sqlalchemy as sa

from arbiter.client import DecisionClient, UnavailableError
from arbiter.log import store
from arbiter.log.engine import create_engine
from arbiter.log.migrate import upgrade
from arbiter.log.schema import rewards
from arbiter.log.store import DecisionRecord, Learning
from arbiter.policies import Decision, Namespace
from arbiter.server.app import App, Settings
from arbiter.server.config import parse_config
from arbiter.v1.decision_pb2 import Action, ChooseRequest
from arbiter.v1.decision_pb2_grpc import DecisionServiceStub
from tests.postgres import secret_settings

CONFIG = {"experiments": {"homepage": {"policy": "linucb", "params": {"alpha": 0.5}}}}
EVENTS = 20_000
ACTIONS = ("a", "b", "c")


def write_long_log(url: str) -> None:
    """``EVENTS`` learned decisions and no snapshot: a start must replay them all."""
    engine = create_engine(url)
    upgrade(engine)
    rng = np.random.default_rng(3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [DecisionRecord(
        event_id=f"e{i}", experiment="homepage", variant="default", model_version="linucb@0",
        unit_hash=None, decision=Decision(
            context=(Namespace("user", numbers={"x": float(rng.random())}),),
            action_ids=ACTIONS, action_features=((), (), ())),
        distribution=(0.4, 0.3, 0.3), chosen=int(rng.integers(3)), shadow={}, deferred=True,
        created_at=start + timedelta(milliseconds=i)) for i in range(EVENTS)]
    with engine.begin() as connection:
        store.insert_decisions(connection, records)
        first = store.take_seqs(connection, EVENTS)
        store.insert_learnings(connection, first, [
            Learning(experiment="homepage", event_id=r.event_id, value=float(rng.random() < 0.5),
                     learned_at=r.created_at) for r in records])
    engine.dispose()


def free_port() -> int:
    """A free port below the ephemeral range: the client's own connection attempts use
    ephemeral source ports, and one equal to the server's port would connect to itself."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.Random().sample(range(low // 2, low), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@pytest.mark.slow
def test_calls_during_the_replay_are_unavailable_and_change_nothing(db_url: str) -> None:
    write_long_log(db_url)
    port = free_port()
    app = App(Settings(listen=f"127.0.0.1:{port}", db=db_url, **secret_settings(db_url)),
              parse_config(CONFIG))
    failure: list[BaseException] = []

    def start() -> None:
        try:
            app.start()
        except BaseException as error:
            failure.append(error)
            raise

    started = threading.Thread(target=start)
    started.start()
    refused_while_replaying = 0
    first_served = None
    try:
        with DecisionClient(f"127.0.0.1:{port}", timeout=1) as client:
            while first_served is None and started.is_alive():
                replaying = 0 < app.fold.applied < EVENTS
                try:
                    first_served = client.choose("homepage", actions=list(ACTIONS))
                except UnavailableError:
                    if replaying:
                        refused_while_replaying += 1
                        with pytest.raises(UnavailableError):
                            client.reward("e1", 1.0)
        started.join(120)
        assert not failure, failure
        assert refused_while_replaying > 0, "no call was made while the replay ran"
        if first_served is None:
            # A channel with its own subchannels: the shared ones are backing off after the
            # refused connections.
            with grpc.insecure_channel(f"127.0.0.1:{port}",
                                       options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                served = DecisionServiceStub(channel).Choose(ChooseRequest(
                    experiment="homepage", actions=[Action(id=a) for a in ACTIONS]), timeout=5)
            model_version = served.model_version
        else:
            model_version = first_served.model_version
    finally:
        started.join(120)
        app.stop(grace=1)
    assert model_version == f"linucb@{EVENTS}"  # served only with every event folded
    with app.engine.connect() as connection:
        assert store.last_seq(connection) == EVENTS + 1  # the events, and the seeded set-up
        assert connection.execute(sa.select(sa.func.count()).select_from(rewards)).scalar() == 0
