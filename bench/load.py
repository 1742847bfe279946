"""``make bench``: Choose and Reward throughput of Arbiter next to an echo server, side by side.

Every run starts a server on ``127.0.0.1`` -- the echo server (:mod:`bench.echo`: same proto,
a fixed answer; served by ``grpc.aio`` like Arbiter, and by the thread-pool ``grpc.server`` for
reference) or ``arbiter serve`` on a fresh database with the decision log on -- and drives it
from a separate load-generator process that keeps ``--concurrency`` calls in flight
(``grpc.aio`` tasks, one call each):

1. Choose: ``--warmup`` seconds of calls, a pause until the server is idle, then ``--seconds``
   of measured calls (10 actions x 20 features, random units);
2. Reward, once per event id the Choose phase got back, the same way (the warm-up gets its
   share of the event ids instead of the time);
3. ChooseBatch (Arbiter rows of this build or ``--build``'s, not ``--baseline``'s): the same
   requests in batches of ``--batch-size`` (100), ``--batch-concurrency`` (8) batches in flight;
   its rate and CPU are per decision, so the ratio below the table, ChooseBatch decisions/s over
   Choose calls/s of the same row, is the issue's batch goal (>= 5 x);
4. Choose again, then Explain (rows whose policy explains): plain Choose once more, then
   Choose with ``explain = true``, like phase 1 — on the same database and the same learned
   model, so that Explain over Choose again is the cost of explaining alone (the first Choose
   phase ran on an empty log and an unlearned model); the issue's goal is an overhead under
   20% (>= 0.83).

QPS is the measured calls over the time from the first of them until the server is idle again
-- so work a server defers past its answer (relaxed durability: the commit, the learning) is
counted -- and the server's CPU time over that span (Linux ``/proc``) divided by the calls is its
cost per call, which unlike QPS hardly depends on what else the machine runs. A second table
puts that next to the load generator's CPU per call and the share of the machine left idle: it
tells a server held back by its own serial part (cores left idle) from one held back by the
CPU it shares with the load generator (none left). The runs are
repeated ``--rounds`` times, interleaved; each row shows, per phase, the round with the highest
QPS. The ratios below the table are the issues' goals: Choose with logging >= 0.5 x echo,
strict durability >= 0.8 x relaxed, two processes >= 1.3 x one, and -- with ``--baseline`` --
one process within 5% of an older build.

Several processes (``--processes 1,2``): for each N > 1 the echo server and Arbiter (LinUCB,
strict) are also served by N processes on one port with SO_REUSEPORT -- Arbiter by ``arbiter
serve --processes N`` (a supervisor and N children) or, with ``--launch separate`` or a CLI
without that option, N ``arbiter serve --reuse-port`` processes on a port the bench reserves.
The kernel spreads *connections* over the processes, not calls, so the load generator opens
``--channels`` connections per process and keeps only those that spread evenly (it looks up
which process accepted each one in ``/proc/net/tcp``); its calls are spread over them round
robin. Server CPU is the sum over every server process. All N processes share one database.

``--baseline DIR`` (repeatable) adds a row for another build of Arbiter, e.g. a worktree of an
older commit (``git worktree add /tmp/arbiter-base 588b3f9``), served from DIR with this
interpreter and ``PYTHONPATH=DIR``: ``python -m server serve`` if DIR has the old top-level
``server`` package, else ``python -m arbiter.cli serve``; it runs in the same rounds,
interleaved with the others, on one process. ``--build DIR`` serves all the other Arbiter rows
from DIR the same way (e.g. a worktree of the commit under test, when this working tree is in the
middle of someone's edit); the echo server and the load generator always come from here.

``--db postgresql`` serves every Arbiter row on a throwaway PostgreSQL cluster started by the
bench (:mod:`bench.postgres`, fsync on), a fresh database per run, instead of a SQLite file.

    python -m bench.load                        # what `make bench` runs (--processes 1,2)
    python -m bench.load --seconds 10 --concurrency 128 --rounds 3
    python -m bench.load --short --rounds 4 --baseline /tmp/arbiter-base
    python -m bench.load --short --db postgresql --processes 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from itertools import cycle, islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = "bench"
ACTIONS = 10
CONTEXT_NUMBERS = 10
CONTEXT_CATEGORIES = 5
ACTION_NUMBERS = 3
ACTION_CATEGORIES = 2
"""The workload: 10 actions; 10 numbers + 5 categories of context and 3 + 2 per action = 20."""

CATEGORY_VALUES = 4
REQUEST_POOL = 2000
"""Distinct pre-built ChooseRequests the generator cycles through (so it spends no CPU on them)."""

IDLE_POLL = 0.05
IDLE_CPU = 0.2
QUIESCE_LIMIT = 30.0
"""A server is idle once it uses at most 20% of a core over 50 ms (one 10 ms clock tick);
waiting for that gives up after 30 s."""

BUILD: dict[str, tuple[str, str]] = {}
"""``default``: (directory, revision) of the checkout the Arbiter rows are served from
(``--build``); unset: this one."""

READY_TIMEOUT = 120.0
"""Seconds a server may take to print its ready line."""
BALANCE_TRIES = 20
"""Connections opened per connection kept, at most, while spreading them over the processes."""


@dataclass(frozen=True)
class Run:
    """One row of the table: the echo server on a gRPC stack, or Arbiter with a policy and a
    durability mode; served by ``processes`` processes on one port; ``base``: (directory,
    revision) of another build of Arbiter to serve instead of this one; ``metrics``: with
    ``--metrics-listen`` (Prometheus metrics recorded, and under a supervisor written to the
    multi-process files)."""

    policy: str | None = None
    durability: str | None = None
    stack: str = "aio"
    processes: int = 1
    base: tuple[str, str] | None = None
    metrics: bool = False

    @property
    def label(self) -> str:
        if self.policy is None:
            label = "echo" if self.stack == "aio" else f"echo ({self.stack})"
        else:
            label = f"{self.policy} {self.durability}"
        if self.base is not None:
            label += f" @{self.base[1]}"
        if self.metrics:
            label += " +metrics"
        return label + (f" x{self.processes}" if self.processes > 1 else "")

    @property
    def build(self) -> tuple[str, str] | None:
        """The checkout Arbiter is served from: ``base``, else ``--build``'s, else None (this one)."""
        if self.policy is None:
            return None
        return self.base if self.base is not None else BUILD.get("default")

    @property
    def cwd(self) -> Path:
        return Path(self.build[0]) if self.build is not None else ROOT

    @property
    def env(self) -> dict[str, str]:
        if self.build is None:
            return dict(os.environ)
        return {**os.environ, "PYTHONPATH": self.build[0]}

    def knows(self, flag: str) -> bool:
        """Whether the served build's ``arbiter serve`` has ``flag``."""
        done = subprocess.run([sys.executable, "-m", "arbiter.cli", "serve", "--help"],
                              cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)
        return flag in done.stdout

    def commands(self, workdir: Path, db: str | None, listen: str, supervisor: bool) -> list[list[str]]:
        """The server processes' command lines: one, or ``processes`` of them on ``listen``
        with SO_REUSEPORT unless ``supervisor`` (then one ``arbiter serve --processes N``).
        Arbiter's config goes in ``workdir``; ``db`` is its database URL."""
        if self.policy is None:
            command = [sys.executable, "-m", "bench.echo", "--listen", listen, "--stack", self.stack]
            if self.processes == 1:
                return [command]
            return [[*command, "--reuse-port"] for _ in range(self.processes)]
        config = workdir / "experiments.toml"
        config.write_text(f'[experiments.{EXPERIMENT}]\npolicy = "{self.policy}"\n')
        old_layout = self.build is not None and (Path(self.build[0]) / "server" / "__main__.py").exists()
        module = "server" if old_layout else "arbiter.cli"
        command = [sys.executable, "-m", module, "serve", "--listen", listen, "--db", str(db),
                   "--config", str(config), "--durability", str(self.durability)]
        if not str(db).startswith("sqlite") and self.knows("--secret-file"):
            secret = workdir / "arbiter.secret"  # PostgreSQL: every process's one secret
            secret.write_text(secrets.token_hex(32) + "\n")
            secret.chmod(0o600)
            command += ["--secret-file", str(secret)]
        if self.metrics:
            command += ["--metrics-listen", "127.0.0.1:0"]
        if self.processes == 1:
            return [command]
        if supervisor:
            return [[*command, "--processes", str(self.processes)]]
        return [[*command, "--reuse-port"] for _ in range(self.processes)]


