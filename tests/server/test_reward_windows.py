"""Reward semantics with an injectable clock: windows, defaults, late rewards, sum, deferred."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from arbiter.client import AlreadyExistsError, ArbiterClientError, DecisionClient
from arbiter.log.schema import learnings, rewards
from arbiter.server.app import App

WAIT = 60
StartServer = Callable[..., App]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def config(aggregation: str = "first", default: float = -0.5) -> dict[str, Any]:
    return {"experiments": {"homepage": {
        "policy": "linucb", "params": {"alpha": 0.0},
        "reward_wait_seconds": WAIT, "default_reward": default,
        "reward_aggregation": aggregation}}}


def rows(app: App, table: sa.Table) -> list[dict[str, Any]]:
    """The table's rows (for ``learnings``: learned events, not set-up changes)."""
    query = sa.select(table)
    if table is learnings:
        query = query.where(learnings.c.event_id.is_not(None))
    with app.engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def serve(start_server: StartServer, clock: FakeClock, **kwargs: Any) -> tuple[App, DecisionClient]:
    app = start_server(config(**kwargs), clock=clock, tick_seconds=3600)
    return app, DecisionClient(f"127.0.0.1:{app.port}")


def test_a_window_closing_without_reward_learns_the_default_reward(
        start_server: StartServer, clock: FakeClock
) -> None:
    app, client = serve(start_server, clock)
    choice = client.choose("homepage", actions=["a", "b"])
    assert app.loop.close_windows() == 0  # still open

    clock.advance(WAIT + 1)
    assert app.loop.close_windows() == 1

    [learning] = rows(app, learnings)
    assert (learning["event_id"], learning["value"]) == (choice.event_id, -0.5)
    assert client.choose("homepage", actions=["a", "b"]).model_version.endswith("@1")


def test_a_late_reward_is_stored_but_not_learned(start_server: StartServer, clock: FakeClock) -> None:
    app, client = serve(start_server, clock)
    choice = client.choose("homepage", actions=["a", "b"])
    clock.advance(WAIT + 1)

    assert client.reward(choice.event_id, 1.0).learned is False

    assert [(r["value"], r["learned"]) for r in rows(app, rewards)] == [(1.0, False)]
    app.loop.close_windows()
    assert [r["value"] for r in rows(app, learnings)] == [-0.5]


def test_sum_adds_the_rewards_inside_the_window_and_learns_once_when_it_closes(
        start_server: StartServer, clock: FakeClock
) -> None:
    app, client = serve(start_server, clock, aggregation="sum")
    choice = client.choose("homepage", actions=["a", "b"])
    assert client.reward(choice.event_id, 1.0).learned
    clock.advance(WAIT / 2)
    assert client.reward(choice.event_id, 2.5).learned
    assert rows(app, learnings) == []

    clock.advance(WAIT)
    assert client.reward(choice.event_id, 100.0).learned is False  # late
    app.loop.close_windows()

    [learning] = rows(app, learnings)
    assert learning["value"] == 3.5
    assert sorted((r["value"], r["learned"]) for r in rows(app, rewards)) == [
        (1.0, True), (2.5, True), (100.0, False)]


def test_reward_id_makes_retries_write_once(start_server: StartServer, clock: FakeClock) -> None:
    app, client = serve(start_server, clock, aggregation="sum")
    choice = client.choose("homepage", actions=["a", "b"])
    stub = client._stub  # reward_id is part of the proto; call it directly
    from arbiter.v1 import decision_pb2 as pb

    stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=1.0, reward_id="r1"))
    stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=1.0, reward_id="r2"))
    with pytest.raises(Exception) as raised:
        stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=1.0, reward_id="r1"))
    assert "ALREADY_EXISTS" in str(raised.value.code())  # type: ignore[attr-defined]

    clock.advance(WAIT + 1)
    app.loop.close_windows()
    assert len(rows(app, rewards)) == 2
    assert [r["value"] for r in rows(app, learnings)] == [2.0]


def test_a_retried_first_reward_is_already_exists_and_not_written_twice(
        start_server: StartServer, clock: FakeClock
) -> None:
    app, client = serve(start_server, clock)
    choice = client.choose("homepage", actions=["a", "b"])
    client.reward(choice.event_id, 1.0)
    with pytest.raises(AlreadyExistsError):
        client.reward(choice.event_id, 1.0)
    assert len(rows(app, rewards)) == 1


def test_a_deferred_decision_is_not_learned_until_activated_then_its_window_starts(
        start_server: StartServer, clock: FakeClock
) -> None:
    app, client = serve(start_server, clock)
    choice = client.choose("homepage", actions=["a", "b"], deferred=True)
    clock.advance(10 * WAIT)
    app.loop.close_windows()
    assert rows(app, learnings) == []
    assert client.reward(choice.event_id, 5.0).learned is False  # before activation: stored only

    client.activate(choice.event_id)
    client.activate(choice.event_id)  # idempotent
    clock.advance(WAIT / 2)
    assert client.reward(choice.event_id, 1.0).learned

    [learning] = rows(app, learnings)
    assert learning["value"] == 1.0


def test_a_retry_of_a_reward_stored_before_activation_does_not_take_the_opened_window(
        start_server: StartServer, clock: FakeClock
) -> None:
    """The retry finds the window the activation opened, but its first try is stored: it is
    ALREADY_EXISTS, the window stays open for the next reward, nothing is learned twice."""
    from arbiter.v1 import decision_pb2 as pb

    app, client = serve(start_server, clock)
    choice = client.choose("homepage", actions=["a", "b"], deferred=True)
    stub = client._stub  # reward_id is part of the proto; call it directly
    early = pb.RewardRequest(event_id=choice.event_id, value=5.0, reward_id="r1")
    assert stub.Reward(early).learned is False  # before activation: stored only
    client.activate(choice.event_id)
    with pytest.raises(Exception) as raised:
        stub.Reward(early)
    assert "ALREADY_EXISTS" in str(raised.value.code())  # type: ignore[attr-defined]
    assert rows(app, learnings) == []
    assert stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=1.0,
                                        reward_id="r2")).learned
    assert [r["value"] for r in rows(app, learnings)] == [1.0]
    assert sorted((r["value"], r["learned"]) for r in rows(app, rewards)) == [
        (1.0, True), (5.0, False)]


def test_activating_a_decision_that_was_not_deferred_is_a_failed_precondition(
        start_server: StartServer, clock: FakeClock
) -> None:
    _, client = serve(start_server, clock)
    choice = client.choose("homepage", actions=["a", "b"])
    with pytest.raises(ArbiterClientError) as raised:
        client.activate(choice.event_id)
    assert raised.value.code.name == "FAILED_PRECONDITION"


def test_open_windows_survive_a_restart_and_closed_ones_are_defaulted_on_start(
        start_server: StartServer, clock: FakeClock
) -> None:
    first, client = serve(start_server, clock)
    open_choice = client.choose("homepage", actions=["a", "b"])
    clock.advance(WAIT - 10)
    closing_choice = client.choose("homepage", actions=["a", "b"])
    first.stop(grace=1)

    clock.advance(20)  # the first window closed while the server was down
    second, client = serve(start_server, clock)
    assert [(r["event_id"], r["value"]) for r in rows(second, learnings)] == [
        (open_choice.event_id, -0.5)]
    assert client.reward(closing_choice.event_id, 1.0).learned  # still inside its window
    assert sorted(r["value"] for r in rows(second, learnings)) == [-0.5, 1.0]
