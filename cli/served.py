"""What an experiment serves — its champion and each variant's policy and parameters — read from
a running server (``ExperimentService.GetExperiment``) or from an experiments TOML file, and the
``Promote`` call of ``arbiter evaluate --promote-if-better``. The only gRPC of ``evaluate``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import grpc

from arbiter.client import Connection
from arbiter.evaluation.replay import CandidateSpec
from arbiter.server.config import load_config
from arbiter.v1 import experiments_pb2, experiments_pb2_grpc

__all__ = ["Served", "from_config", "from_server", "promote"]

TIMEOUT = 10.0
"""Seconds each call to the server may take."""


@dataclass(frozen=True)
class Served:
    """An experiment as served: the champion ``control`` and every variant's configuration
    (shadows included), in configured order."""

    control: str
    variants: dict[str, CandidateSpec]


def from_server(target: str, experiment: str, connection: Connection) -> Served:
    """The experiment as the server at ``target`` serves it now (after any promotion)."""
    with connection.channel(target) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        served = stub.GetExperiment(experiments_pb2.GetExperimentRequest(experiment=experiment),
                                    timeout=TIMEOUT, metadata=connection.metadata)
    return Served(control=served.control, variants={
        v.name: CandidateSpec(name=v.name, policy=v.policy, params=json.loads(v.params_json or "{}"))
        for v in served.variants})


def from_config(path: str | Path, experiment: str) -> Served:
    """The experiment as configured in the TOML file at ``path``; KeyError if it has none."""
    config = load_config(path)[experiment]
    return Served(control=config.control, variants={
        v.name: CandidateSpec(name=v.name, policy=v.policy, params=dict(v.params)) for v in config.variants})


def promote(target: str, experiment: str, variant: str, reason: str, connection: Connection) -> None:
    """Make ``variant`` the champion on the server at ``target`` (needs the admin role)."""
    with connection.channel(target) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        stub.Promote(experiments_pb2.PromoteRequest(experiment=experiment, variant=variant, reason=reason),
                     timeout=TIMEOUT, metadata=connection.metadata)


def describe_error(error: grpc.RpcError) -> str:
    """A gRPC failure as one line: the status and the server's message."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    return f"{code.name if code else 'error'}: {details}"
