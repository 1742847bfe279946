"""The composition root: engine, writer, experiments, loop, gRPC server with health and reflection."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from protos.arbiter.v1 import decision_pb2, decision_pb2_grpc
from server.config import ExperimentConfig
from server.convert import DEFAULT_MAX_ACTIONS
from server.experiments import Experiment
from server.interceptors import ErrorInterceptor
from server.loop import Clock, DecisionLoop, utc_now
from server.recovery import restore
from server.servicer import DecisionServicer
from server.storage.engine import create_engine
from server.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name,
    reflection.SERVICE_NAME,
    health.SERVICE_NAME,
)


@dataclass
class Settings:
    listen: str = "127.0.0.1:50051"
    db: str = "sqlite:///arbiter.db"
    max_actions: int = DEFAULT_MAX_ACTIONS
    workers: int = 32
    reuse_port: bool = False
    clock: Clock = field(default=utc_now)


class App:
    """A running Arbiter: ``start()`` binds and restores, ``stop()`` drains and closes."""

    def __init__(self, settings: Settings, configs: dict[str, ExperimentConfig]) -> None:
        self.settings = settings
        self.engine: sa.Engine = create_engine(settings.db)
        self.health = health.HealthServicer()
        self._set_health(False)
        self.writer = GroupCommitWriter(self.engine, on_health=self._set_health)
        self.experiments = {name: Experiment(config) for name, config in configs.items()}
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers,
                                       thread_name_prefix="arbiter-rpc"),
            interceptors=[ErrorInterceptor()],
            options=[("grpc.so_reuseport", 1 if settings.reuse_port else 0)],
        )
        self.loop: DecisionLoop | None = None
        self.port = 0
        self._stopped = False

    def start(self) -> str:
        """Restore the models from the log, bind, serve; returns ``HOST:PORT`` actually bound."""
        for experiment in self.experiments.values():
            restore(self.engine, experiment)
        self.loop = DecisionLoop(self.experiments, self.writer, self.engine,
                                 clock=self.settings.clock)
        decision_pb2_grpc.add_DecisionServiceServicer_to_server(
            DecisionServicer(self.loop, max_actions=self.settings.max_actions), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(SERVICE_NAMES, self.server)
        host = self.settings.listen.rsplit(":", 1)[0]
        self.port = self.server.add_insecure_port(self.settings.listen)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.settings.listen}")
        self.server.start()
        self._set_health(True)
        return f"{host}:{self.port}"

    def stop(self, grace: float = 10.0) -> None:
        """NOT_SERVING, finish in-flight calls, drain the writer, close the database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._set_health(False)
        self.server.stop(grace).wait()
        self.writer.close()
        self.engine.dispose()

    def _set_health(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", *SERVICE_NAMES[:1]):
            self.health.set(name, status)
