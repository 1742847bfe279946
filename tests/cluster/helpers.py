"""Shared by the cluster tests: bounded waits, reading the log, and servers whose log is read live."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from arbiter.client import DecisionClient
from arbiter.log.engine import create_engine
from arbiter.v1 import decision_pb2 as pb
from tests.process import ROOT, ServerProcess

COORDINATOR_LINE = "this process is the coordinator"

VW_FIRST_USE = """
import threading
import numpy as np
from arbiter.policies import Decision, Namespace, create

decision = Decision((Namespace("user", numbers={"x": 1.0}, categories={}),), ("a", "b"), ((), ()))
policies = [create("vw", {}) for _ in range(2)]  # two variants: two workspaces, two locks
start = threading.Barrier(2)

def first_call(policy):
    start.wait()
    policy.distribution(decision, np.random.default_rng(0))

threads = [threading.Thread(target=first_call, args=(p,)) for p in policies]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""
"""Two threads of a fresh interpreter make their first VW call (``push_many_features``) at once
— as the event loops of servers in one process do, or one server's event loop and its tail."""


@functools.cache
def vw_first_use_deadlocks(attempts: int = 3, timeout: float = 10) -> bool:
    """Whether :data:`VW_FIRST_USE` hangs (it finishes in a second or two otherwise). It is a
    race, lost about four times in five here: up to ``attempts`` fresh interpreters."""
    for _ in range(attempts):
        try:
            subprocess.run([sys.executable, "-c", VW_FIRST_USE], cwd=ROOT, timeout=timeout,
                           check=True, capture_output=True)
        except subprocess.TimeoutExpired:
            return True
    return False


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def query(db: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement on ``db`` (a fresh engine: no state shared with a server)."""
    engine = create_engine(db)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def reward(client: DecisionClient, event_id: str, value: float, reward_id: str = "",
           timeout: float = 10) -> str:
    """Reward through ``client``'s channel with an optional ``reward_id`` (a proto field the
    client wrapper does not take): ``"learned"``, ``"not learned"``, or the status's name
    (``"ALREADY_EXISTS"``, ``"UNAVAILABLE"``, ...)."""
    request = pb.RewardRequest(event_id=event_id, value=value, reward_id=reward_id)
    try:
        response = client._stub.Reward(request, timeout=timeout)
    except grpc.RpcError as error:
        return str(error.code().name)
    return "learned" if response.learned else "not learned"


class LoggedServer(ServerProcess):
    """A ``ServerProcess`` at ``--log-level INFO`` whose stderr is read as it is written, so
    the test can see what it logged so far (e.g. that it took the coordinator role) while it
    runs; ``kill()`` and ``stop()`` end the reader too."""

    def __init__(self, config: Path, db: str, *extra: str) -> None:
        super().__init__(config, db, "--log-level", "INFO", *extra)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self._lines.append(line)

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        with self._lock:
            return "".join(self._lines)

    def coordinates(self) -> bool:
        """Whether the server logged that it took the coordinator role."""
        return COORDINATOR_LINE in self.log()

    def kill(self) -> None:
        """``kill -9``."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        """SIGTERM and wait; returns (exit code, rest of stdout, stderr)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except Exception:
            self.proc.kill()
            raise
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        return self.proc.returncode, self.proc.stdout.read(), self.log()
