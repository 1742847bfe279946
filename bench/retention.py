"""``python -m bench.retention``: one retention pass deleting ~1M rows of an expired PostgreSQL log.

A throwaway cluster (:mod:`bench.postgres`, fsync on) and a fresh database at head. The log is
``--decisions`` decisions, each with a reward and a learned event (3 rows each: 333,334
decisions are 1,000,002 rows), learned ten days ago, written with ``INSERT ... SELECT
generate_series`` (the decision JSON of a small Choose: 2 actions, one namespace), and a cut
at the last seq (every variant snapshotted there). Then the coordinator's pass
(:class:`server.retention.Retention`, ``retention_days = 1``, batches of ``--batch``
decisions, each batch its own transaction) deletes all of it, while a writer thread commits
what the group-commit writer does for a learned decision (a decision, ``take_seqs`` on
``learning_order``, a learned event) every few milliseconds.

Reported: rows deleted per second, the batches' latency (p50, p99, max), the writer's commit
latency before and during the pass (the pass never takes the ``learning_order`` lock, so the
writers should not wait for it), then ``VACUUM (ANALYZE)`` time and the tables' size before the
pass, after it, and after the vacuum (a plain VACUUM makes the space reusable; it does not give
it back to the operating system — ``VACUUM FULL`` would, under an exclusive lock).

    python -m bench.retention                     # 333,334 decisions: ~1M rows
    python -m bench.retention --decisions 100000 --batch 10000
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from arbiter.log import store
from arbiter.log.engine import create_engine
from arbiter.log.migrate import upgrade
from arbiter.log.store import DecisionRecord, Learning
from arbiter.policies import Decision, Namespace
from arbiter.server import retention as retention_module
from arbiter.server.clock import utc_now
from arbiter.server.config import parse_config
from arbiter.server.experiments import Experiment
from arbiter.server.fold import Fold
from arbiter.server.retention import Retention
from arbiter.server.snapshots import Snapshotter
from bench.postgres import cluster, database

EXPERIMENT = "homepage"
CONFIG = {"experiments": {EXPERIMENT: {"policy": "linucb", "retention_days": 1}}}
TABLES = ("decisions", "rewards", "learnings", "windows", "activations", "snapshots")
CONTEXT = '[{"name":"user","numbers":{"age":31.0},"categories":{"country":"DE"}}]'
ACTIONS = '[{"id":"a","features":[]},{"id":"b","features":[]}]'


def fill(url: str, count: int) -> int:
    """``count`` learned decisions with a reward each, ten days old; returns rows written."""
    engine = create_engine(url)
    upgrade(engine)
    start = utc_now() - timedelta(days=10)
    with engine.begin() as connection:
        params = {"n": count, "t0": start, "context": CONTEXT, "actions": ACTIONS}
        connection.execute(sa.text(
            "INSERT INTO decisions (event_id, experiment, variant, model_version, unit_hash, "
            "context, actions, distribution, chosen_index, chosen_action, probability, shadow, "
            "deferred, created_at) "
            "SELECT 'e' || g, :experiment, 'default', 'linucb@0', md5(g::text), "
            "CAST(:context AS json), CAST(:actions AS json), CAST('[0.5, 0.5]' AS json), g % 2, "
            "CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, 0.5, CAST('{}' AS json), false, "
            ":t0 + g * interval '1 millisecond' FROM generate_series(1, :n) AS g"),
            {**params, "experiment": EXPERIMENT})
        connection.execute(sa.text(
            "INSERT INTO rewards (event_id, reward_id, value, learned, received_at, dedupe_key) "
            "SELECT 'e' || g, NULL, (g % 3 = 0)::int, true, "
            ":t0 + g * interval '1 millisecond' + interval '1 second', "
            "'value:' || (g % 3 = 0)::int || '.0' FROM generate_series(1, :n) AS g"), params)
        connection.execute(sa.text(
            "INSERT INTO learnings (seq, event_id, experiment, value, learned_at) "
            "SELECT g, 'e' || g, :experiment, (g % 3 = 0)::int, "
            ":t0 + g * interval '1 millisecond' + interval '1 second' "
            "FROM generate_series(1, :n) AS g"), {**params, "experiment": EXPERIMENT})
        connection.execute(sa.text("UPDATE learning_order SET last_seq = :n WHERE id = 1"),
                           params)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            sa.text("VACUUM (ANALYZE)"))
    engine.dispose()
    return 3 * count


@dataclass
class Writer:
    """A thread committing one learned decision per transaction, as the group-commit writer
    does, and recording each commit's latency with the time it started."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    commits: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)

    def run(self) -> None:
        engine = create_engine(self.url, writer=True)
        decision = Decision(context=(Namespace("user", {"age": 31.0}, {"country": "DE"}),),
                            action_ids=("a", "b"), action_features=((), ()))
        while not self.stop.wait(0.005):
            now = utc_now()
            record = DecisionRecord(
                event_id=f"live-{uuid.uuid4()}", experiment=EXPERIMENT, variant="default",
                model_version="linucb@0", unit_hash=None, decision=decision,
                distribution=(0.5, 0.5), chosen=0, shadow={}, deferred=True, created_at=now)
            started = time.perf_counter()
            with engine.begin() as connection:
                store.insert_decisions(connection, [record])
                seq = store.take_seqs(connection, 1)
                store.insert_learnings(connection, seq, [Learning(
                    experiment=EXPERIMENT, event_id=record.event_id, value=1.0, learned_at=now)])
            self.commits.append((started, time.perf_counter() - started))
        engine.dispose()


