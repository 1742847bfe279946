"""Choose and Reward end to end: a real server, a real channel, SQLite and PostgreSQL."""

from __future__ import annotations

import math
import time
import uuid

import pytest
import sqlalchemy as sa

from arbiter.client import AlreadyExistsError, DecisionClient, NotFoundError
from arbiter.log.schema import decisions, learnings, rewards
from arbiter.server.app import App

CONTEXT = {"user": {"country": "DE", "age": 31}}
ACTIONS = ["a", "b", {"id": "c", "features": {"item": {"price": 9.5, "kind": "video"}}}]


def target(app: App) -> str:
    return f"127.0.0.1:{app.port}"


def logged_rows(app: App, table: sa.Table) -> list[dict[str, object]]:
    """The table's rows (for ``learnings``: learned events, not set-up changes)."""
    query = sa.select(table)
    if table is learnings:
        query = query.where(learnings.c.event_id.is_not(None))
    with app.engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def test_choose_returns_an_offered_action_with_the_full_distribution(server: App) -> None:
    with DecisionClient(target(server)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, unit_id="u1")

    assert choice.action_id in {"a", "b", "c"}
    assert choice.ranking[0] == (choice.action_id, choice.probability)
    assert {a for a, _ in choice.ranking} == {"a", "b", "c"}
    assert math.isclose(sum(p for _, p in choice.ranking), 1.0, abs_tol=1e-9)
    tail = [p for _, p in choice.ranking[1:]]
    assert tail == sorted(tail, reverse=True)
    assert 0 < choice.probability <= 1
    assert uuid.UUID(choice.event_id)
    assert choice.variant == "default"
    assert choice.model_version


def test_fresh_event_ids_are_time_ordered_uuid7s(server: App) -> None:
    with DecisionClient(target(server)) as client:
        first = client.choose("homepage", context=CONTEXT, actions=ACTIONS).event_id
        time.sleep(0.002)  # UUIDv7 orders by the millisecond
        second = client.choose("homepage", context=CONTEXT, actions=ACTIONS).event_id

    assert uuid.UUID(first).version == uuid.UUID(second).version == 7
    assert first < second  # sortable as text: the log's index grows at its right edge


def test_choose_logs_the_decision_before_answering(server: App) -> None:
    with DecisionClient(target(server)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, unit_id="u1")

    [row] = logged_rows(server, decisions)
    assert row["event_id"] == choice.event_id
    assert row["experiment"] == "homepage"
    assert row["variant"] == choice.variant
    assert row["model_version"] == choice.model_version
    assert row["chosen_action"] == choice.action_id
    assert row["probability"] == pytest.approx(choice.probability, abs=1e-15)
    assert row["unit_hash"] and row["unit_hash"] != "u1"  # pseudonymised
    assert row["context"] == [{"name": "user", "numbers": {"age": 31.0},
                               "categories": {"country": "DE"}}]
    assert [a["id"] for a in row["actions"]] == ["a", "b", "c"]
    assert row["actions"][2]["features"][0]["categories"] == {"kind": "video"}
    by_id = dict(choice.ranking)
    assert row["distribution"] == pytest.approx([by_id["a"], by_id["b"], by_id["c"]])
    assert row["created_at"] is not None


def test_a_retried_event_id_returns_the_same_decision_and_logs_nothing_new(server: App) -> None:
    with DecisionClient(target(server)) as client:
        first = client.choose("homepage", context=CONTEXT, actions=ACTIONS, event_id="ev-1")
        again = client.choose("homepage", context=CONTEXT, actions=ACTIONS, event_id="ev-1")

    assert again == first
    assert len(logged_rows(server, decisions)) == 1


def test_the_draw_is_seeded_by_the_event_id(start_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = {"experiments": {"homepage": {"policy": "uniform"}}}
    one = start_server(config)
    choices = []
    with DecisionClient(target(one)) as client:
        for i in range(20):
            choices.append(client.choose("homepage", actions=[str(k) for k in range(10)],
                                         event_id=f"seeded-{i}").action_id)
    other = start_server(config, db=f"sqlite:///{tmp_path / 'other.db'}")
    with DecisionClient(target(other)) as client:
        replayed = [client.choose("homepage", actions=[str(k) for k in range(10)],
                                  event_id=f"seeded-{i}").action_id for i in range(20)]
    assert replayed == choices
    assert len(set(choices)) > 1


def test_reward_is_stored_and_learned_and_the_next_choose_sees_it(start_server) -> None:  # type: ignore[no-untyped-def]
    greedy = start_server({"experiments": {"homepage": {"policy": "linucb",
                                                        "params": {"alpha": 0.0}}}})
    with DecisionClient(target(greedy)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=["a", "b", "c"])
        result = client.reward(choice.event_id, 1.0)
        later = client.choose("homepage", context=CONTEXT, actions=["a", "b", "c"])

    assert result.learned
    [reward] = logged_rows(greedy, rewards)
    assert (reward["event_id"], reward["value"], reward["learned"]) == (choice.event_id, 1.0, True)
    [learning] = logged_rows(greedy, learnings)
    assert learning["event_id"] == choice.event_id
    assert later.model_version != choice.model_version
    # Greedy LinUCB: the only action with a positive estimate is now the most likely one.
    assert max(later.ranking, key=lambda r: r[1])[0] == choice.action_id


def test_a_second_reward_gets_already_exists_and_the_first_is_kept(server: App) -> None:
    with DecisionClient(target(server)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS)
        client.reward(choice.event_id, 0.25)
        with pytest.raises(AlreadyExistsError):
            client.reward(choice.event_id, 0.75)

    [learning] = logged_rows(server, learnings)
    assert learning["value"] == 0.25
    assert {(r["value"], r["learned"]) for r in logged_rows(server, rewards)} == {
        (0.25, True), (0.75, False)}


def test_reward_for_an_unknown_event_is_not_found(server: App) -> None:
    with DecisionClient(target(server)) as client, pytest.raises(NotFoundError) as raised:
        client.reward("no-such-event", 1.0)
    assert "no-such-event" in raised.value.message
    assert logged_rows(server, rewards) == []


def test_rewards_join_decisions_logged_before_a_restart(start_server, db_url) -> None:  # type: ignore[no-untyped-def]
    first = start_server()
    with DecisionClient(target(first)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS)
    first.stop(grace=1)

    second = start_server()
    with DecisionClient(target(second)) as client:
        assert client.reward(choice.event_id, 1.0).learned
        with pytest.raises(AlreadyExistsError):
            client.reward(choice.event_id, 1.0)


def test_a_retried_event_id_returns_the_logged_decision_after_a_restart(  # type: ignore[no-untyped-def]
        start_server, db_url) -> None:
    first = start_server()
    with DecisionClient(target(first)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, event_id="retried")
        for _ in range(5):  # the model moves on, so a fresh decision would differ
            other = client.choose("homepage", context=CONTEXT, actions=ACTIONS)
            client.reward(other.event_id, 1.0)
    first.stop(grace=1)

    second = start_server()
    with DecisionClient(target(second)) as client:
        again = client.choose("homepage", context=CONTEXT, actions=ACTIONS, event_id="retried")
    assert again == choice
    assert again.model_version == "linucb@0"
    engine = sa.create_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(decisions)).scalar() == 6
    engine.dispose()
