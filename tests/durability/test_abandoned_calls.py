"""A call whose client gives up (its deadline passes) is all or nothing, never half done.

A burst of Choose and Reward calls with deadlines from 1 ms to 7 s goes to a real server: the
short ones expire while queued, while being scored, or while their commit is pending. Retrying every
call afterwards with the same ids must find the first attempt either fully done (the logged
decision returned again; the reward ALREADY_EXISTS) or not done at all (the retry does it), and
the log must hold each decision, reward and learning exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import grpc
import sqlalchemy as sa

from arbiter.log.schema import decisions, learnings, rewards
from arbiter.server.app import App
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc

BURST = 300
ACTIONS = [pb.Action(id=f"item-{k}") for k in range(5)]


def choose_request(i: int) -> pb.ChooseRequest:
    return pb.ChooseRequest(experiment="homepage", event_id=f"event-{i}", unit_id=f"u{i % 40}",
                            context=[pb.Namespace(name="user", numbers={"x": i / BURST})],
                            actions=ACTIONS)


def reward_request(i: int) -> pb.RewardRequest:
    return pb.RewardRequest(event_id=f"event-{i}", value=float(i % 2), reward_id=f"reward-{i}")


def deadline(i: int) -> float:
    """1 ms growing 3% per call to 7 s: from calls that expire queued to calls that all finish."""
    return 0.001 * 1.03**i


def burst(method: grpc.UnaryUnaryMultiCallable, requests: list[object]) -> Counter[grpc.StatusCode]:
    """Send every request at once, each with its short deadline; count the outcomes."""
    calls = [method.future(request, timeout=deadline(i)) for i, request in enumerate(requests)]
    outcomes: Counter[grpc.StatusCode] = Counter()
    for call in calls:
        outcomes[call.code()] += 1
    return outcomes


def column_counts(url: str, column: sa.Column[str]) -> Counter[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            # NULL: a learnings row that records a set-up change, not an event
            return Counter(connection.execute(sa.select(column).where(column.is_not(None))).scalars())
    finally:
        engine.dispose()


def test_abandoned_calls_are_all_or_nothing(start_server: Callable[..., App], db_url: str) -> None:
    app = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        stub.Choose(choose_request(BURST + 1), timeout=10)  # connected and warm

        chooses = burst(stub.Choose, [choose_request(i) for i in range(BURST)])
        assert chooses[grpc.StatusCode.DEADLINE_EXCEEDED] > 0 and chooses[grpc.StatusCode.OK] > 0
        assert set(chooses) <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}
        first = {i: stub.Choose(choose_request(i), timeout=10) for i in range(BURST)}
        for i, choice in first.items():  # a retry answers the one logged decision
            assert stub.Choose(choose_request(i), timeout=10) == choice

        rewarded = burst(stub.Reward, [reward_request(i) for i in range(BURST)])
        assert rewarded[grpc.StatusCode.DEADLINE_EXCEEDED] > 0 and rewarded[grpc.StatusCode.OK] > 0
        retried: Counter[grpc.StatusCode] = Counter()
        for i in range(BURST):
            try:
                stub.Reward(reward_request(i), timeout=10)
                retried[grpc.StatusCode.OK] += 1
            except grpc.RpcError as error:
                retried[error.code()] += 1
        assert set(retried) <= {grpc.StatusCode.OK, grpc.StatusCode.ALREADY_EXISTS}
        # a first attempt that reached the log makes its retry ALREADY_EXISTS, and only those
        assert retried[grpc.StatusCode.ALREADY_EXISTS] >= rewarded[grpc.StatusCode.OK]
        # one more committed call: every write queued before it is committed too (FIFO)
        stub.Choose(choose_request(BURST), timeout=10)

    expected = Counter(f"event-{i}" for i in range(BURST))
    extra = Counter([f"event-{BURST}", f"event-{BURST + 1}"])
    assert column_counts(db_url, decisions.c.event_id) == expected + extra
    assert column_counts(db_url, rewards.c.event_id) == expected
    assert column_counts(db_url, learnings.c.event_id) == expected
