"""``make bench``: Choose and Reward throughput of Arbiter next to an echo server, side by side.

Every run starts one server as a subprocess on ``127.0.0.1:0`` -- the echo server
(:mod:`bench.echo`: same proto, a fixed answer; served by ``grpc.aio`` like Arbiter, and by the
thread-pool ``grpc.server`` for reference) or ``arbiter serve`` on a fresh SQLite file with the
decision log on -- and drives it from a separate load-generator
process that keeps ``--concurrency`` calls in flight (``grpc.aio`` tasks, one call each):

1. Choose: ``--warmup`` seconds of calls, a pause until the server is idle, then ``--seconds``
   of measured calls (10 actions x 20 features, random units);
2. Reward, once per event id the Choose phase got back, the same way (the warm-up gets its
   share of the event ids instead of the time).

QPS is the measured calls over the time from the first of them until the server is idle again
-- so work a server defers past its answer (relaxed durability: the commit, the learning) is
counted -- and the server's CPU time over that span (Linux ``/proc``) divided by the calls is its
cost per call, which unlike QPS hardly depends on what else the machine runs. A second table
puts that next to the load generator's CPU per call and the share of the machine left idle: it
tells a server held back by its own serial part (cores left idle) from one held back by the
CPU it shares with the load generator (none left). The runs are
repeated ``--rounds`` times, interleaved; each row shows, per phase, the round with the highest
QPS. The ratios below the table are the issues' goals: Choose with logging >= 0.5 x echo,
strict durability >= 0.8 x relaxed.

    python -m bench.load                        # what `make bench` runs
    python -m bench.load --seconds 10 --concurrency 128 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Run:
    """One row of the table: the echo server on a gRPC stack, or Arbiter with a policy and a
    durability mode."""

    policy: str | None = None
    durability: str | None = None
    stack: str = "aio"

    @property
    def label(self) -> str:
        if self.policy is None:
            return "echo" if self.stack == "aio" else f"echo ({self.stack})"
        return f"{self.policy} {self.durability}"

    def command(self, workdir: Path) -> list[str]:
        """The server's command line; Arbiter's database and config go in ``workdir``."""
        if self.policy is None:
            return [sys.executable, "-m", "bench.echo", "--listen", "127.0.0.1:0",
                    "--stack", self.stack]
        name = f"{self.policy}-{self.durability}"
        config = workdir / f"{name}.toml"
        config.write_text(f'[experiments.{EXPERIMENT}]\npolicy = "{self.policy}"\n')
        return [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0",
                "--db", f"sqlite:///{workdir / name}.db", "--config", str(config),
                "--durability", str(self.durability)]


RUNS = (
    Run(),
    Run(stack="sync"),
    Run("linucb", "strict"),
    Run("linucb", "relaxed"),
    Run("uniform", "strict"),
)
"""The rows, in order; ``uniform`` separates the policy's cost from the logging's, the
thread-pool echo shows what the gRPC stack alone changes."""


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator`` QPS of one phase, with the issue's goal if it sets one."""

    phase: str
    numerator: Run
    denominator: Run
    goal: float | None = None


RATIOS = (
    Ratio("Choose", Run("linucb", "strict"), Run(), goal=0.5),
    Ratio("Choose", Run("linucb", "strict"), Run(stack="sync")),
    Ratio("Choose", Run("linucb", "strict"), Run("linucb", "relaxed"), goal=0.8),
    Ratio("Reward", Run("linucb", "strict"), Run("linucb", "relaxed"), goal=0.8),
    Ratio("Reward", Run("linucb", "strict"), Run()),
    Ratio("Choose", Run("uniform", "strict"), Run()),
)
PHASES = ("Choose", "Reward")


@dataclass(frozen=True)
class Settings:
    """What the load generator does in each phase."""

    concurrency: int
    warmup: float
    seconds: float
    seed: int