REFERENCE = (
    Run(),
    Run(stack="sync"),
    Run("linucb", "strict"),
    Run("linucb", "relaxed"),
    Run("uniform", "strict"),
)
"""The one-process rows; ``uniform`` separates the policy's cost from the logging's, the
thread-pool echo shows what the gRPC stack alone changes. ``--short`` keeps the first and third."""


def runs(processes: Sequence[int], short: bool, bases: Sequence[tuple[str, str]] = (),
         metrics: bool = False) -> list[Run]:
    """The rows, in order: the one-process rows, Arbiter of each of ``bases``, then echo and
    Arbiter (LinUCB, strict) for every N > 1 of ``processes``; with ``metrics`` each LinUCB
    strict row of this build also with metrics."""
    rows = [Run(), Run("linucb", "strict")] if short else list(REFERENCE)
    rows += [Run("linucb", "strict", base=base) for base in bases]
    for n in processes:
        if n > 1:
            rows += [Run(processes=n), Run("linucb", "strict", processes=n)]
    if metrics:
        rows += [Run("linucb", "strict", processes=n, metrics=True) for n in sorted({1, *processes})]
    return rows


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator`` QPS of one phase (``of``: the denominator's, if another),
    with the issue's goal if it sets one."""

    phase: str
    numerator: Run
    denominator: Run
    goal: float | None = None
    of: str | None = None

    @property
    def denominator_phase(self) -> str:
        return self.of or self.phase


def ratios(rows: Sequence[Run]) -> list[Ratio]:
    """The ratios whose rows were measured: the single-process goals, N processes against one,
    and this build against ``--baseline``."""
    strict = Run("linucb", "strict")
    wanted = [
        Ratio("Choose", strict, Run(), goal=0.5),
        Ratio("Choose", strict, Run(stack="sync")),
        Ratio("Choose", strict, Run("linucb", "relaxed"), goal=0.8),
        Ratio("Reward", strict, Run("linucb", "relaxed"), goal=0.8),
        Ratio("Reward", strict, Run()),
        Ratio("Choose", Run("uniform", "strict"), Run()),
        Ratio("ChooseBatch", strict, strict, goal=5.0, of="Choose"),
        Ratio("ChooseBatch", strict, strict, of="Choose again"),
        Ratio("Explain", strict, strict, goal=0.83, of="Choose again"),
    ]
    for run in rows:
        if run.base is not None:
            wanted += [Ratio("Choose", strict, run, goal=0.95), Ratio("Reward", strict, run, goal=0.95)]
        if run.metrics:
            without = Run(run.policy, run.durability, run.stack, run.processes)
            wanted += [Ratio("Choose", run, without), Ratio("Reward", run, without)]
            continue
        if run.processes > 1:
            goal = 1.3 if run.processes == 2 and run.policy is not None else None
            one = Run(run.policy, run.durability, run.stack)
            wanted += [Ratio("Choose", run, one, goal=goal), Ratio("Reward", run, one)]
            if run.policy is not None:
                wanted += [Ratio("Choose", run, Run(processes=run.processes)),
                           Ratio("ChooseBatch", run, run, of="Choose")]
    return [ratio for ratio in wanted if ratio.numerator in rows and ratio.denominator in rows]


PHASES = ("Choose", "Reward", "ChooseBatch", "Choose again", "Explain")
EXPLAINING = ("linucb", "lints", "epsilon_greedy")
"""The policies that explain their scores: the Explain phase runs for their rows only."""


@dataclass(frozen=True)
class Settings:
    """What the load generator does in each phase; ``channels``: connections per server
    process."""

    concurrency: int
    warmup: float
    seconds: float
    seed: int
    channels: int = 2
    batch_size: int = 100
    batch_concurrency: int = 8


@dataclass(frozen=True)
class Stats:
    """One measured phase: calls answered and failed, the seconds until the server was idle
    again, latency percentiles, the server's and the load generator's CPU seconds over those
    seconds, the share of the machine's CPU time that was idle then (0 to 1), and the share
    that other processes used while the calls were sent (0 to 1: what else ran on the box)."""

    calls: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float
    generator_cpu: float
    machine_idle: float
    others: float = 0.0
    per_call: int = 1  # decisions per call: ChooseBatch's batch size

    @property
    def qps(self) -> float:
        """Decisions (or calls) per second."""
        return self.calls * self.per_call / self.seconds if self.seconds > 0 else math.nan

    @property
    def cpu_ms(self) -> float:
        """Server CPU milliseconds per decision or call (summed over the server's processes)."""
        return 1e3 * self.server_cpu / (self.calls * self.per_call) if self.calls else math.nan

    @property
    def generator_cpu_ms(self) -> float:
        """Load-generator CPU milliseconds per decision or call."""
        return 1e3 * self.generator_cpu / (self.calls * self.per_call) if self.calls else math.nan


@dataclass(frozen=True)
class Measured:
    """One run of one round: the phases, and how many connections each server process held;
    ``batch`` is None where ChooseBatch was not measured (echo, other builds)."""

    choose: Stats
    reward: Stats
    spread: tuple[int, ...] = field(default=())
    batch: Stats | None = None
    again: Stats | None = None
    explain: Stats | None = None

    def phase(self, name: str) -> Stats | None:
        return {"Choose": self.choose, "Reward": self.reward, "ChooseBatch": self.batch,
                "Choose again": self.again, "Explain": self.explain}[name]


# ------------------------------------------------------------------------------ the workload
def choose_requests(seed: int) -> list[pb.ChooseRequest]:
    """:data:`REQUEST_POOL` ChooseRequests with random units, context values and action features."""
    rng = np.random.default_rng(seed)

    def namespace(name: str, numbers: int, categories: int) -> pb.Namespace:
        return pb.Namespace(
            name=name,
            numbers={f"n{i}": float(v) for i, v in enumerate(rng.normal(size=numbers))},
            categories={f"c{i}": f"v{v}" for i, v in enumerate(rng.integers(CATEGORY_VALUES,
                                                                             size=categories))})

    return [
        pb.ChooseRequest(
            experiment=EXPERIMENT,
            unit_id=f"unit-{rng.integers(1_000_000)}",
            context=[namespace("user", CONTEXT_NUMBERS, CONTEXT_CATEGORIES)],
            actions=[pb.Action(id=f"action-{k}",
                               features=[namespace("item", ACTION_NUMBERS, ACTION_CATEGORIES)])
                     for k in range(ACTIONS)])
        for _ in range(REQUEST_POOL)
    ]


def batch_requests(requests: Sequence[pb.ChooseRequest], size: int) -> list[pb.ChooseBatchRequest]:
    """``requests`` in ChooseBatchRequests of ``size`` (cycling through them to fill the last)."""
    pool = cycle(requests)
    count = max(1, len(requests) // size)
    return [pb.ChooseBatchRequest(requests=list(islice(pool, size))) for _ in range(count)]


def reward_requests(event_ids: Iterable[str], seed: int) -> Iterator[pb.RewardRequest]:
    """One RewardRequest per event id, value 0 or 1."""
    rng = np.random.default_rng(seed)
    for event_id in event_ids:
        yield pb.RewardRequest(event_id=event_id, value=float(rng.integers(2)))


# ------------------------------------------------------------------------- /proc readings
def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def total_cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def machine_times() -> tuple[int, int]:
    """(idle, total) CPU time of the whole machine so far, in clock ticks (``/proc/stat``)."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (``/proc/*/stat``'s parent ids)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found = [pid]
    for known in found:
        found.extend(children.get(known, []))
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def accepted_connections(pids: Sequence[int], port: int) -> dict[int, int]:
    """{client port: pid} of the established TCP connections to local ``port`` that ``pids``
    accepted (``/proc/net/tcp*`` for the sockets, ``/proc/PID/fd`` for who holds them)."""
    peers: dict[str, int] = {}  # socket inode -> the client's port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                peers[inode] = int(remote.rsplit(":", 1)[1], 16)
    owners: dict[int, int] = {}
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        try:
            entries = list(fds.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                target = os.readlink(entry)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in peers:
                owners[peers[target[8:-1]]] = pid
    return owners


# ------------------------------------------------------------------- the load generator
async def quiesce(pids: Sequence[int]) -> float:
    """Wait until ``pids`` are idle (together at most :data:`IDLE_CPU` of a core over
    :data:`IDLE_POLL` seconds) and return the moment (``perf_counter``) their last busy interval
    ended."""
    used = total_cpu(pids)
    moment = time.perf_counter()
    give_up = moment + QUIESCE_LIMIT
    while moment < give_up:
        await asyncio.sleep(IDLE_POLL)
        now = total_cpu(pids)
        if now - used <= IDLE_CPU * IDLE_POLL:
            break
        used, moment = now, time.perf_counter()
    return moment


async def send(methods: Sequence[grpc.aio.UnaryUnaryMultiCallable], requests: Iterator[Any],
               seconds: float, concurrency: int,
               on_response: Callable[[Any], None]) -> tuple[list[float], int]:
    """Send ``requests`` from ``concurrency`` tasks, each one call at a time (task ``i`` on
    ``methods[i % len(methods)]``), for ``seconds`` or until the requests run out; wait for the
    calls in flight. Latencies (s) and failures."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller(method: grpc.aio.UnaryUnaryMultiCallable) -> None:
        nonlocal errors
        for request in requests:  # shared: each task takes the next request
            sent = time.perf_counter()
            if sent >= deadline:
                return
            try:
                response = await method(request)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - sent)
            on_response(response)

    await asyncio.gather(*(caller(methods[i % len(methods)]) for i in range(concurrency)))
    return latencies, errors


async def pump(methods: Sequence[grpc.aio.UnaryUnaryMultiCallable], warmup: Iterator[Any],
               measured: Iterator[Any], server: Sequence[int], settings: Settings,
               on_response: Callable[[Any], None] = lambda _: None) -> Stats:
    """Warm up with ``warmup``, let the server settle, measure with ``measured``: the calls sent
    in ``settings.seconds`` over the time until the server (pids ``server``) is idle again, so
    work it defers past its answer (relaxed durability) is in the time and in the CPU.
    ``on_response`` sees every response."""
    await send(methods, warmup, settings.warmup, settings.concurrency, on_response)
    await quiesce(server)
    start, cpu_before = time.perf_counter(), total_cpu(server)
    own_before, (idle_before, total_before) = time.process_time(), machine_times()
    latencies, errors = await send(methods, measured, settings.seconds, settings.concurrency,
                                   on_response)
    own, (idle, total) = time.process_time() - own_before, machine_times()
    sending = total_cpu(server) - cpu_before
    seconds = await quiesce(server) - start
    cpu = total_cpu(server) - cpu_before
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e3 if latencies else (math.nan, math.nan)
    ticks = max(total - total_before, 1)
    busy = (ticks - (idle - idle_before)) / os.sysconf("SC_CLK_TCK")
    return Stats(calls=len(latencies), errors=errors, seconds=seconds, p50_ms=float(p50),
                 p99_ms=float(p99), server_cpu=cpu, generator_cpu=own,
                 machine_idle=(idle - idle_before) / ticks,
                 others=max(0.0, busy - sending - own) / (ticks / os.sysconf("SC_CLK_TCK")))


async def open_channels(address: str, server: Sequence[int], processes: int,
                        per_process: int) -> tuple[list[grpc.aio.Channel], tuple[int, ...]]:
    """``per_process`` connections to each of the ``processes`` serving ``address``: open one at
    a time, keep it if the process that accepted it has fewer than its share, close it if not.
    Returns the channels and the connections per process (uneven only if
    :data:`BALANCE_TRIES` did not suffice)."""
    port = int(address.rsplit(":", 1)[1])
    wanted = processes * per_process
    options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own per channel
    kept: list[grpc.aio.Channel] = []
    spare: list[grpc.aio.Channel] = []
    per_pid: Counter[int] = Counter()
    for _ in range(BALANCE_TRIES * wanted):
        if len(kept) == wanted:
            break
        before = accepted_connections(server, port)
        channel = grpc.aio.insecure_channel(address, options=options)
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        fresh = [pid for client, pid in accepted_connections(server, port).items()
                 if client not in before]
        if processes == 1 or (len(fresh) == 1 and per_pid[fresh[0]] < per_process):
            per_pid[fresh[0] if fresh else server[0]] += 1
            kept.append(channel)
        elif len(spare) < wanted:
            spare.append(channel)
        else:
            await channel.close()
    while len(kept) < wanted and spare:  # could not balance: take what there is
        kept.append(spare.pop())
    for channel in spare:
        await channel.close()
    counts = sorted(per_pid.values(), reverse=True)
    counts += [0] * (processes - len(counts))
    return kept, tuple(counts)


def drive(address: str, server: Sequence[int], processes: int, settings: Settings,
          batch: bool = False, explain: bool = False) -> Measured:
    """The load-generator process: the Choose phase, then Reward on the event ids it got, then
    (``batch``) ChooseBatch, then (``explain``) Choose with explanations."""
    return asyncio.run(_drive(address, server, processes, settings, batch, explain))


async def _drive(address: str, server: Sequence[int], processes: int,
                 settings: Settings, batch: bool, explain: bool) -> Measured:
    pool = choose_requests(settings.seed)
    chooses = cycle(pool)
    channels, spread = await open_channels(address, server, processes, settings.channels)
    try:
        stubs = [decision_pb2_grpc.DecisionServiceStub(channel) for channel in channels]
        event_ids: list[str] = []
        choose = await pump([stub.Choose for stub in stubs], chooses, chooses, server, settings,
                            on_response=lambda response: event_ids.append(response.event_id))
        # Reward is bounded by the event ids: the warm-up gets its share of them, not of the time.
        rewards = reward_requests(event_ids, settings.seed)
        warmup = round(len(event_ids) * settings.warmup / (settings.warmup + settings.seconds))
        reward = await pump([stub.Reward for stub in stubs], islice(rewards, warmup), rewards,
                            server, settings)
        batches = again = explained = None
        if batch:
            requests = cycle(batch_requests(pool, settings.batch_size))
            batches = await pump([stub.ChooseBatch for stub in stubs], requests, requests, server,
                                 replace(settings, concurrency=settings.batch_concurrency),
                                 on_response=_check_batch)
            batches = replace(batches, per_call=settings.batch_size)
        if explain:
            again = await pump([stub.Choose for stub in stubs], chooses, chooses, server, settings)
            explaining = cycle([explained_request(request) for request in pool])
            explained = await pump([stub.Choose for stub in stubs], explaining, explaining, server,
                                   settings, on_response=_check_explained)
    finally:
        for channel in channels:
            await channel.close()
    return Measured(choose, reward, spread, batches, again, explained)


def explained_request(request: pb.ChooseRequest) -> pb.ChooseRequest:
    """``request`` asking for explanations."""
    copy = pb.ChooseRequest()
    copy.CopyFrom(request)
    copy.explain = True
    return copy


def _check_explained(response: pb.ChooseResponse) -> None:
    """The Explain phase measures nothing if the server does not explain (an older build)."""
    if not response.explanations:
        raise RuntimeError("a Choose with explain = true came back without explanations")


def _check_batch(response: pb.ChooseBatchResponse) -> None:
    """A ChooseBatch with a failed decision would measure less work than it claims: stop."""
    failed = [result for result in response.results if result.code]
    if failed:
        raise RuntimeError(f"{len(failed)} decisions of a batch failed: {failed[0].message}")


# ------------------------------------------------------------------------- orchestration
@contextmanager
def reserved_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port bound with SO_REUSEPORT (not listening) for as long as the block runs, so that
    separate servers started with ``--reuse-port`` can all bind it and nobody else can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])


