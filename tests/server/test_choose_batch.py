"""ChooseBatch end to end: a real server, a real channel, SQLite and PostgreSQL.

Each request of a batch is a Choose of its own — logged, answered, learned from by Reward,
idempotent by event id — and a bad one fails alone, with the code and message a unary Choose
would get; only a batch over the cap (``--max-batch``) fails as a whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from arbiter.client import (
    ArbiterClientError,
    Choice,
    ChooseSpec,
    DecisionClient,
    InvalidArgumentError,
    NotFoundError,
)
from arbiter.log.schema import decisions, learnings
from arbiter.server.app import App
from arbiter.server.cache import DecisionCache
from arbiter.server.convert import Limits
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc
from tests.conftest import count_rows
from tests.postgres import fresh_database
from tests.process import ServerProcess
from tests.server.test_choose_reward import logged_rows, target

LINUCB = {"experiments": {"homepage": {"policy": "linucb", "params": {"alpha": 0.5}}}}


def spec(i: int, **fields: Any) -> ChooseSpec:
    """A request with features that differ per action and per request (so scores do too)."""
    return ChooseSpec(**{
        "experiment": "homepage", "unit_id": f"unit-{i}",
        "context": {"user": {"age": 20 + i % 7, "country": ("DE", "FR", "US")[i % 3]}},
        "actions": [{"id": f"item-{k}", "features": {"item": {"price": k + 0.5 * (i % 4),
                                                              "kind": ("a", "b")[k % 2]}}}
                    for k in range(4)],
        **fields})


def choices(results: list[Choice | ArbiterClientError]) -> list[Choice]:
    """``results``, all of which must be choices."""
    assert all(isinstance(result, Choice) for result in results), results
    return [result for result in results if isinstance(result, Choice)]


def unary(client: DecisionClient, request: ChooseSpec) -> Choice | ArbiterClientError:
    try:
        return client.choose(request.experiment, context=request.context,
                             actions=request.actions, unit_id=request.unit_id,
                             event_id=request.event_id, deferred=request.deferred,
                             excluded_action_ids=request.excluded_action_ids)
    except ArbiterClientError as error:
        return error


def settled(app: App, decisions: int, seconds: float = 10.0) -> int:
    """The decisions logged once there are ``decisions`` of them (relaxed durability commits
    after answering), or when ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while (logged := count_rows(app.settings.db)["decisions"]) < decisions \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    return logged


def test_a_batch_answers_each_request_in_order_and_a_bad_one_fails_alone(server: App) -> None:
    good = [spec(i) for i in range(3)]
    bad = [
        spec(10, actions=[]),
        spec(11, experiment="nosuch"),
        spec(12, context={"user": {"age": float("nan")}}),
        spec(13, excluded_action_ids=["item-9"]),
    ]
    requests = [good[0], bad[0], bad[1], good[1], bad[2], bad[3], good[2]]
    with DecisionClient(target(server)) as client:
        results = client.choose_batch(requests)
        alone = [unary(client, request) for request in bad]  # what a unary Choose says

    assert len(results) == len(requests)
    choices = [results[0], results[3], results[6]]
    errors = [results[1], results[2], results[4], results[5]]
    assert all(isinstance(choice, Choice) for choice in choices)
    assert [(type(e), e.code, e.message) for e in errors] == \
        [(type(e), e.code, e.message) for e in alone]  # type: ignore[union-attr]
    assert isinstance(errors[0], InvalidArgumentError) and "`actions`" in errors[0].message
    assert isinstance(errors[1], NotFoundError) and "'nosuch'" in errors[1].message
    assert "`context[0].numbers['age']`" in errors[2].message  # type: ignore[union-attr]
    assert "`excluded_action_ids[0]`" in errors[3].message  # type: ignore[union-attr]
    rows = {row["event_id"]: row for row in logged_rows(server, decisions)}
    assert set(rows) == {choice.event_id for choice in choices}  # type: ignore[union-attr]
    for request, choice in zip(good, choices, strict=True):
        assert isinstance(choice, Choice)
        row = rows[choice.event_id]
        assert row["chosen_action"] == choice.action_id
        assert row["probability"] == pytest.approx(choice.probability, abs=1e-15)
        assert row["context"][0]["numbers"] == {"age": float(request.context["user"]["age"])}  # type: ignore[index]


