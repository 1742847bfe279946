"""``make bench-lag``: how long a learned event takes to reach the other processes' models.

Two Arbiter servers (:class:`arbiter.server.app.App`, each in a process of its own, so they
share no GIL) run on one database -- a SQLite file, and a throwaway PostgreSQL cluster
(:mod:`bench.postgres`, fsync on) -- on ports of their own. The load generator (this process)
sends Choose at ``--rate`` decisions/s (``--rate 0``: as fast as ``--concurrency`` calls in
flight allow), alternating between the two servers, and rewards every decision right after
its answer, at the server that made it, so each learned event is committed by a known process.

Each server records, for every learned event it applies (``Fold.on_apply``), the wall-clock
moment it did. A process applies its own events right after their commit (the writer hands
them to the fold), so the **fold lag** of an event is

    (when the *other* process applied it) - (when the committing process applied it)

i.e. from just after the commit on one process to the application on the other: the tail's
poll (every ``Settings.tail_seconds``, 20 ms), its read and the apply. Reported as
p50/p90/p99/max over the events rewarded in the measured ``--seconds``, next to the servers'
own ``Fold.lag()`` (which counts from the reward's arrival, ``learned_at``, so it also holds
the committing process's queue and transaction).

Then, per database:

- **replay**: a fresh :class:`~arbiter.server.fold.Fold` refolds the whole log (no snapshots):
  learned events per second and CPU microseconds per event (the fold's, + PostgreSQL's for
  the reads) -- what every replica spends on every event another process learned;
- **database rates** (``--writers`` processes, ``--batch`` rows a transaction, ``--db-seconds``
  each, with copies of the run's logged decisions): decisions inserted per second (one
  multi-row INSERT, whose trigger opens each window, as the writer does), then learning commits per
  second (each: ``take_seqs`` on ``learning_order``, its learnings, the rewards, the windows
  deleted), which is the part every process serialises on; with the CPU each costs per row in
  the writers (SQLAlchemy, the driver; SQLite itself) and, for PostgreSQL, in its processes --
  the figures that size a database server.

    python -m bench.lag                          # what `make bench-lag` runs
    python -m bench.lag --db postgresql --rate 0 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import cycle
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import sqlalchemy as sa
from rich import box
from rich.console import Console
from rich.table import Table

from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc
from bench.load import (
    EXPERIMENT,
    choose_requests,
    cpu_seconds,
    descendants,
    machine_times,
    total_cpu,
)

CONFIG = {"experiments": {EXPERIMENT: {"policy": "linucb"}}}
SETTLE = 2.0
"""Seconds the servers get after the last reward to fold everything."""
START_TIMEOUT = 120.0


# ------------------------------------------------------------------------- the servers
def serve(db: str, tail_seconds: float, pipe: Connection, secret_file: str | None = None) -> None:
    """A server process: start an App on ``db``, send its address, record every apply (event id,
    wall-clock time, learned_at) until told to stop, then send the records and ``Fold.lag()``."""
    from arbiter.server.app import App, Settings
    from arbiter.server.config import parse_config

    logging.basicConfig(level=logging.WARNING)
    app = App(Settings(listen="127.0.0.1:0", db=db, tail_seconds=tail_seconds,
                       secret_file=secret_file), parse_config(CONFIG))
    applied: list[tuple[str, float, float]] = []

    def record(_experiment: Any, event: Any) -> None:
        learned_at = event.learned_at.timestamp() if event.learned_at is not None else math.nan
        applied.append((event.event_id, time.time(), learned_at))

    app.fold.on_apply(record)
    try:
        pipe.send(app.start())
        pipe.recv()  # stop
        lag = app.fold.lag()
        pipe.send((applied, lag, os.getpid()))
    finally:
        app.stop(grace=2)


@contextmanager
def servers(db: str, count: int,
            tail_seconds: float) -> Iterator[list[tuple[str, Connection, int]]]:
    """``count`` server processes on ``db``, started one after the other (the first creates the
    schema); yields (address, pipe, pid) per server; stops them after."""
    context = multiprocessing.get_context("spawn")
    started: list[tuple[Any, Connection]] = []
    secret_file = None
    if not db.startswith("sqlite"):  # PostgreSQL: every server's one secret (--secret-file)
        secret_file = os.path.join(tempfile.mkdtemp(prefix="arbiter-lag-"), "arbiter.secret")
        with open(secret_file, "w") as handle:
            handle.write(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
        os.chmod(secret_file, 0o600)
    try:
        out = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=serve, args=(db, tail_seconds, theirs, secret_file),
                                      daemon=True)
            process.start()
            started.append((process, ours))
            if not ours.poll(START_TIMEOUT):
                raise RuntimeError("a server did not start")
            out.append((ours.recv(), ours, process.pid or 0))
        yield out
    finally:
        for process, pipe in started:
            if process.is_alive():
                with suppress(OSError):
                    pipe.send("stop")
        for process, _ in started:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        if secret_file is not None:
            os.unlink(secret_file)
            os.rmdir(os.path.dirname(secret_file))


# ------------------------------------------------------------------------- the load
@dataclass
class Sent:
    """One decision and its reward: the server that made it, when the reward was answered."""

    server: int
    event_id: str
    rewarded_at: float


async def load(addresses: Sequence[str], rate: float, seconds: float, warmup: float,
               concurrency: int, seed: int) -> tuple[list[Sent], int, float]:
    """Choose + Reward pairs at ``rate``/s (0: closed loop) for ``warmup + seconds``, alternating
    servers; returns the pairs rewarded in the measured part, the errors and the achieved rate."""
    requests = cycle(choose_requests(seed))
    rng = random.Random(seed)
    channels = [grpc.aio.insecure_channel(address) for address in addresses]
    stubs = [decision_pb2_grpc.DecisionServiceStub(channel) for channel in channels]
    sent: list[Sent] = []
    errors = 0
    slots = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + seconds
    limit = int((rate or 20_000) * (warmup + seconds)) + 1  # bounded in count, too
    measured = 0

    async def pair(server: int) -> None:
        nonlocal errors, measured
        try:
            stub = stubs[server]
            answer = await stub.Choose(next(requests), timeout=10)
            await stub.Reward(pb.RewardRequest(event_id=answer.event_id,
                                               value=float(rng.random() < 0.5)), timeout=10)
            now = time.perf_counter()
            if measure_from <= now <= end:
                sent.append(Sent(server, answer.event_id, time.time()))
                measured += 1
        except grpc.aio.AioRpcError:
            errors += 1
        finally:
            slots.release()

    tasks = set()
    try:
        for number in range(limit):
            if rate:
                delay = start + number / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.perf_counter() >= end:
                break
            await slots.acquire()
            task = asyncio.create_task(pair(number % len(stubs)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        for channel in channels:
            await channel.close()
    return sent, errors, measured / seconds


# ------------------------------------------------------------------------- figures
@dataclass
class Lag:
    events: int
    missing: int
    p50: float
    p90: float
    p99: float
    worst: float
    server_p50: float
    server_p99: float
    rate: float
    errors: int
    others: float = math.nan  # share of all cores that other processes used during the load


def fold_lag(sent: Sequence[Sent], applied: Sequence[dict[str, float]],
             server_lags: Sequence[tuple[float, float, int] | None], rate: float,
             errors: int) -> Lag:
    """The other process's apply time minus the committing process's, per measured event (ms)."""
    lags = []
    missing = 0
    for item in sent:
        mine = applied[item.server].get(item.event_id)
        theirs = [times.get(item.event_id) for n, times in enumerate(applied) if n != item.server]
        if mine is None or any(t is None for t in theirs):
            missing += 1
            continue
        lags += [(t - mine) * 1e3 for t in theirs if t is not None]
    p50, p90, p99, worst = (np.percentile(lags, [50, 90, 99, 100]) if lags
                            else (math.nan,) * 4)
    known = [lag for lag in server_lags if lag is not None]
    server_p50 = max((lag[0] for lag in known), default=math.nan) * 1e3
    server_p99 = max((lag[1] for lag in known), default=math.nan) * 1e3
    return Lag(len(lags), missing, float(p50), float(p90), float(p99), float(worst),
               server_p50, server_p99, rate, errors)


@dataclass
class Replay:
    events: int
    seconds: float
    cpu: float
    database_cpu: float = math.nan  # PostgreSQL's processes' CPU seconds meanwhile

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else math.nan

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu / self.events if self.events else math.nan

    @property
    def database_us(self) -> float:
        return 1e6 * self.database_cpu / self.events if self.events else math.nan


def replay(db: str) -> Replay:
    """Refold the whole log into fresh models (no snapshot): events, wall and CPU seconds."""
    from arbiter.log.engine import create_engine
    from arbiter.server.clock import utc_now
    from arbiter.server.config import parse_config
    from arbiter.server.experiments import Experiment
    from arbiter.server.fold import Fold

    engine = create_engine(db)
    try:
        experiments = {name: Experiment(config) for name, config in parse_config(CONFIG).items()}
        fold = Fold(engine, experiments, utc_now)
        started, cpu = time.perf_counter(), time.process_time()
        fold.restore(use_snapshots=False)
        return Replay(fold.learned_events, time.perf_counter() - started,
                      time.process_time() - cpu)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------- database rates
@dataclass
class Rates:
    decisions_per_second: float
    decision_commits_per_second: float
    learned_per_second: float
    learning_commits_per_second: float
    lock_ms: float  # mean time from take_seqs to the end of the commit
    client_us_per_decision: float  # the writers' own CPU (SQLAlchemy, the driver; SQLite itself)
    server_us_per_decision: float  # PostgreSQL's processes' CPU (nan for SQLite)
    client_us_per_learned: float
    server_us_per_learned: float


def insert_worker(db: str, templates: list[dict[str, Any]], batch: int, seconds: float,
                  pipe: Connection) -> None:
    """Insert decision rows (the database's trigger opens their windows) ``batch`` a transaction
    for ``seconds``; then learn them the same way (take_seqs, learnings, rewards, windows
    deleted); send the counts back."""
    from arbiter.log import store
    from arbiter.log.engine import create_engine
    from arbiter.log.schema import decisions, rewards, windows
    from arbiter.log.store import Learning

    engine = create_engine(db, writer=True)
    ids: list[str] = []
    pipe.recv()  # go
    commits = 0
    started_cpu = time.process_time()
    pipe.send(started_cpu)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and len(ids) < 5_000_000:
        now = datetime.now(UTC)
        rows = [{**templates[(len(ids) + k) % len(templates)], "event_id": str(uuid.uuid4()),
                 "created_at": now} for k in range(batch)]
        with engine.begin() as connection:  # the database opens their windows (a trigger)
            store.insert_rows(connection, decisions, rows)
        ids += [row["event_id"] for row in rows]
        commits += 1
    inserted = (len(ids), commits, time.process_time())
    pipe.send(inserted)
    pipe.recv()  # go
    learned = commits = 0
    held = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and learned + batch <= len(ids):
        chunk = ids[learned:learned + batch]
        now = datetime.now(UTC)
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(windows.delete().where(windows.c.event_id.in_(chunk)))
            store.insert_rows(connection, rewards, [
                {"event_id": event_id, "reward_id": None, "value": 1.0, "learned": True,
                 "received_at": now, "dedupe_key": "value:1.0"} for event_id in chunk])
            locked = time.perf_counter()
            first = store.take_seqs(connection, len(chunk))
            store.insert_learnings(connection, first, [
                Learning(experiment=EXPERIMENT, event_id=event_id, value=1.0, learned_at=now)
                for event_id in chunk])
            transaction.commit()
            held += time.perf_counter() - locked
        learned += len(chunk)
        commits += 1
    pipe.send((learned, commits, held, time.process_time()))
    pipe.recv()  # the database's CPU was read: now its backends may go
    engine.dispose()


def database_rates(db: str, writers: int, batch: int, seconds: float) -> Rates:
    """``writers`` processes inserting, then learning, ``batch`` decisions a transaction."""
    from arbiter.log.engine import create_engine
    from arbiter.log.schema import decisions

    engine = create_engine(db)
    try:
        with engine.connect() as connection:
            templates = [dict(row) for row in connection.execute(
                sa.select(decisions).limit(200)).mappings()]
    finally:
        engine.dispose()
    for row in templates:
        row.pop("id", None)
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(writers):
        ours, theirs = context.Pipe()
        process = context.Process(target=insert_worker, args=(db, templates, batch, seconds, theirs),
                                  daemon=True)
        process.start()
        pipes.append(ours)
        processes.append(process)
    postmaster = postgres_postmaster(db)
    try:
        for pipe in pipes:
            pipe.send("go")
        started = [pipe.recv() for pipe in pipes]
        server_before = server_cpu(postmaster)
        inserted = [pipe.recv() for pipe in pipes]
        server_inserted = server_cpu(postmaster)
        for pipe in pipes:
            pipe.send("go")
        learned = [pipe.recv() for pipe in pipes]
        server_learned = server_cpu(postmaster)
        for pipe in pipes:
            pipe.send("done")
    finally:
        for process in processes:
            process.join(timeout=seconds * 3 + 30)
            if process.is_alive():
                process.kill()
                process.join()
    learned_commits = sum(c for _, c, _, _ in learned)
    decided = max(sum(n for n, _, _ in inserted), 1)
    learned_events = max(sum(n for n, _, _, _ in learned), 1)
    unit = math.nan if postmaster is None else 1e6
    return Rates(
        decisions_per_second=sum(n for n, _, _ in inserted) / seconds,
        decision_commits_per_second=sum(c for _, c, _ in inserted) / seconds,
        learned_per_second=sum(n for n, _, _, _ in learned) / seconds,
        learning_commits_per_second=learned_commits / seconds,
        lock_ms=1e3 * sum(h for _, _, h, _ in learned) / max(learned_commits, 1),
        client_us_per_decision=1e6 * sum(i[2] - s for i, s in zip(inserted, started, strict=True))
        / decided,
        server_us_per_decision=unit * cpu_between(server_before, server_inserted) / decided,
        client_us_per_learned=1e6 * sum(lr[3] - i[2] for lr, i in zip(learned, inserted, strict=True))
        / learned_events,
        server_us_per_learned=unit * cpu_between(server_inserted, server_learned) / learned_events)


def server_cpu(postmaster: int | None) -> dict[int, float]:
    """CPU seconds so far of each of the PostgreSQL server's processes (the postmaster and its
    children: the backends of connections made since count from zero)."""
    if postmaster is None:
        return {}
    cpu = {}
    for pid in descendants(postmaster):
        with suppress(OSError):
            cpu[pid] = cpu_seconds(pid)
    return cpu


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def postgres_postmaster(db: str) -> int | None:
    """The PostgreSQL server's postmaster pid, or None for SQLite."""
    if not db.startswith("postgresql"):
        return None
    engine = sa.create_engine(db)
    try:
        with engine.connect() as connection:
            data = connection.execute(sa.text("SHOW data_directory")).scalar_one()
    finally:
        engine.dispose()
    return int((Path(data) / "postmaster.pid").read_text().split("\n", 1)[0])


