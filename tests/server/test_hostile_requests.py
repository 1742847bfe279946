"""Inputs that cannot hurt (issue 14, item 3), through a real server and a real channel:
limits, undecodable bodies, overflowing traffic weights, load shedding, a lost SQLite file."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arbiter.server.app import App
from arbiter.server.convert import Limits
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc, experiments_pb2, experiments_pb2_grpc
from tests.conftest import count_rows, running_apps

TWO_VARIANTS = {"experiments": {"homepage": {"variants": [
    {"name": "champion", "policy": "linucb", "traffic": 0.5},
    {"name": "challenger", "policy": "lints", "traffic": 0.5}]}}}
REQUESTS: dict[str, Any] = {  # every method: its request message
    **{f"/arbiter.v1.DecisionService/{m.name}": m.input_type._concrete_class
       for m in pb.DESCRIPTOR.services_by_name["DecisionService"].methods},
    **{f"/arbiter.v1.ExperimentService/{m.name}": m.input_type._concrete_class
       for m in experiments_pb2.DESCRIPTOR.services_by_name["ExperimentService"].methods},
    "/grpc.health.v1.Health/Check": health_pb2.HealthCheckRequest,
}


def actions(*ids: str) -> list[pb.Action]:
    return [pb.Action(id=i) for i in ids]


def channel_to(app: App) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{app.port}")


# ------------------------------------------------------------------------------------- limits
SMALL = Limits(max_name_length=8, max_value_length=6, max_features_per_namespace=3,
               max_namespaces=4, max_features=7)


def ns(name: str = "user", numbers: dict[str, float] | None = None,
       categories: dict[str, str] | None = None) -> pb.Namespace:
    return pb.Namespace(name=name, numbers=numbers or {}, categories=categories or {})


OVER_A_LIMIT = {
    "namespace name": ([ns("n" * 9)], [], "`context[0].name`", "--max-name-length"),
    "feature name": ([ns(numbers={"f" * 9: 1.0})], [], "`context[0].numbers`", "--max-name-length"),
    "category name": ([ns(categories={"c" * 9: "v"})], [], "`context[0].categories`",
                      "--max-name-length"),
    "category value": ([ns(categories={"c": "v" * 7})], [], "`context[0].categories['c']`",
                       "--max-value-length"),
    "features per namespace": ([ns(numbers={"a": 1.0, "b": 2.0}, categories={"c": "x", "d": "y"})],
                               [], "`context[0]`", "--max-features-per-namespace"),
    "namespaces": ([ns("u"), ns("v")], [[ns("i")], [ns("i")], [ns("i")]],
                   "`actions[2].features`", "--max-namespaces"),
    "features": ([ns(numbers={"a": 1.0, "b": 2.0, "c": 3.0})],
                 [[ns("i", {"p": 1.0, "q": 2.0})], [ns("i", {"p": 1.0, "q": 2.0, "r": 3.0})]],
                 "`actions[1].features[0]`", "--max-features"),
    "an action's feature name": ([], [[ns("i", {"p": 1.0})], [ns("i", {"p" * 9: 1.0})]],
                                 "`actions[1].features[0].numbers`", "--max-name-length"),
}


@pytest.fixture
def small_limits(start_server: Callable[..., App]) -> App:
    return start_server(limits=SMALL)


@pytest.mark.parametrize("case", OVER_A_LIMIT)
def test_a_request_over_a_limit_is_invalid_naming_the_field_and_writes_nothing(
        case: str, small_limits: App) -> None:
    context, features, field, flag = OVER_A_LIMIT[case]
    offered = [pb.Action(id=f"a{k}", features=f) for k, f in enumerate(features)] or actions("a")
    before = count_rows(small_limits.settings.db)
    with channel_to(small_limits) as channel, pytest.raises(grpc.RpcError) as raised:
        decision_pb2_grpc.DecisionServiceStub(channel).Choose(
            pb.ChooseRequest(experiment="homepage", context=context, actions=offered), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in raised.value.details()
    assert flag in raised.value.details()
    assert count_rows(small_limits.settings.db) == before


def test_a_request_at_every_limit_is_served(small_limits: App) -> None:
    request = pb.ChooseRequest(
        experiment="homepage",
        context=[ns("n" * 8, {"f" * 8: 1.0, "g": 2.0}, {"c" * 8: "v" * 6}), ns("u")],
        actions=[pb.Action(id="a", features=[ns("i", {"p": 1.0, "q": 1.0})]),
                 pb.Action(id="b", features=[ns("i", {"p": 2.0, "q": 1.0})])])
    with channel_to(small_limits) as channel:
        assert decision_pb2_grpc.DecisionServiceStub(channel).Choose(request, timeout=5).action_id


def test_a_request_of_a_thousand_actions_with_200_unique_features_each_is_refused(
        server: App) -> None:
    """The 3.7 MB request of the issue: 200,000 features, over the default 50,000."""
    request = pb.ChooseRequest(experiment="homepage", actions=[
        pb.Action(id=f"a{k}", features=[ns("item", {f"f{k}_{j}": 1.0 for j in range(200)})])
        for k in range(1000)])
    assert request.ByteSize() > 3_500_000
    with channel_to(server) as channel, pytest.raises(grpc.RpcError) as raised:
        decision_pb2_grpc.DecisionServiceStub(channel).Choose(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over 50000 features (--max-features)" in raised.value.details()
    assert count_rows(server.settings.db)["decisions"] == 0


# -------------------------------------------------------------------------- undecodable bodies
GARBAGE = [b"\xff", b"\x0a\x05ab", b"\x0a\x02\xff\xfe", b"\x12\x80", b"\x22\x03\x0a\x01",
           b"\x07" * 20, bytes(range(256))]


def test_undecodable_bodies_are_invalid_argument_logged_at_most_once_a_second(
        server: App, caplog: pytest.LogCaptureFixture) -> None:
    before = count_rows(server.settings.db)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    refused = 0
    with channel_to(server) as channel:
        for method, message in REQUESTS.items():
            call = channel.unary_unary(method)  # bytes in, bytes out
            for body in GARBAGE:
                try:
                    message.FromString(body)
                except Exception:  # undecodable here: so it must be there
                    for _ in range(20):
                        with pytest.raises(grpc.RpcError) as raised:
                            call(body, timeout=5)
                        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, body)
                        assert "cannot be decoded" in raised.value.details()
                        refused += 1
    elapsed = time.monotonic() - started
    assert refused >= 20 * len(REQUESTS) * 3

    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None for r in lines), "no traceback per request"
    assert {r.name for r in lines} == {"arbiter.server.decoding"}
    assert 1 <= len(lines) <= math.ceil(elapsed) + 1
    assert count_rows(server.settings.db) == before
    with channel_to(server) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


# ------------------------------------------------------------------------------------ admin
def test_traffic_weights_whose_sum_overflows_are_invalid(start_server: Callable[..., App]) -> None:
    app = start_server(TWO_VARIANTS)
    versions = _versions(app)
    with channel_to(app) as channel, pytest.raises(grpc.RpcError) as raised:
        experiments_pb2_grpc.ExperimentServiceStub(channel).SetTraffic(
            experiments_pb2.SetTrafficRequest(
                experiment="homepage", traffic={"champion": 1e308, "challenger": 1e308}),
            timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "`traffic`" in raised.value.details()
    assert _versions(app) == versions


@pytest.mark.parametrize("weights", [{"champion": 1e308, "challenger": 1.0}, {"champion": 1e308},
                                     {"champion": 5e-324}, {"champion": 1e300, "challenger": 1e-300}])
def test_extreme_but_finite_traffic_weights_are_served(
        start_server: Callable[..., App], weights: dict[str, float]) -> None:
    app = start_server(TWO_VARIANTS)
    with channel_to(app) as channel:
        answer = experiments_pb2_grpc.ExperimentServiceStub(channel).SetTraffic(
            experiments_pb2.SetTrafficRequest(experiment="homepage", traffic=weights), timeout=5)
    shares = {v.name: v.traffic for v in answer.variants}
    assert shares["champion"] == pytest.approx(1.0)
    assert app.experiments["homepage"].table.count("champion") == 10_000


def test_a_long_promotion_reason_or_experiment_name_is_invalid(
        start_server: Callable[..., App]) -> None:
    app = start_server(TWO_VARIANTS)
    versions = _versions(app)
    with channel_to(app) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        for request, field in [
                (experiments_pb2.PromoteRequest(experiment="homepage", variant="challenger",
                                                reason="r" * 1_000_000), "`reason`"),
                (experiments_pb2.PromoteRequest(experiment="h" * 100_000, variant="challenger"),
                 "`experiment`")]:
            with pytest.raises(grpc.RpcError) as raised:
                stub.Promote(request, timeout=5)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in raised.value.details()
    assert _versions(app) == versions


def _versions(app: App) -> int:
    with app.engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM experiment_states")).scalar_one())


# ---------------------------------------------------------------------------- load shedding
def _block_commits(app: App) -> threading.Event:
    """Make the writer wait inside its next transaction until the returned event is set."""
    gate = threading.Event()
    real = app.writer._transaction

    def held(connection: sa.Connection, ops: list[Any], plain: bool) -> Any:
        gate.wait(30)
        return real(connection, ops, plain)

    app.writer._transaction = held  # type: ignore[method-assign]
    return gate


def _wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_full_write_queue_is_resource_exhausted_at_once(start_server: Callable[..., App]) -> None:
    app = start_server(max_queued_writes=1)
    gate = _block_commits(app)
    request = pb.ChooseRequest(experiment="homepage", actions=actions("a", "b"))
    try:
        with channel_to(app) as channel:
            choose = decision_pb2_grpc.DecisionServiceStub(channel).Choose
            first = choose.future(request, timeout=30)  # taken by the writer, held
            _wait_until(lambda: app.writer.pending == 0 and count_rows(app.settings.db) is not None
                        and first.running())
            time.sleep(0.2)
            second = choose.future(request, timeout=30)  # waits in the queue
            _wait_until(lambda: app.writer.pending == 1)

            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                choose(request, timeout=30)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() - started < 2, "answered at once, not after the queue drained"
            assert "write queue is full" in raised.value.details()
            gate.set()
            assert first.result().action_id and second.result().action_id
    finally:
        gate.set()
    assert count_rows(app.settings.db)["decisions"] == 2


def test_calls_beyond_max_concurrent_rpcs_are_resource_exhausted(
        start_server: Callable[..., App]) -> None:
    app = start_server(max_concurrent_rpcs=2)
    gate = _block_commits(app)
    request = pb.ChooseRequest(experiment="homepage", actions=actions("a", "b"))
    try:
        with channel_to(app) as channel:
            choose = decision_pb2_grpc.DecisionServiceStub(channel).Choose
            held = [choose.future(request, timeout=30) for _ in range(2)]
            _wait_until(lambda: app.writer.pending == 1)  # one in the held batch, one queued
            with pytest.raises(grpc.RpcError) as raised:
                choose(request, timeout=30)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            gate.set()
            assert all(f.result().action_id for f in held)
    finally:
        gate.set()


# --------------------------------------------------------------------------- a lost SQLite file
@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[tuple[App, Path]]:
    path = tmp_path / "arbiter.db"
    for start in running_apps(f"sqlite:///{path}", default_config=None):
        yield start(TWO_VARIANTS, tick_seconds=0.1), path


def _serving(app: App) -> int:
    with channel_to(app) as channel:
        return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_file_deleted_or_replaced_is_noticed_within_a_tick(
        sqlite_app: tuple[App, Path], how: str, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    app, path = sqlite_app
    request = pb.ChooseRequest(experiment="homepage", actions=actions("a", "b"))
    with channel_to(app) as channel:
        decision_pb2_grpc.DecisionServiceStub(channel).Choose(request, timeout=5)
    caplog.set_level(logging.ERROR)

    if how == "deleted":
        path.unlink()
    else:
        other = tmp_path / "other.db"
        sa.create_engine(f"sqlite:///{other}").dispose()
        with sa.create_engine(f"sqlite:///{other}").connect() as connection:
            connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            connection.commit()
        os.replace(other, path)

    _wait_until(lambda: _serving(app) == health_pb2.HealthCheckResponse.NOT_SERVING, seconds=2)
    with channel_to(app) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as raised:
                stub.Choose(request, timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    said = [r.getMessage() for r in caplog.records if f"was {how}" in r.getMessage()]
    assert len(said) == 1 and str(path) in said[0] and "NOT_SERVING" in said[0]
    time.sleep(0.3)  # a commit or a probe does not bring it back
    assert _serving(app) == health_pb2.HealthCheckResponse.NOT_SERVING