def test_rewards_of_batch_decisions_are_learned(start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"homepage": {"policy": "linucb",
                                                     "params": {"alpha": 0.0}}}})
    with DecisionClient(target(app)) as client:
        batch = choices(client.choose_batch([spec(i, event_id=f"learn-{i}") for i in range(20)]))
        learned = [client.reward(choice.event_id, 1.0 if choice.action_id == "item-2" else 0.0)
                   for choice in batch]
        after = choices(client.choose_batch([spec(100 + i) for i in range(10)]))

    assert all(result.learned for result in learned)
    assert {row["event_id"] for row in logged_rows(app, learnings)} == \
        {choice.event_id for choice in batch}
    assert {choice.model_version for choice in batch} == {"linucb@0"}
    assert {choice.model_version for choice in after} == {"linucb@20"}
    # Greedy: the only action that earned anything (seeded draws: it was drawn) is the best.
    assert "item-2" in {choice.action_id for choice in batch}
    assert {max(choice.ranking, key=lambda r: r[1])[0] for choice in after} == {"item-2"}


@pytest.mark.parametrize("durability", ["strict", "relaxed"])
def test_a_retried_batch_answers_the_logged_decisions_and_logs_nothing_new(
        start_server: Callable[..., App], durability: str) -> None:
    app = start_server(LINUCB, durability=durability)
    requests = [spec(i, event_id=f"ev-{i}") for i in range(5)]
    with DecisionClient(target(app)) as client:
        first = client.choose_batch(requests)
        logged = settled(app, 5)
        again = client.choose_batch(requests)
        settled(app, 5)
        app.loop.cache = DecisionCache(1 << 20)  # from the log, as another process would answer
        from_log = client.choose_batch(requests)
        one = unary(client, requests[2])
        # The same event id twice in one batch, and one of another experiment's.
        twice = client.choose_batch([spec(50, event_id="ev-50"), spec(50, event_id="ev-50")])

    assert again == first
    assert from_log == first
    assert one == first[2]
    assert twice[0] == twice[1]
    assert settled(app, logged + 1) == logged + 1


def test_an_event_id_of_another_experiment_fails_alone(start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"homepage": LINUCB["experiments"]["homepage"],
                                        "billing": {"policy": "uniform"}}})
    with DecisionClient(target(app)) as client:
        client.choose("billing", actions=["x", "y"], event_id="taken")
        results = client.choose_batch([spec(1, event_id="taken"), spec(2)])

    assert isinstance(results[0], ArbiterClientError)
    assert results[0].code == grpc.StatusCode.ALREADY_EXISTS
    assert "billing" not in results[0].message
    assert isinstance(results[1], Choice)


