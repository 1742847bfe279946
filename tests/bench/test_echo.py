"""The echo baseline of ``make bench`` answers through a real channel, like the real server."""

from __future__ import annotations

import subprocess
import sys

import grpc

from bench.echo import CHOOSE_RESPONSE, start
from bench.load import choose_requests
from protos.arbiter.v1 import decision_pb2 as pb
from protos.arbiter.v1 import decision_pb2_grpc
from tests.process import ROOT


def test_echo_answers_the_benchmark_workload_with_its_fixed_replies() -> None:
    server, target = start("127.0.0.1:0")
    try:
        with grpc.insecure_channel(target) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            choice = stub.Choose(choose_requests(seed=0)[0], timeout=5)
            reward = stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=1.0), timeout=5)
    finally:
        server.stop(grace=None)
    assert choice == CHOOSE_RESPONSE
    assert len(choice.ranking) == 10
    assert reward.learned


def test_echo_command_prints_the_ready_line_and_exits_0_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bench.echo", "--listen", "127.0.0.1:0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("arbiter listening on 127.0.0.1:")
        target = line.removeprefix("arbiter listening on ").strip()
        with grpc.insecure_channel(target) as channel:
            choice = decision_pb2_grpc.DecisionServiceStub(channel).Choose(
                pb.ChooseRequest(experiment="any"), timeout=5)
        assert choice.action_id == CHOOSE_RESPONSE.action_id
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
