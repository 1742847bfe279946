"""Scraping Arbiter's metrics endpoint over real HTTP and reading the samples."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from arbiter.client import Choice, DecisionClient
from arbiter.log.schema import decisions, learnings
from tests.process import ServerProcess

METRICS_LINE = "arbiter metrics on "
CHOOSE = "/arbiter.v1.DecisionService/Choose"
REWARD = "/arbiter.v1.DecisionService/Reward"
# Two serving variants, rewards in a window long enough that none closes during a test.
CONFIG = """
[experiments.banner]
control = "a"
reward_wait_seconds = 600

[[experiments.banner.variants]]
name = "a"
policy = "epsilon_greedy"
params = { epsilon = 0.3 }
traffic = 0.5

[[experiments.banner.variants]]
name = "b"
policy = "linucb"
traffic = 0.5
"""
ACTIONS = ["x", "y", "z"]
DECISIONS = 40


def choose(client: DecisionClient, i: int) -> Choice:
    """Decision ``i`` of unit ``unit-i`` in CONFIG's experiment."""
    return client.choose("banner", context={"user": {"age": float(i % 7)}}, actions=ACTIONS,
                         unit_id=f"unit-{i}")


def choose_all(client: DecisionClient, n: int) -> list[Choice]:
    return [choose(client, i) for i in range(n)]


def positions_in_log(db: str) -> dict[str, int]:
    """Per variant: the seq of the last learned event of a decision it served, from the log."""
    engine = sa.create_engine(db)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(decisions.c.variant, sa.func.max(learnings.c.seq))
                .join(decisions, decisions.c.event_id == learnings.c.event_id)
                .group_by(decisions.c.variant)).all()
    finally:
        engine.dispose()
    return {variant: int(seq) for variant, seq in rows}


class Scrape:
    """One scrape: every sample by name and labels, and the metric families' names."""

    def __init__(self, text: str) -> None:
        self.families: set[str] = set()
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            self.families.add(family.name)
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float | None:
        """The sample ``name`` with exactly ``labels``; None when absent."""
        return self.samples.get((name, frozenset(labels.items())))

    def by(self, name: str, label: str, **where: str) -> dict[str, float]:
        """``name``'s samples whose labels include ``where``, keyed by ``label``'s value."""
        found: dict[str, float] = {}
        for (sample, labels), value in self.samples.items():
            values = dict(labels)
            if sample == name and all(values.get(k) == v for k, v in where.items()):
                found[values[label]] = found.get(values[label], 0.0) + value
        return found

    def names(self) -> set[str]:
        """Every sample name (``arbiter_rpc_seconds_bucket``, ...) and family name."""
        return self.families | {name for name, _ in self.samples}


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return Scrape(response.read().decode())


def wait_for_scrape(url: str, condition: Callable[[Scrape], Any], what: str,
                    timeout: float = 30) -> Scrape:
    """Scrape until ``condition`` holds (gauges under --processes are written every tick)."""
    deadline = time.monotonic() + timeout
    while True:
        found = scrape(url)
        if condition(found):
            return found
        if time.monotonic() > deadline:
            shown = {name: dict(labels) | {"value": value}
                     for (name, labels), value in found.samples.items()
                     if not name.endswith(("_bucket", "_created"))}
            raise AssertionError(f"{what}: not within {timeout}s; last scrape {shown}")
        time.sleep(0.2)


def metrics_server(config: Path, db: str, *extra: str, processes: int = 1) -> tuple[ServerProcess, str]:
    """``arbiter serve --metrics-listen 127.0.0.1:0 ...`` and the metrics URL it printed."""
    server = ServerProcess(config, db, "--metrics-listen", "127.0.0.1:0", *extra,
                           processes=processes)
    assert server.proc.stdout is not None
    line = server.proc.stdout.readline()
    if not line.startswith(METRICS_LINE):
        server.kill()
        raise AssertionError(f"no metrics line after the ready line: {line!r}")
    return server, line.removeprefix(METRICS_LINE).strip()
