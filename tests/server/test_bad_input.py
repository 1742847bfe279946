"""Bad input gets INVALID_ARGUMENT (or NOT_FOUND) naming the field, and changes nothing."""

from __future__ import annotations

import grpc
import pytest

from arbiter.server.app import App
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc
from tests.conftest import count_rows


def ns(name: str = "user", **numbers: float) -> pb.Namespace:
    return pb.Namespace(name=name, numbers=numbers)


def actions(*ids: str) -> list[pb.Action]:
    return [pb.Action(id=i) for i in ids]


BAD_CHOOSE = {
    "no actions": (pb.ChooseRequest(experiment="homepage"), "`actions`"),
    "empty action id": (pb.ChooseRequest(experiment="homepage", actions=actions("a", "")),
                        "`actions[1].id`"),
    "duplicate action id": (pb.ChooseRequest(experiment="homepage", actions=actions("a", "b", "a")),
                            "`actions[2].id`"),
    "too many actions": (pb.ChooseRequest(experiment="homepage",
                                          actions=actions(*[str(i) for i in range(1001)])),
                         "`actions`"),
    "empty experiment": (pb.ChooseRequest(actions=actions("a")), "`experiment`"),
    "NaN in context": (pb.ChooseRequest(experiment="homepage", actions=actions("a"),
                                        context=[ns(age=float("nan"))]),
                       "`context[0].numbers['age']`"),
    "+inf in context": (pb.ChooseRequest(experiment="homepage", actions=actions("a"),
                                         context=[ns(age=float("inf"))]),
                        "`context[0].numbers['age']`"),
    "-inf in action features": (
        pb.ChooseRequest(experiment="homepage",
                         actions=[pb.Action(id="a", features=[ns("item", price=float("-inf"))])]),
        "`actions[0].features[0].numbers['price']`"),
    "empty namespace name": (pb.ChooseRequest(experiment="homepage", actions=actions("a"),
                                              context=[ns("")]), "`context[0].name`"),
    "repeated namespace name": (pb.ChooseRequest(experiment="homepage", actions=actions("a"),
                                                 context=[ns("u"), ns("v"), ns("u")]),
                                "`context[2].name`"),
    "NaN in a later namespace": (pb.ChooseRequest(experiment="homepage", actions=actions("a"),
                                                  context=[ns("u", a=1.0), ns("v", b=float("nan"))]),
                                 "`context[1].numbers['b']`"),
    "action id too long": (pb.ChooseRequest(experiment="homepage", actions=actions("a", "b" * 257)),
                           "`actions[1].id`"),
}


@pytest.fixture
def stub(server: App) -> decision_pb2_grpc.DecisionServiceStub:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield decision_pb2_grpc.DecisionServiceStub(channel)
    channel.close()


@pytest.mark.parametrize("case", BAD_CHOOSE)
def test_bad_choose_is_invalid_argument_naming_the_field_and_logs_nothing(
        case: str, server: App, stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    request, field = BAD_CHOOSE[case]
    before = count_rows(server.settings.db)

    with pytest.raises(grpc.RpcError) as raised:
        stub.Choose(request, timeout=5)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in raised.value.details()
    assert count_rows(server.settings.db) == before


def test_finite_numbers_whose_sum_overflows_are_accepted(
        server: App, stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    """Validation sums a namespace's numbers to find a NaN or an infinity at once; a sum that
    overflows with finite terms only must not be mistaken for one."""
    request = pb.ChooseRequest(experiment="homepage", actions=actions("a", "b"),
                               context=[ns(big=1e308, bigger=1.5e308)])

    response = stub.Choose(request, timeout=5)

    assert response.action_id in {"a", "b"}
    assert count_rows(server.settings.db)["decisions"] == 1


def test_the_action_cap_is_configurable(start_server) -> None:  # type: ignore[no-untyped-def]
    app = start_server(max_actions=3)
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        stub.Choose(pb.ChooseRequest(experiment="homepage", actions=actions("a", "b", "c")))
        with pytest.raises(grpc.RpcError) as raised:
            stub.Choose(pb.ChooseRequest(experiment="homepage",
                                         actions=actions("a", "b", "c", "d")))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cap of 3" in raised.value.details()


def test_unknown_experiment_is_not_found_and_logs_nothing(
        server: App, stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.Choose(pb.ChooseRequest(experiment="nope", actions=actions("a")), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in raised.value.details()
    assert count_rows(server.settings.db) == {"decisions": 0, "rewards": 0, "learnings": 0}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_reward_is_invalid_and_stores_nothing(
        value: float, server: App, stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    choice = stub.Choose(pb.ChooseRequest(experiment="homepage", actions=actions("a", "b")))
    before = count_rows(server.settings.db)

    with pytest.raises(grpc.RpcError) as raised:
        stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=value), timeout=5)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "`value`" in raised.value.details()
    assert count_rows(server.settings.db) == before
    assert stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=1.0)).learned


def test_a_reward_without_event_id_is_invalid(
        server: App, stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.Reward(pb.RewardRequest(value=1.0), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "`event_id`" in raised.value.details()


def test_an_unexpected_error_is_internal_with_a_generic_message_and_the_server_lives_on(
        server: App, stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    variant = server.experiments["homepage"].variants["default"]
    healthy = variant.policy

    class Broken:
        def distribution(self, *_: object) -> None:
            raise RuntimeError("secret internal detail")

    variant.policy = Broken()  # type: ignore[assignment]
    with pytest.raises(grpc.RpcError) as raised:
        stub.Choose(pb.ChooseRequest(experiment="homepage", actions=actions("a")), timeout=5)
    variant.policy = healthy

    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in raised.value.details()
    assert stub.Choose(pb.ChooseRequest(experiment="homepage", actions=actions("a"))).action_id == "a"
