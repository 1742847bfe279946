"""What the writer answers when the log refuses rows, SQLite and PostgreSQL, a real server.

A group-commit batch first goes in with plain inserts; when the log refuses it, the batch runs
again with the conflict-aware statements, and then write by write. Whatever path it takes, the
answers stay true: a retried event id (logged before, not in this process's cache, as another
process would see it) answers the logged decision, a write the log refuses for another reason
is INTERNAL and fails alone, and every other decision of the batch is stored exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest
import sqlalchemy as sa

from arbiter.log.schema import decisions
from arbiter.server.app import App
from arbiter.server.cache import DecisionCache
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc
from tests.server.test_hostile_requests import _block_commits, _wait_until, actions, channel_to

REFUSED = "refused-by-the-log"


def _refuse(app: App) -> None:
    """Make the log refuse a decision with the event id :data:`REFUSED` — not a duplicate: a
    check (PostgreSQL), a trigger (SQLite)."""
    with app.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON decisions WHEN NEW.event_id = '{REFUSED}'"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        else:
            connection.exec_driver_sql(
                f"ALTER TABLE decisions ADD CONSTRAINT refuse CHECK (event_id <> '{REFUSED}')")


def _logged(app: App) -> list[str]:
    with app.engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.select(decisions.c.event_id))]


def test_one_batch_with_a_retry_a_refused_row_and_new_decisions(
        start_server: Callable[..., App]) -> None:
    app = start_server()
    _refuse(app)

    def request(event_id: str) -> pb.ChooseRequest:
        return pb.ChooseRequest(experiment="homepage", event_id=event_id, unit_id=event_id,
                                actions=actions("a", "b", "c"))

    with channel_to(app) as channel:
        choose = decision_pb2_grpc.DecisionServiceStub(channel).Choose
        earlier = choose(request("earlier"))
        app.loop.cache = DecisionCache(1 << 20)  # answered from the log, as another process would
        gate = _block_commits(app)
        try:
            held = choose.future(request("held"), timeout=30)  # taken by the writer, held
            _wait_until(lambda: app.writer.pending == 0 and held.running())
            time.sleep(0.2)
            names = ["earlier", REFUSED, "new-1", "new-2", "new-3"]
            futures = {name: choose.future(request(name), timeout=30) for name in names}
            _wait_until(lambda: app.writer.pending == len(names))  # one batch after the gate
        finally:
            gate.set()
        answers = {name: future.exception() or future.result()
                   for name, future in futures.items()}

    assert held.result().event_id == "held"
    assert answers["earlier"] == earlier
    refused = answers[REFUSED]
    assert isinstance(refused, grpc.RpcError)
    assert refused.code() == grpc.StatusCode.INTERNAL
    for name in ("new-1", "new-2", "new-3"):
        assert isinstance(answers[name], pb.ChooseResponse)
        assert answers[name].event_id == name
    assert sorted(_logged(app)) == sorted(["earlier", "held", "new-1", "new-2", "new-3"])


@pytest.mark.parametrize("retries", [1, 3])
def test_a_retry_in_a_batch_of_new_decisions_answers_the_logged_one(
        start_server: Callable[..., App], retries: int) -> None:
    """Only the retried rows are turned away: the batch's new decisions are all stored once,
    and ALREADY_EXISTS comes only for an event id another experiment really logged."""
    app = start_server({"experiments": {"homepage": {"policy": "linucb"},
                                        "billing": {"policy": "uniform"}}})
    with channel_to(app) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        logged = [stub.Choose(pb.ChooseRequest(experiment="homepage", event_id=f"old-{i}",
                                               actions=actions("a", "b")))
                  for i in range(retries)]
        stub.Choose(pb.ChooseRequest(experiment="billing", event_id="theirs",
                                     actions=actions("a", "b")))
        app.loop.cache = DecisionCache(1 << 20)
        batch = stub.ChooseBatch(pb.ChooseBatchRequest(requests=[
            *(pb.ChooseRequest(experiment="homepage", event_id=f"old-{i}", actions=actions("a", "b"))
              for i in range(retries)),
            pb.ChooseRequest(experiment="homepage", event_id="theirs", actions=actions("a", "b")),
            *(pb.ChooseRequest(experiment="homepage", event_id=f"new-{i}",
                               actions=actions("a", "b")) for i in range(4))]))

    results = list(batch.results)
    assert [result.response for result in results[:retries]] == logged
    assert results[retries].code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert [result.response.event_id for result in results[retries + 1:]] == \
        [f"new-{i}" for i in range(4)]
    assert all(result.code == 0 for result in results[retries + 1:])
    assert sorted(_logged(app)) == sorted([*(f"old-{i}" for i in range(retries)), "theirs",
                                           *(f"new-{i}" for i in range(4))])
