"""``arbiter serve`` as a process: one ready line, health, reflection, clean SIGTERM, config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from arbiter.client import DecisionClient
from tests.process import ROOT, ServerProcess

DEMO_CONFIG = ROOT / "examples" / "experiments.toml"


def test_serve_prints_one_ready_line_serves_health_and_reflection_and_exits_0_on_sigterm(
        tmp_path: Path) -> None:
    server = ServerProcess(DEMO_CONFIG, f"sqlite:///{tmp_path / 'a.db'}")
    try:
        host, port = server.target.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with grpc.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="arbiter.v1.DecisionService"), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            reflected = next(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
            names = {s.name for s in reflected.list_services_response.service}
            assert {"arbiter.v1.DecisionService", "grpc.health.v1.Health"} <= names
        with DecisionClient(server.target) as client:
            choice = client.choose("homepage", actions=["a", "b"])
            client.reward(choice.event_id, 1.0)
    finally:
        code, rest, err = server.stop()
    assert code == 0, err
    assert rest == ""  # exactly one line on stdout


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("config", "expected"), [
    ('[experiments.home]\npolicy = "nosuch"\n', ["home", "nosuch"]),
    ('[experiments.home]\npolicy = "linucb"\nparams = { alpah = 1.0 }\n', ["home", "alpah"]),
    ('[experiments.home]\npolicy = "linucb"\nparams = { alpha = -1.0 }\n', ["home", "alpha"]),
    ('[experiments.home]\npolicy = "linucb"\nreward_wait = 5\n', ["home", "reward_wait"]),
])
def test_a_bad_config_stops_the_server_at_start_naming_experiment_and_parameter(
        tmp_path: Path, config: str, expected: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0",
         "--db", f"sqlite:///{tmp_path / 'a.db'}", "--config", str(write_config(tmp_path, config))],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stdout == ""
    for word in expected:
        assert word in result.stderr