@pytest.fixture
def second_db(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another empty database of the same kind, under the same secret (SQLite: the secret file
    beside both files)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


def test_batch_decisions_are_logged_as_unary_ones(start_server: Callable[..., App],
                                                  second_db: str) -> None:
    config = {"experiments": {"homepage": {
        "control": "main",
        "variants": [{"name": "main", "policy": "linucb", "params": {"alpha": 0.5}},
                     {"name": "ts", "policy": "lints", "shadow": True},
                     {"name": "vw", "policy": "vw", "shadow": True}]}}}
    batched, alone = start_server(config), start_server(config, db=second_db)
    warmup = [spec(i, event_id=f"warm-{i}") for i in range(30)]
    requests = [spec(i, event_id=f"ev-{i}", excluded_action_ids=["item-1"] if i % 3 else [])
                for i in range(40)]
    with DecisionClient(target(batched)) as one, DecisionClient(target(alone)) as other:
        for app_client in (one, other):  # the same learned history on both
            for choice in app_client.choose_batch(warmup):
                assert isinstance(choice, Choice)
                app_client.reward(choice.event_id, float(choice.action_id == "item-3"))
        answers = one.choose_batch(requests)
        expected = [unary(other, request) for request in requests]

    assert answers == expected
    columns = ("event_id", "variant", "model_version", "unit_hash", "context", "actions",
               "chosen_action", "deferred")
    rows = {app: {row["event_id"]: row for row in logged_rows(app, decisions)
                  if row["event_id"].startswith("ev-")} for app in (batched, alone)}
    assert rows[batched].keys() == rows[alone].keys() and len(rows[alone]) == len(requests)
    for event_id, row in rows[alone].items():
        mine = rows[batched][event_id]
        assert {c: mine[c] for c in columns} == {c: row[c] for c in columns}
        # Scored as one block: the same formulas, rounding may differ in the last bits.
        assert mine["distribution"] == pytest.approx(row["distribution"], rel=1e-12, abs=1e-15)
        assert mine["shadow"].keys() == row["shadow"].keys() == {"ts", "vw"}
        for name in ("ts", "vw"):
            assert mine["shadow"][name] == pytest.approx(row["shadow"][name], rel=1e-9,
                                                         abs=1e-12)


def test_requests_sharing_their_actions_are_charged_them_and_fail_alone_like_unary_ones(
        start_server: Callable[..., App]) -> None:
    """A batch's requests with the same actions (converted once, :class:`SharedActions`) are
    each charged those actions' features: the one they bring over --max-features fails with
    the unary Choose's message, and each of the others logs the actions it was sent."""
    app = start_server(LINUCB, limits=Limits(max_features=7))
    actions = [{"id": f"item-{k}", "features": {"item": {"p": 1.0 + k, "q": "x"}}}
               for k in range(2)]  # 4 features

    def request(i: int, context_features: int) -> ChooseSpec:
        return ChooseSpec(experiment="homepage", unit_id=f"unit-{i}", actions=actions,
                          context={"user": {f"f{j}": float(j) for j in range(context_features)}})

    requests = [request(0, 1), request(1, 3), request(2, 4), request(3, 2)]
    with DecisionClient(target(app)) as client:
        results = client.choose_batch(requests)
        alone = unary(client, requests[2])

    over = results[2]
    assert isinstance(over, InvalidArgumentError) and isinstance(alone, InvalidArgumentError)
    assert (over.code, over.message) == (alone.code, alone.message)
    assert "`actions[1].features[0]`" in over.message and "--max-features" in over.message
    made = choices([results[0], results[1], results[3]])
    rows = {row["event_id"]: row for row in logged_rows(app, decisions)}
    assert set(rows) == {choice.event_id for choice in made}
    for choice, sent in zip(made, [requests[0], requests[1], requests[3]], strict=True):
        row = rows[choice.event_id]
        assert row["actions"] == [{"id": a["id"], "features": [
            {"name": "item", "numbers": {"p": a["features"]["item"]["p"]},  # type: ignore[index]
             "categories": {"q": "x"}}]} for a in actions]
        assert row["context"] == [{"name": "user", "numbers": sent.context["user"],  # type: ignore[index]
                                   "categories": {}}]


def test_a_batch_over_the_cap_is_refused_whole_and_changes_nothing(
        start_server: Callable[..., App]) -> None:
    app = start_server(LINUCB, max_batch=3)
    with DecisionClient(target(app)) as client:
        assert len(client.choose_batch([spec(i) for i in range(3)])) == 3
        before = count_rows(app.settings.db)
        with pytest.raises(InvalidArgumentError) as refused:
            client.choose_batch([spec(i) for i in range(4)])
        assert client.choose_batch([]) == []

    assert refused.value.message == "`requests` has 4 entries, more than the cap of 3 (--max-batch)"
    assert count_rows(app.settings.db) == before


def test_a_batch_of_the_default_cap_is_served(server: App) -> None:
    request = pb.ChooseRequest(experiment="homepage", actions=[pb.Action(id="a"), pb.Action(id="b")])
    with grpc.insecure_channel(target(server)) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        full = stub.ChooseBatch(pb.ChooseBatchRequest(requests=[request] * 1000), timeout=60)
        with pytest.raises(grpc.RpcError) as over:
            stub.ChooseBatch(pb.ChooseBatchRequest(requests=[request] * 1001), timeout=60)

    assert [result.code for result in full.results] == [0] * 1000
    assert len({result.response.event_id for result in full.results}) == 1000
    assert over.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with server.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(decisions)).scalar() == 1000


def test_arbiter_serve_takes_the_cap_from_max_batch(tmp_path: Path) -> None:
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "uniform"\n')
    server = ServerProcess(config, f"sqlite:///{tmp_path / 'a.db'}", "--max-batch", "2")
    try:
        with DecisionClient(server.target) as client:
            assert len(client.choose_batch([spec(i) for i in range(2)])) == 2
            with pytest.raises(InvalidArgumentError, match=r"more than the cap of 2 \(--max-batch\)"):
                client.choose_batch([spec(i) for i in range(3)])
    finally:
        assert server.stop()[0] == 0