# ------------------------------------------------------------------------- orchestration
@contextmanager
def database(kind: str, workdir: Path, stack: ExitStack) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'lag.db'}"
        return
    from bench.postgres import cluster
    from bench.postgres import database as fresh

    with fresh(stack.enter_context(cluster())) as url:
        yield url


def run(kind: str, args: argparse.Namespace, console: Console) -> tuple[Lag, Replay, Rates | None]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arbiter-lag-")))
        db = stack.enter_context(database(kind, workdir, stack))
        with console.status(f"{kind}: two servers under load"), \
                servers(db, args.servers, args.tail_seconds) as started:
            ours = [pid for *_, pid in started]
            postmaster = postgres_postmaster(db)
            before = (machine_times(), total_cpu(ours), time.process_time(), server_cpu(postmaster))
            sent, errors, rate = asyncio.run(load(
                [address for address, *_ in started], args.rate, args.seconds, args.warmup,
                args.concurrency, args.seed))
            (idle, total), mine = machine_times(), total_cpu(ours) + time.process_time()
            ticks = max(total - before[0][1], 1) / os.sysconf("SC_CLK_TCK")
            busy = ticks - (idle - before[0][0]) / os.sysconf("SC_CLK_TCK")
            used = mine - before[1] - before[2] + cpu_between(before[3], server_cpu(postmaster))
            time.sleep(SETTLE)
            applied, server_lags = [], []
            for _, pipe, _ in started:
                pipe.send("stop")
                records, lag, _pid = pipe.recv()
                applied.append({event_id: at for event_id, at, _ in records})
                server_lags.append(lag)
        lag = fold_lag(sent, applied, server_lags, rate, errors)
        lag.others = max(0.0, busy - used) / ticks
        with console.status(f"{kind}: replay"):
            database_before = server_cpu(postmaster)
            refold = replay(db)
            if postmaster is not None:
                refold.database_cpu = cpu_between(database_before, server_cpu(postmaster))
        rates = None
        if args.writers:
            with console.status(f"{kind}: database rates"):
                rates = database_rates(db, args.writers, args.batch, args.db_seconds)
    return lag, refold, rates