@dataclass(frozen=True)
class Stats:
    """One measured phase: calls answered and failed, the seconds until the server was idle
    again, latency percentiles, the server's and the load generator's CPU seconds over those
    seconds, and the share of the machine's CPU time that was idle then (0 to 1)."""

    calls: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float
    generator_cpu: float
    machine_idle: float

    @property
    def qps(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else math.nan

    @property
    def cpu_ms(self) -> float:
        """Server CPU milliseconds per call."""
        return 1e3 * self.server_cpu / self.calls if self.calls else math.nan

    @property
    def generator_cpu_ms(self) -> float:
        """Load-generator CPU milliseconds per call."""
        return 1e3 * self.generator_cpu / self.calls if self.calls else math.nan


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


def reward_requests(event_ids: Iterable[str], seed: int) -> Iterator[pb.RewardRequest]:
    """One RewardRequest per event id, value 0 or 1."""
    rng = np.random.default_rng(seed)
    for event_id in event_ids:
        yield pb.RewardRequest(event_id=event_id, value=float(rng.integers(2)))


# ------------------------------------------------------------------- the load generator
def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_times() -> tuple[int, int]:
    """(idle, total) CPU time of the whole machine so far, in clock ticks (``/proc/stat``)."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait


async def quiesce(pid: int) -> float:
    """Wait until ``pid`` is idle (at most :data:`IDLE_CPU` of a core over :data:`IDLE_POLL`
    seconds) and return the moment (``perf_counter``) its last busy interval ended."""
    used = cpu_seconds(pid)
    moment = time.perf_counter()
    give_up = moment + QUIESCE_LIMIT
    while moment < give_up:
        await asyncio.sleep(IDLE_POLL)
        now = cpu_seconds(pid)
        if now - used <= IDLE_CPU * IDLE_POLL:
            break
        used, moment = now, time.perf_counter()
    return moment


async def send(method: grpc.aio.UnaryUnaryMultiCallable, requests: Iterator[Any], seconds: float,
               concurrency: int, on_response: Callable[[Any], None]) -> tuple[list[float], int]:
    """Send ``requests`` from ``concurrency`` tasks, each one call at a time, for ``seconds`` or
    until the requests run out; wait for the calls in flight. Latencies (s) and failures."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
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

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, errors


async def pump(method: grpc.aio.UnaryUnaryMultiCallable, warmup: Iterator[Any],
               measured: Iterator[Any], server: int, settings: Settings,
               on_response: Callable[[Any], None] = lambda _: None) -> Stats:
    """Warm up with ``warmup``, let the server settle, measure with ``measured``: the calls sent
    in ``settings.seconds`` over the time until the server (pid ``server``) is idle again, so
    work it defers past its answer (relaxed durability) is in the time and in the CPU.
    ``on_response`` sees every response."""
    await send(method, warmup, settings.warmup, settings.concurrency, on_response)
    await quiesce(server)
    start, cpu_before = time.perf_counter(), cpu_seconds(server)
    own_before, (idle_before, total_before) = time.process_time(), machine_times()
    latencies, errors = await send(method, measured, settings.seconds, settings.concurrency,
                                   on_response)
    own, (idle, total) = time.process_time() - own_before, machine_times()
    seconds = await quiesce(server) - start
    cpu = cpu_seconds(server) - cpu_before
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e3 if latencies else (math.nan, math.nan)
    return Stats(calls=len(latencies), errors=errors, seconds=seconds, p50_ms=float(p50),
                 p99_ms=float(p99), server_cpu=cpu, generator_cpu=own,
                 machine_idle=(idle - idle_before) / max(total - total_before, 1))


def drive(address: str, server: int, settings: Settings) -> tuple[Stats, Stats]:
    """The load-generator process: the Choose phase, then Reward on the event ids it got."""
    return asyncio.run(_drive(address, server, settings))


async def _drive(address: str, server: int, settings: Settings) -> tuple[Stats, Stats]:
    chooses = cycle(choose_requests(settings.seed))
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        event_ids: list[str] = []
        choose = await pump(stub.Choose, chooses, chooses, server, settings,
                            on_response=lambda response: event_ids.append(response.event_id))
        # Reward is bounded by the event ids: the warm-up gets its share of them, not of the time.
        rewards = reward_requests(event_ids, settings.seed)
        warmup = round(len(event_ids) * settings.warmup / (settings.warmup + settings.seconds))
        reward = await pump(stub.Reward, islice(rewards, warmup), rewards, server, settings)
    return choose, reward


# ------------------------------------------------------------------------- orchestration
@contextmanager
def serving(command: list[str], log: Path) -> Iterator[tuple[str, int]]:
    """Start a server subprocess, yield the ``HOST:PORT`` it prints and its pid; SIGTERM it after."""
    with log.open("w") as stderr:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("arbiter listening on "):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{' '.join(command)} did not start: {line!r}\n{log.read_text()}")
        yield line.removeprefix("arbiter listening on ").strip(), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(run: Run, workdir: Path, settings: Settings) -> tuple[Stats, Stats]:
    """Serve ``run`` on a fresh database and load it from a fresh load-generator process."""
    name = run.label.replace(" ", "-")
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=workdir) as tmp, \
            serving(run.command(Path(tmp)), Path(tmp) / "server.log") as (address, pid), \
            ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as generator:
        return generator.submit(drive, address, pid, settings).result()