def wait_ready(proc: subprocess.Popen[str], command: Sequence[str], log: Path) -> str:
    """The ``HOST:PORT`` of ``proc``'s ready line, read within :data:`READY_TIMEOUT` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        line = proc.stdout.readline() if selector.select(READY_TIMEOUT) else ""
    if not line.startswith("arbiter listening on "):
        raise RuntimeError(f"{' '.join(command)} did not start: {line!r}\n{log.read_text()}")
    return line.removeprefix("arbiter listening on ").strip()


@contextmanager
def serving(commands: Sequence[list[str]], cwd: Path, env: dict[str, str],
            workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """Start the server processes, yield the ``HOST:PORT`` they serve and the pids of every
    server process (a supervisor's children included); SIGTERM them after."""
    procs: list[subprocess.Popen[str]] = []
    try:
        addresses = []
        for number, command in enumerate(commands):
            log = workdir / f"server-{number}.log"
            with log.open("w") as stderr:
                procs.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                              stderr=stderr, text=True))
            addresses.append(wait_ready(procs[-1], command, log))
        pids = [pid for proc in procs for pid in descendants(proc.pid)]
        yield addresses[0], pids
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class Backend:
    """Where the Arbiter rows log: ``sqlite``, or ``postgresql`` on the server at ``url``;
    ``supervisor``: serve N processes with ``arbiter serve --processes N``."""

    kind: str = "sqlite"
    url: str | None = None
    supervisor: bool = True

    @contextmanager
    def database(self, workdir: Path) -> Iterator[str]:
        if self.kind == "sqlite":
            yield f"sqlite:///{workdir / 'arbiter.db'}"
            return
        from bench.postgres import database

        assert self.url is not None
        with database(self.url) as url:
            yield url


