"""PostgreSQL stops mid-run: UNAVAILABLE and NOT_SERVING (and ``arbiter_database_up`` 0); it
returns: SERVING, nothing lost."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arbiter.client import DecisionClient, UnavailableError
from arbiter.server.app import App, Settings
from arbiter.server.config import parse_config
from tests.metrics.helpers import scrape
from tests.postgres import Cluster, cluster_or_skip, secret_file

CONFIG = {"experiments": {"homepage": {"policy": "linucb"}}}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A cluster of this test's own, since the test stops and starts it."""
    own = cluster_or_skip()
    yield own
    own.destroy()


def health_status(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="arbiter.v1.DecisionService"), timeout=5).status


def wait_for(predicate, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_a_database_outage_fails_fast_and_service_resumes_on_its_own(cluster: Cluster) -> None:
    app = App(Settings(listen="127.0.0.1:0", db=cluster.url, tick_seconds=0.2,
                       secret_file=secret_file(), metrics_listen="127.0.0.1:0"),
              parse_config(CONFIG))
    app.start()
    target = f"127.0.0.1:{app.port}"
    metrics = f"http://{app.metrics_address}/metrics"
    try:
        with DecisionClient(target, timeout=10) as client:
            before = client.choose("homepage", actions=["a", "b"])
            rewarded = client.choose("homepage", actions=["a", "b"])
            client.reward(rewarded.event_id, 1.0)

            cluster.stop()
            started = time.monotonic()
            with pytest.raises(UnavailableError):
                client.choose("homepage", actions=["a", "b"])
            assert time.monotonic() - started < 5  # fails fast, not at the deadline
            with pytest.raises(UnavailableError):
                client.reward(before.event_id, 1.0)
            assert health_status(target) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert scrape(metrics).value("arbiter_database_up") == 0

            cluster.start()
            assert wait_for(lambda: health_status(target) == health_pb2.HealthCheckResponse.SERVING)
            assert client.reward(before.event_id, 1.0).learned  # the earlier decision still joins
            after = client.choose("homepage", actions=["a", "b"])
            assert after.model_version.endswith("@2")  # both learned events, nothing lost
            assert scrape(metrics).value("arbiter_database_up") == 1
    finally:
        app.stop(grace=1)
