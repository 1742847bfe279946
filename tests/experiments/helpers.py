"""Shared helpers for the experiment tests: a simulated world with a known best policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import numpy as np

from arbiter.client import DecisionClient
from arbiter.server.app import App
from arbiter.v1 import experiments_pb2 as pb
from arbiter.v1 import experiments_pb2_grpc

ACTIONS = ["low", "mid", "high"]
TIERS = ["free", "gold"]
# click probability per (tier, action): "high" is best for everyone, "low" worst
CLICK = {"free": {"low": 0.2, "mid": 0.45, "high": 0.7},
         "gold": {"low": 0.3, "mid": 0.55, "high": 0.9}}


def target(app: App) -> str:
    return f"127.0.0.1:{app.port}"


@contextmanager
def admin(app: App) -> Iterator[experiments_pb2_grpc.ExperimentServiceStub]:
    with grpc.insecure_channel(target(app)) as channel:
        yield experiments_pb2_grpc.ExperimentServiceStub(channel)


def report(app: App, experiment: str, segment_by: str = "") -> pb.Report:
    with admin(app) as stub:
        return stub.GetReport(pb.GetReportRequest(experiment=experiment, segment_by=segment_by))


def true_value(action_probabilities: dict[str, float]) -> float:
    """Expected reward of a context-free policy when tiers are equally likely."""
    return float(np.mean([sum(p * CLICK[t][a] for a, p in action_probabilities.items())
                          for t in TIERS]))


def fixed_distribution(action: str, floor: float) -> dict[str, float]:
    return {a: (1 - floor) * (a == action) + floor / len(ACTIONS) for a in ACTIONS}


def drive(client: DecisionClient, experiment: str, events: int, rng: np.random.Generator, *,
          units: int | None = None, prefix: str = "u",
          tag: str = "") -> list[tuple[str, str]]:
    """Choose + Reward ``events`` times; returns (unit, variant) per event."""
    seen = []
    for i in range(events):
        unit = f"{prefix}{rng.integers(units) if units else i}"
        tier = TIERS[int(rng.integers(len(TIERS)))]
        choice = client.choose(experiment, unit_id=unit, context={"user": {"tier": tier}},
                               actions=ACTIONS, event_id=f"{experiment}-{tag}{prefix}{i}")
        client.reward(choice.event_id, float(rng.random() < CLICK[tier][choice.action_id]))
        seen.append((unit, choice.variant))
    return seen