def best(rounds: Sequence[Stats]) -> Stats:
    """The round with the highest QPS: the one least disturbed by the rest of the machine."""
    return max(rounds, key=lambda stats: stats.qps)


# ---------------------------------------------------------------------------- reporting
def table(results: dict[Run, tuple[Stats, Stats]]) -> Table:
    """One row per run: per phase QPS, latency percentiles (ms), server CPU ms per call."""
    out = Table(title="Arbiter vs echo: 10 actions x 20 features, SQLite log, 127.0.0.1",
                caption="Choose, Reward: calls/s; p50, p99: latency ms; cpu: server CPU ms/call",
                box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False)
    out.add_column("server", no_wrap=True)
    for phase in PHASES:
        out.add_column(phase, justify="right")
        out.add_column("p50", justify="right")
        out.add_column("p99", justify="right")
        out.add_column("cpu", justify="right")
    out.add_column("errors", justify="right")
    for run, (choose, reward) in results.items():
        out.add_row(run.label, *cells(choose), *cells(reward), str(choose.errors + reward.errors))
    return out


def budget_table(results: dict[Run, tuple[Stats, Stats]]) -> Table:
    """Where the machine's CPU went in the Choose phase: a row that leaves cores idle is
    limited by its own serial part (one event loop, one GIL), one that leaves none by the CPU
    the server and the load generator share."""
    out = Table(title=f"Choose: the CPU of this {os.cpu_count()}-core machine",
                caption="ms per call of CPU; idle: share of all cores unused while measuring",
                box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), show_edge=False)
    for column in ("server", "server cpu", "generator cpu", "idle"):
        out.add_column(column, justify="left" if column == "server" else "right", no_wrap=True)
    for run, (choose, _) in results.items():
        out.add_row(run.label, f"{choose.cpu_ms:.2f}", f"{choose.generator_cpu_ms:.2f}",
                    f"{choose.machine_idle:.0%}")
    return out


def cells(stats: Stats) -> list[str]:
    return [f"{stats.qps:,.0f}", f"{stats.p50_ms:.1f}", f"{stats.p99_ms:.1f}", f"{stats.cpu_ms:.2f}"]


def ratio_lines(results: dict[Run, tuple[Stats, Stats]]) -> Iterator[str]:
    """One line per :data:`RATIOS` entry, with the verdict where the issue sets a goal."""
    for ratio in RATIOS:
        phase = PHASES.index(ratio.phase)
        value = results[ratio.numerator][phase].qps / results[ratio.denominator][phase].qps
        line = f"{ratio.phase} QPS {ratio.numerator.label} / {ratio.denominator.label}: {value:.2f}"
        if ratio.goal is not None:
            verdict = "[green]met[/]" if value >= ratio.goal else "[red]not met[/]"
            line += f"  (goal >= {ratio.goal}: {verdict})"
        yield line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per phase")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of every run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated workload")
    args = parser.parse_args(argv)
    settings = Settings(concurrency=args.concurrency, warmup=args.warmup, seconds=args.seconds,
                        seed=args.seed)
    console = Console()
    rounds: dict[Run, list[tuple[Stats, Stats]]] = {run: [] for run in RUNS}
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-") as tmp:
        for round_ in range(1, args.rounds + 1):
            for run in RUNS:
                with console.status(f"round {round_}/{args.rounds}: {run.label}"):
                    rounds[run].append(measure(run, Path(tmp), settings))
    results = {run: (best([c for c, _ in measured]), best([r for _, r in measured]))
               for run, measured in rounds.items()}
    console.print(table(results))
    console.print(budget_table(results))
    console.print(f"{settings.concurrency} calls in flight from one load-generator process; "
                  f"{settings.warmup:g} s warm-up + {settings.seconds:g} s measured per phase, "
                  f"best of {args.rounds} interleaved rounds; one Reward per event id the Choose "
                  "phase returned.")
    for line in ratio_lines(results):
        console.print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
