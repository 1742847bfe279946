"""``make bench-soak``: a server at a fixed Choose + Reward rate for minutes; does its memory level off?

One ``arbiter serve`` (LinUCB, strict, on a fresh SQLite file; ``reward_wait_seconds`` 3600, so
no window closes during the run) gets ``--rate`` Choose calls per second (10 actions x 20
features, as in ``make bench``) for ``--seconds`` (default 600). ``--rewarded`` of the decisions
(default 70%) get a Reward, each after a delay drawn uniformly from 0 to ``--reward-delay``
seconds, so some rewards find their decision in the server's decision cache and the later ones
read it from the log. The rest stay unrewarded: their windows stay open in the database.

Every ``--every`` seconds (default 30) it prints: the elapsed time, the server's resident
memory (``VmRSS`` of ``/proc/PID/status``), the database's size (the SQLite file + its WAL),
the Choose and Reward rates achieved over the interval, errors, and Choose p99 latency. The
decision cache is bounded in bytes (``Settings.cache_bytes``, 64 MiB by default), so RSS should
level off once the cache is full instead of growing with the open windows.

Every loop is bounded: Choose calls stop after ``--seconds`` (or ``rate x seconds`` calls),
their rewards are sent as they come due (a due reward goes before a Choose that is behind its
schedule), at most ``--concurrency`` calls are in flight, and the run ends ``--reward-delay``
+ 30 s after the last decision at the latest. The server listens on 127.0.0.1 only.

    python -m bench.soak                       # what `make bench-soak` runs: 10 minutes
    python -m bench.soak --seconds 60 --every 10
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc
from bench.load import EXPERIMENT, ROOT, choose_requests, rss_bytes, serving

MIB = 1024 * 1024


@dataclass
class Interval:
    """Counts since the last report."""

    chooses: int = 0
    rewards: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


def database_bytes(path: Path) -> tuple[int, int]:
    """(file, WAL) bytes of the SQLite database at ``path``."""
    sizes = []
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            sizes.append(name.stat().st_size)
        except FileNotFoundError:
            sizes.append(0)
    return sizes[0], sizes[1]


async def soak(address: str, pid: int, db: Path, args: argparse.Namespace) -> list[tuple[float, ...]]:
    """Run the load, print a line every ``args.every`` seconds; returns the rows printed."""
    requests = cycle(choose_requests(args.seed))
    rng = random.Random(args.seed)
    total = int(args.rate * args.seconds)
    slots = asyncio.Semaphore(args.concurrency)
    interval = Interval()
    pending: list[tuple[float, int, str]] = []  # (due, tiebreak, event_id): rewards to send
    tasks: set[asyncio.Task[None]] = set()
    rows: list[tuple[float, ...]] = []
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        stub = decision_pb2_grpc.DecisionServiceStub(channel)

        async def choose() -> None:
            try:
                sent = time.perf_counter()
                answer = await stub.Choose(next(requests), timeout=10)
                interval.latencies.append(time.perf_counter() - sent)
                interval.chooses += 1
                if rng.random() < args.rewarded:
                    due = time.perf_counter() + rng.uniform(0, args.reward_delay)
                    heapq.heappush(pending, (due, len(pending), answer.event_id))
            except grpc.aio.AioRpcError:
                interval.errors += 1
            finally:
                slots.release()

        async def reward(event_id: str) -> None:
            try:
                await stub.Reward(pb.RewardRequest(event_id=event_id,
                                                   value=float(rng.random() < 0.3)), timeout=10)
                interval.rewards += 1
            except grpc.aio.AioRpcError:
                interval.errors += 1
            finally:
                slots.release()

        async def spawn(coroutine: Coroutine[Any, Any, None]) -> None:
            await slots.acquire()
            task = asyncio.create_task(coroutine)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        start = time.perf_counter()
        last_report = start
        give_up = start + args.seconds + args.reward_delay + 30  # the last rewards, then stop
        header = (f"{'elapsed s':>9} {'RSS MiB':>8} {'db MiB':>8} {'(file':>7} {'+ WAL)':>7} "
                  f"{'Choose/s':>9} {'Reward/s':>9} {'errors':>6} {'p99 ms':>7}")
        print(header, flush=True)
        number = 0
        while time.perf_counter() < give_up:
            now = time.perf_counter()
            if now - last_report >= args.every:
                rows.append(report(now - start, now - last_report, pid, db, interval))
                interval = Interval()
                last_report = now
            choosing = number < total and now < start + args.seconds
            if not choosing and not pending:
                break
            due_choose = start + number / args.rate if choosing else math.inf
            due_reward = pending[0][0] if pending else math.inf
            wait = min(due_choose, due_reward, last_report + args.every) - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if due_reward <= time.perf_counter():  # a due reward first: a late Choose schedule
                await spawn(reward(heapq.heappop(pending)[2]))  # must not starve the rewards
            else:
                await spawn(choose())
                number += 1
        await asyncio.gather(*tasks)
        now = time.perf_counter()
        if interval.chooses or interval.rewards or interval.errors:  # the rewards after the last line
            rows.append(report(now - start, now - last_report, pid, db, interval))
    return rows


def report(elapsed: float, seconds: float, pid: int, db: Path, interval: Interval) -> tuple[float, ...]:
    """Print one line (elapsed, RSS, database, rates over ``seconds``, errors, p99); return it."""
    file, wal = database_bytes(db)
    p99 = float(np.percentile(interval.latencies, 99)) * 1e3 if interval.latencies else math.nan
    row = (elapsed, rss_bytes(pid) / MIB, (file + wal) / MIB, file / MIB, wal / MIB,
           interval.chooses / seconds, interval.rewards / seconds, interval.errors, p99)
    print(f"{row[0]:9.0f} {row[1]:8.1f} {row[2]:8.1f} {row[3]:7.1f} {row[4]:7.1f} "
          f"{row[5]:9.1f} {row[6]:9.1f} {row[7]:6d} {row[8]:7.1f}", flush=True)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="seconds of decisions")
    parser.add_argument("--rate", type=float, default=300.0, help="Choose calls per second")
    parser.add_argument("--rewarded", type=float, default=0.7, help="share of decisions rewarded")
    parser.add_argument("--reward-delay", type=float, default=60.0,
                        help="a reward comes 0 to this many seconds after its decision")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between lines")
    parser.add_argument("--concurrency", type=int, default=256, help="calls in flight at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arbiter-soak-")))
        config = workdir / "experiments.toml"
        config.write_text(f'[experiments.{EXPERIMENT}]\npolicy = "linucb"\n'
                          "reward_wait_seconds = 3600\n")
        db = workdir / "soak.db"
        command = [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0",
                   "--db", f"sqlite:///{db}", "--config", str(config)]
        address, pids = stack.enter_context(serving([command], ROOT, dict(os.environ), workdir))
        print(f"arbiter serve (pid {pids[0]}) on {address}: {args.rate:g} Choose/s for "
              f"{args.seconds:g} s, {args.rewarded:.0%} rewarded 0-{args.reward_delay:g} s later, "
              "reward_wait_seconds 3600, SQLite", flush=True)
        started = rss_bytes(pids[0]) / MIB
        rows = asyncio.run(soak(address, pids[0], db, args))
    if rows:
        rss = [row[1] for row in rows]
        half = rss[len(rss) // 2:]
        print(f"RSS at start {started:.1f} MiB, peak {max(rss):.1f} MiB; second half of the run: "
              f"{min(half):.1f} to {max(half):.1f} MiB (growth {half[-1] - half[0]:+.1f} MiB); "
              f"database {rows[-1][2]:.1f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