def cpu_cell(client: float, server: float) -> str:
    return f"{client:.0f}" if math.isnan(server) else f"{client:.0f} + {server:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both)")
    parser.add_argument("--servers", type=int, default=2, help="server processes on the database")
    parser.add_argument("--rate", type=float, default=400.0,
                        help="decisions/s over all servers, each rewarded (0: closed loop)")
    parser.add_argument("--concurrency", type=int, default=64, help="pairs in flight at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--tail-seconds", type=float, default=0.02, help="the tail's poll interval")
    parser.add_argument("--writers", type=int, default=2,
                        help="processes for the database rates (0: skip them)")
    parser.add_argument("--batch", type=int, default=64, help="rows per transaction (database rates)")
    parser.add_argument("--db-seconds", type=float, default=10.0,
                        help="seconds of inserts, then of learning commits (database rates)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.db.split(",") if kind.strip()]
    if not kinds or set(kinds) - {"sqlite", "postgresql"}:
        parser.error(f"--db: sqlite and/or postgresql, got {args.db!r}")
    console = Console() if sys.stdout.isatty() else Console(width=150)
    results = {kind: run(kind, args, console) for kind in kinds}

    load_word = f"{args.rate:g} decisions/s" if args.rate else f"closed loop, {args.concurrency} in flight"
    out = Table(title=f"Fold lag: {args.servers} servers on one database, {load_word}, "
                      f"every decision rewarded, tail poll {args.tail_seconds * 1e3:g} ms",
                caption="ms from the commit on one process (its own apply) to the apply on the "
                        "other; server: Fold.lag() (from the reward's arrival), worst process; "
                        "others: share of all cores used by other processes meanwhile",
                box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False)
    for column in ("database", "achieved/s", "events", "p50", "p90", "p99", "max", "missing",
                   "server p50", "server p99", "errors", "others", "p99 <= 100 ms"):
        out.add_column(column, justify="left" if column == "database" else "right", no_wrap=True)
    for kind, (lag, _, _) in results.items():
        verdict = "[green]met[/]" if lag.p99 <= 100 else "[red]not met[/]"
        out.add_row(kind, f"{lag.rate:,.0f}", f"{lag.events:,}", f"{lag.p50:.1f}", f"{lag.p90:.1f}",
                    f"{lag.p99:.1f}", f"{lag.worst:.1f}", str(lag.missing), f"{lag.server_p50:.1f}",
                    f"{lag.server_p99:.1f}", str(lag.errors), f"{lag.others:.0%}", verdict)
    console.print(out)

    rates = Table(title="Folding and writing on this box",
                  caption=f"replay: a fresh fold of the whole log, no snapshot; insert/learn: "
                          f"{args.writers} processes, {args.batch} rows a transaction, "
                          f"{args.db_seconds:g} s each; CPU us: the fold's or the writers' + PostgreSQL's",
                  box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False)
    for column in ("database", "replay events/s", "CPU us/event", "decisions/s", "commits/s",
                   "CPU us/decision", "learned/s", "learning commits/s", "lock held ms",
                   "CPU us/learned"):
        rates.add_column(column, justify="left" if column == "database" else "right", no_wrap=True)
    for kind, (_, refold, rate) in results.items():
        cells = ["-"] * 7 if rate is None else [
            f"{rate.decisions_per_second:,.0f}", f"{rate.decision_commits_per_second:,.0f}",
            cpu_cell(rate.client_us_per_decision, rate.server_us_per_decision),
            f"{rate.learned_per_second:,.0f}", f"{rate.learning_commits_per_second:,.0f}",
            f"{rate.lock_ms:.2f}", cpu_cell(rate.client_us_per_learned, rate.server_us_per_learned)]
        rates.add_row(kind, f"{refold.rate:,.0f}", cpu_cell(refold.cpu_us, refold.database_us),
                      *cells)
    console.print(rates)
    console.print(f"{os.cpu_count()} cores shared by the servers, the load generator and the "
                  "database; replay over the log the lag run left "
                  f"({', '.join(f'{k}: {r[1].events:,} events' for k, r in results.items())}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
