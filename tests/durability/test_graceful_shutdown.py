"""SIGTERM: in-flight calls finish, the writer drains, a final snapshot is written, exit 0."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from arbiter.client import ArbiterClientError, DecisionClient
from arbiter.log import store
from arbiter.log.schema import learnings
from tests.process import ROOT, ServerProcess


def test_sigterm_drains_snapshots_and_exits_0(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    server = ServerProcess(ROOT / "examples" / "experiments.toml", db, "--snapshot-every", "100000")
    acknowledged: list[str] = []
    running = threading.Event()

    def drive() -> None:
        with DecisionClient(server.target, timeout=10) as client:
            while True:
                try:
                    choice = client.choose("homepage", actions=["a", "b", "c"])
                    client.reward(choice.event_id, 1.0)
                except ArbiterClientError:
                    return
                acknowledged.append(choice.event_id)
                running.set()

    threads = [threading.Thread(target=drive) for _ in range(3)]
    for thread in threads:
        thread.start()
    running.wait(30)
    code, _, err = server.stop()
    for thread in threads:
        thread.join(30)

    assert code == 0, err
    engine = sa.create_engine(db)
    with engine.connect() as connection:
        learned = set(connection.execute(sa.select(learnings.c.event_id)).scalars())
    with engine.connect() as connection:
        snapshot = store.latest_snapshot(connection, "homepage", "default")
        last = store.last_seq(connection)
    engine.dispose()
    assert set(acknowledged) <= learned
    assert snapshot is not None
    assert snapshot["position"] == last
