"""The echo baseline of ``make bench`` answers through a real channel, like the real server."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc
from bench.echo import CHOOSE_RESPONSE, STACKS
from bench.load import choose_requests
from tests.process import ROOT


@pytest.mark.parametrize("stack", STACKS)
def test_echo_answers_the_workload_with_its_fixed_replies_and_exits_0_on_sigterm(stack: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bench.echo", "--listen", "127.0.0.1:0",
                             "--stack", stack],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("arbiter listening on 127.0.0.1:")
        target = line.removeprefix("arbiter listening on ").strip()
        with grpc.insecure_channel(target) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            choice = stub.Choose(choose_requests(seed=0)[0], timeout=5)
            reward = stub.Reward(pb.RewardRequest(event_id=choice.event_id, value=1.0), timeout=5)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert choice == CHOOSE_RESPONSE
    assert len(choice.ranking) == 10
    assert reward.learned
    assert proc.returncode == 0, err