def sizes(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return sum(int(connection.execute(sa.text(
                f"SELECT pg_total_relation_size('{table}')")).scalar_one()) for table in TABLES)
    finally:
        engine.dispose()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


def measure(url: str, count: int, batch: int, console: Console) -> dict[str, Any]:
    with console.status(f"writing {count:,} decisions, rewards and learned events"):
        rows = fill(url, count)
    before = sizes(url)
    engine = create_engine(url)
    experiments = {EXPERIMENT: Experiment(parse_config(CONFIG)[EXPERIMENT])}
    fold = Fold(engine, experiments, utc_now)
    fold.applied = count  # the cut: every variant at the last seq
    snapshots = Snapshotter(engine, experiments, fold)
    assert snapshots.cut(EXPERIMENT) == count
    batches: list[float] = []
    delete_events = store.delete_events

    def timed(connection: sa.Connection, event_ids: Any) -> store.Deleted:
        started = time.perf_counter()
        try:
            return delete_events(connection, event_ids)
        finally:
            batches.append(time.perf_counter() - started)

    retention_module.store.delete_events = timed  # type: ignore[attr-defined]
    writer = Writer(url)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(3.0)  # the writer's commits before the pass
    with console.status(f"retention pass, batches of {batch:,} decisions"):
        started = time.perf_counter()
        passed = time.perf_counter()
        done = Retention(engine, experiments, snapshots, batch=batch).run()[EXPERIMENT]
        seconds = time.perf_counter() - started
    ended = time.perf_counter()
    time.sleep(1.0)
    writer.stop.set()
    thread.join()
    retention_module.store.delete_events = delete_events  # type: ignore[attr-defined]
    after = sizes(url)
    with engine.connect() as connection:
        vacuum_started = time.perf_counter()
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            sa.text("VACUUM (ANALYZE)"))
        vacuum = time.perf_counter() - vacuum_started
    vacuumed = sizes(url)
    engine.dispose()
    idle = [s for t, s in writer.commits if t < passed]
    busy = [s for t, s in writer.commits if passed <= t < ended]
    assert done.rows == rows, (done, rows)
    return {"rows": done.rows, "seconds": seconds, "batches": batches, "idle": idle,
            "busy": busy, "vacuum": vacuum, "before": before, "after": after,
            "vacuumed": vacuumed}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=333_334,
                        help="expired decisions (3 rows each: decision, reward, learned event)")
    parser.add_argument("--batch", type=int, default=retention_module.BATCH,
                        help="decisions per transaction")
    args = parser.parse_args()
    console = Console()
    with cluster() as server, database(server) as url:
        found = measure(url, args.decisions, args.batch, console)
    table = Table(title=f"Retention pass on PostgreSQL: {found['rows']:,} rows "
                        f"({args.decisions:,} decisions), batches of {args.batch:,}")
    table.add_column("what")
    table.add_column("figure", justify="right")
    ms = [1e3 * b for b in found["batches"]]
    table.add_row("pass", f"{found['seconds']:.1f} s")
    table.add_row("rows deleted / s", f"{found['rows'] / found['seconds']:,.0f}")
    table.add_row("batch (decisions + joined rows) p50 / p99 / max",
                  f"{statistics.median(ms):.0f} / {percentile(ms, 0.99):.0f} / {max(ms):.0f} ms")
    for label, values in (("writer commit before the pass", found["idle"]),
                          ("writer commit during the pass", found["busy"])):
        commits = [1e3 * v for v in values]
        table.add_row(f"{label} p50 / p99 (n)",
                      f"{statistics.median(commits):.1f} / {percentile(commits, 0.99):.1f} ms "
                      f"({len(commits)})")
    table.add_row("VACUUM (ANALYZE) after", f"{found['vacuum']:.1f} s")
    table.add_row("log tables before / after / after VACUUM",
                  f"{found['before'] / 2**20:.0f} / {found['after'] / 2**20:.0f} / "
                  f"{found['vacuumed'] / 2**20:.0f} MiB")
    console.print(table)
    console.print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