def measure(run: Run, workdir: Path, settings: Settings, backend: Backend) -> Measured:
    """Serve ``run`` on a fresh database and load it from a fresh load-generator process."""
    name = run.label.replace(" ", "-").replace("@", "").replace("(", "").replace(")", "")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{name}-", dir=workdir)))
        db = stack.enter_context(backend.database(tmp)) if run.policy is not None else None
        supervisor = backend.supervisor and run.base is None
        listen = "127.0.0.1:0"
        if run.processes > 1 and not (supervisor and run.policy is not None):
            listen = f"127.0.0.1:{stack.enter_context(reserved_port())}"
        address, pids = stack.enter_context(
            serving(run.commands(tmp, db, listen, supervisor), run.cwd, run.env, tmp))
        generator = stack.enter_context(
            ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")))
        # this build, or --build's, serves ChooseBatch and explanations (--baseline's may not)
        batch = run.policy is not None and run.base is None
        explain = batch and run.policy in EXPLAINING
        measured = generator.submit(drive, address, pids, run.processes, settings, batch,
                                    explain).result()
        if errors(measured):  # say why, before the logs go
            for log in sorted(tmp.glob("server-*.log")):
                tail = log.read_text(errors="replace").splitlines()[-20:]
                print(f"{run.label}: {errors(measured)} calls failed; {log.name} ends:", *tail,
                      sep="\n  ", file=sys.stderr)
        return measured


def errors(measured: Measured) -> int:
    """Calls that failed in any phase."""
    return sum(stats.errors for stats in (measured.choose, measured.reward, measured.batch,
                                          measured.again, measured.explain) if stats is not None)


def best(rounds: Sequence[Stats]) -> Stats:
    """The round with the highest QPS: the one least disturbed by the rest of the machine."""
    return max(rounds, key=lambda stats: stats.qps)


def best_of(rounds: Sequence[Measured]) -> Measured:
    """Per phase, the best of ``rounds``."""
    optional = [[m.phase(phase) for m in rounds] for phase in ("ChooseBatch", "Choose again",
                                                                 "Explain")]
    batches, again, explained = [best([s for s in stats if s is not None])
                                 if any(s is not None for s in stats) else None
                                 for stats in optional]
    return Measured(best([m.choose for m in rounds]), best([m.reward for m in rounds]),
                    rounds[-1].spread, batches, again, explained)


def supports_processes() -> bool:
    """Whether the served build's ``arbiter serve`` has ``--processes``."""
    run = Run("linucb", "strict")
    done = subprocess.run([sys.executable, "-m", "arbiter.cli", "serve", "--help"], cwd=run.cwd,
                          env=run.env, capture_output=True, text=True, timeout=60, check=False)
    return "--processes" in done.stdout


def revision(directory: str) -> str:
    done = subprocess.run(["git", "-C", directory, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.strip() or Path(directory).name


# ---------------------------------------------------------------------------- reporting
def table(results: dict[Run, Measured], backend: str) -> Table:
    """One row per run: per phase QPS, latency percentiles (ms), server CPU ms per call."""
    log = "SQLite" if backend == "sqlite" else "PostgreSQL"
    out = Table(title=f"Arbiter vs echo: 10 actions x 20 features, {log} log, 127.0.0.1",
                caption="Choose, Reward: calls/s; ChooseBatch: decisions/s (p50, p99: of a "
                        "batch); Explain: Choose with explain = true, calls/s; p50, p99: "
                        "latency ms; cpu: server CPU ms/call or decision "
                        "(all its processes); xN: N processes on one port",
                box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False)
    out.add_column("server", no_wrap=True)
    for phase in PHASES:
        out.add_column(phase, justify="right")
        out.add_column("p50", justify="right")
        out.add_column("p99", justify="right")
        out.add_column("cpu", justify="right")
    out.add_column("errors", justify="right")
    for run, measured in results.items():
        out.add_row(run.label, *cells(measured.choose), *cells(measured.reward),
                    *(cell for phase in PHASES[2:] for cell in optional_cells(measured.phase(phase))),
                    str(errors(measured)))
    return out


def budget_table(results: dict[Run, Measured]) -> Table:
    """Where the machine's CPU went in the Choose phase: a row that leaves cores idle is
    limited by its own serial part (one event loop, one GIL), one that leaves none by the CPU
    the server and the load generator share."""
    out = Table(title=f"Choose: the CPU of this {os.cpu_count()}-core machine",
                caption="ms per call of CPU; idle: share of all cores unused while measuring; "
                        "others: share of all cores other processes used then; connections: per "
                        "server process",
                box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False)
    for column in ("server", "server cpu", "generator cpu", "idle", "others", "connections"):
        out.add_column(column, justify="left" if column == "server" else "right", no_wrap=True)
    for run, measured in results.items():
        choose = measured.choose
        out.add_row(run.label, f"{choose.cpu_ms:.2f}", f"{choose.generator_cpu_ms:.2f}",
                    f"{choose.machine_idle:.0%}", f"{choose.others:.0%}",
                    "+".join(map(str, measured.spread)))
    return out


def optional_cells(stats: Stats | None) -> list[str]:
    """:func:`cells`, or dashes for a phase the row did not run."""
    return cells(stats) if stats is not None else ["-"] * 4


def cells(stats: Stats) -> list[str]:
    return [f"{stats.qps:,.0f}", f"{stats.p50_ms:.1f}", f"{stats.p99_ms:.1f}", f"{stats.cpu_ms:.2f}"]


def ratio_lines(results: dict[Run, Measured]) -> Iterator[str]:
    """One line per ratio whose rows ran, with the verdict where the issue sets a goal."""
    for ratio in ratios(list(results)):
        numerator = results[ratio.numerator].phase(ratio.phase)
        denominator = results[ratio.denominator].phase(ratio.denominator_phase)
        if numerator is None or denominator is None:
            continue
        value = numerator.qps / denominator.qps
        if ratio.of is None:
            line = (f"{ratio.phase} QPS {ratio.numerator.label} / {ratio.denominator.label}: "
                    f"{value:.2f}")
        else:
            unit = "decisions/s" if ratio.phase == "ChooseBatch" else "QPS"
            # Server CPU per call (decision) of the two phases: what other processes on the
            # machine move least.
            line = (f"{ratio.phase} {unit} / {ratio.of} QPS, {ratio.numerator.label}: "
                    f"{value:.2f} (server CPU per call: {ratio.of} / {ratio.phase} "
                    f"{denominator.cpu_ms / numerator.cpu_ms:.2f})")
        if ratio.goal is not None:
            verdict = "[green]met[/]" if value >= ratio.goal else "[red]not met[/]"
            line += f"  (goal >= {ratio.goal}: {verdict})"
        yield line


def round_lines(rounds: dict[Run, list[Measured]]) -> Iterator[str]:
    """Every round's QPS per row (the table shows the best): how much the machine moved them."""
    for run, measured in rounds.items():
        parts = []
        for phase in PHASES:
            stats = [m.phase(phase) for m in measured]
            if all(s is not None for s in stats):
                parts.append(f"{phase} " + ", ".join(f"{s.qps:,.0f} ({s.others:.0%})"
                                                      for s in stats if s is not None))
        failed = sum(errors(m) for m in measured)
        yield f"  {run.label}: " + "; ".join(parts) + (f"; {failed} errors" if failed else "")


def process_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,N,..., got {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"process counts must be >= 1, got {text!r}")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per phase")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of every run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated workload")
    parser.add_argument("--processes", type=process_counts, default=[1, 2], metavar="N,N,...",
                        help="server processes per row (default 1,2); 1 is always measured")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="decisions per ChooseBatch call")
    parser.add_argument("--batch-concurrency", type=int, default=8,
                        help="ChooseBatch calls in flight")
    parser.add_argument("--channels", type=int, default=2,
                        help="connections from the load generator per server process")
    parser.add_argument("--launch", choices=("auto", "supervisor", "separate"), default="auto",
                        help="N Arbiter processes by `arbiter serve --processes N` (supervisor) "
                             "or N `arbiter serve --reuse-port` (separate); auto: supervisor "
                             "if this build's CLI has --processes")
    parser.add_argument("--baseline", metavar="DIR", action="append", default=[],
                        help="also serve the Arbiter build checked out in DIR (one process); "
                             "may be repeated")
    parser.add_argument("--build", metavar="DIR",
                        help="serve the Arbiter rows (all but --baseline's) from the checkout in "
                             "DIR, e.g. a worktree of a commit, instead of this working tree")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the Arbiter rows' log: a SQLite file, or a throwaway PostgreSQL")
    parser.add_argument("--short", action="store_true",
                        help="only echo and linucb strict (and the baseline) per process count")
    parser.add_argument("--metrics", action="store_true",
                        help="also serve linucb strict with --metrics-listen, per process count: "
                             "the cost of recording Prometheus metrics")
    args = parser.parse_args(argv)
    settings = Settings(concurrency=args.concurrency, warmup=args.warmup, seconds=args.seconds,
                        seed=args.seed, channels=args.channels, batch_size=args.batch_size,
                        batch_concurrency=args.batch_concurrency)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # the phase table is ~180 wide
    bases = [(str(Path(directory).resolve()), revision(directory)) for directory in args.baseline]
    if args.build:
        BUILD["default"] = (str(Path(args.build).resolve()), revision(args.build))
    rows = runs(args.processes, args.short, bases, args.metrics)
    supervisor = args.launch == "supervisor" or (
        args.launch == "auto" and any(run.processes > 1 for run in rows) and supports_processes())
    rounds: dict[Run, list[Measured]] = {run: [] for run in rows}
    with ExitStack() as stack:
        url = None
        if args.db == "postgresql":
            from bench.postgres import cluster

            url = stack.enter_context(cluster())
        backend = Backend(args.db, url, supervisor)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arbiter-bench-")))
        for round_ in range(1, args.rounds + 1):
            for run in rows:
                with console.status(f"round {round_}/{args.rounds}: {run.label}"):
                    rounds[run].append(measure(run, tmp, settings, backend))
    results = {run: best_of(measured) for run, measured in rounds.items()}
    console.print(table(results, args.db))
    console.print(budget_table(results))
    how = ("`arbiter serve --processes N`" if supervisor
           else "N `arbiter serve --reuse-port` processes")
    if "default" in BUILD:
        how += f"; Arbiter served from {BUILD['default'][0]} @{BUILD['default'][1]}"
    console.print(f"{settings.concurrency} calls in flight from one load-generator process over "
                  f"{settings.channels} connections per server process; "
                  f"{settings.warmup:g} s warm-up + {settings.seconds:g} s measured per phase, "
                  f"best of {args.rounds} interleaved rounds; one Reward per event id the Choose "
                  f"phase returned; ChooseBatch: batches of {settings.batch_size}, "
                  f"{settings.batch_concurrency} in flight. xN rows: {how}; echo xN: N echo "
                  "processes; one database.")
    console.print("QPS of every round (in brackets: the share of the cores other processes used):")
    for line in round_lines(rounds):
        console.print(line)
    for line in ratio_lines(results):
        console.print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
