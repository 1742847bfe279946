"""Per experiment `reward_range = [low, high]` (default [-1e6, 1e6]): a reward outside it is
INVALID_ARGUMENT naming `value` and the range, and nothing is written."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from arbiter.server.app import App
from arbiter.server.config import DEFAULT_REWARD_RANGE, ConfigError, parse_config
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc
from tests.conftest import count_rows

CONFIG = {"experiments": {
    "homepage": {"policy": "linucb"},
    "clicks": {"policy": "thompson", "reward_range": [0, 1]},
}}


def experiment(**keys: Any) -> dict[str, Any]:
    return {"experiments": {"homepage": {"policy": "linucb", **keys}}}


def test_the_default_range_is_a_million_either_way() -> None:
    assert parse_config(experiment())["homepage"].reward_range == DEFAULT_REWARD_RANGE == (-1e6, 1e6)
    assert parse_config(experiment(reward_range=[0, 1]))["homepage"].reward_range == (0.0, 1.0)


@pytest.mark.parametrize(("value", "message"), [
    ([1, 0], "low < high"), ([0], "two finite numbers"), ("0..1", "two finite numbers"),
    ([0, float("inf")], "two finite numbers"), ([True, 2], "two finite numbers"),
])
def test_a_bad_range_names_the_experiment_and_the_key(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(experiment(reward_range=value))
    assert "experiment `homepage`" in str(raised.value)
    assert "`reward_range`" in str(raised.value)
    assert message in str(raised.value)


def test_the_default_reward_must_lie_in_the_range() -> None:
    with pytest.raises(ConfigError, match="`default_reward` = 5 is outside `reward_range`"):
        parse_config(experiment(reward_range=[0, 1], default_reward=5))


@pytest.fixture
def app(start_server) -> App:  # type: ignore[no-untyped-def]
    served: App = start_server(CONFIG)
    return served


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("homepage", 1e308, "[-1e+06, 1e+06]"), ("homepage", -1000001.0, "[-1e+06, 1e+06]"),
    ("clicks", 1.5, "[0, 1]"), ("clicks", -0.1, "[0, 1]"),
])
def test_a_reward_outside_the_range_is_invalid_and_writes_nothing(
        app: App, name: str, value: float, shown: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        choice = stub.Choose(pb.ChooseRequest(experiment=name,
                                              actions=[pb.Action(id="a"), pb.Action(id="b")]))
        before = count_rows(app.settings.db)

        with pytest.raises(grpc.RpcError) as raised:
            stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=value), timeout=5)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "`value`" in raised.value.details()
        assert shown in raised.value.details()
        assert count_rows(app.settings.db) == before
        bound = app.experiments[name].config.reward_range[1]
        assert stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=bound)).learned
