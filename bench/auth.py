"""What tokens cost on the Choose hot path (``arbiter serve --auth-tokens``), two ways.

1. Micro: :meth:`Tokens.authorize` on the metadata a grpc-python client sends (user agent and
   the bearer token), with 1, 10 and 100 token entries — CPU time per call. Reading the
   metadata off the call (``context.invocation_metadata()``) is measured inside a ``grpc.aio``
   handler of a tiny server, the same way the guard calls it.
2. End to end: ``arbiter serve`` (LinUCB, strict SQLite logging) with and without a token file,
   the rounds interleaved; a ``grpc.aio`` load generator keeps ``--concurrency`` Chooses in
   flight (10 actions x 20 features) for ``--seconds`` after a warm-up; the server's CPU time
   (``/proc``) over the measured calls gives its cost per call, which hardly depends on what
   else the machine runs, and QPS is shown beside it. Each mode's best round is reported.

    python -m bench.auth                 # micro + 3 interleaved rounds of 8 s per mode
    python -m bench.auth --rounds 5 --seconds 10
    python -m bench.auth --build /tmp/arbiter-head   # serve a clean checkout (git archive HEAD)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from arbiter.server.auth import DECIDE, parse_tokens, sha256_hex
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "k3Jx9w2QeVb7LmN4pR8sT1uY6zA0cD5f"  # 32 characters, like a generated secret
CONFIG = '[experiments.homepage]\npolicy = "linucb"\nparams = { alpha = 0.5 }\n'
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------- micro
def _tokens(entries: int) -> object:
    return parse_tokens({"tokens": [
        {"name": f"service-{i}", "sha256": sha256_hex(TOKEN if i == entries - 1 else f"other-{i}"),
         "roles": ["decide"]} for i in range(entries)]})


def micro(iterations: int = 200_000) -> list[tuple[str, float]]:
    """(what, nanoseconds per call) for authorize() and for reading the call's metadata."""
    metadata = (("user-agent", f"grpc-python/{grpc.__version__} grpc-c/50.0.0 (linux; chttp2)"),
                ("authorization", f"Bearer {TOKEN}"))
    rows = []
    for entries in (1, 10, 100):
        tokens = _tokens(entries)
        authorize = tokens.authorize  # type: ignore[attr-defined]
        n = iterations if entries < 100 else iterations // 10
        began = time.thread_time_ns()  # CPU time: a busy machine's preemptions do not count
        for _ in range(n):
            authorize(metadata, DECIDE)
        rows.append((f"Tokens.authorize, {entries} entries", (time.thread_time_ns() - began) / n))
    rows.append(("context.invocation_metadata()", asyncio.run(_metadata_cost())))
    return rows


async def _metadata_cost(calls: int = 20_000) -> float:
    """ns per ``invocation_metadata()`` inside a grpc.aio handler (one call, many reads)."""
    measured: list[float] = []

    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        began = time.thread_time_ns()
        for _ in range(calls):
            context.invocation_metadata()
        measured.append((time.thread_time_ns() - began) / calls)
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(handler)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/bench.Echo/Call")
            await call(b"", metadata=(("authorization", f"Bearer {TOKEN}"),))
    finally:
        await server.stop(None)
    return measured[0]


# ----------------------------------------------------------------------------------- end to end
def _request(i: int) -> pb.ChooseRequest:
    return pb.ChooseRequest(
        experiment="homepage", unit_id=f"unit-{i % 100_000}",
        context=[pb.Namespace(name="user", numbers={f"f{k}": float((i + k) % 7) for k in range(20)})],
        actions=[pb.Action(id=f"a{j}", features=[pb.Namespace(
            name="item", numbers={f"g{k}": float((j * k) % 5) for k in range(20)})])
            for j in range(10)])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


async def _drive(target: str, metadata: Sequence[tuple[str, str]] | None, seconds: float,
                 concurrency: int, pid: int, warmup: float) -> tuple[int, float, float]:
    """(calls, wall seconds, server CPU seconds) over the measured span."""
    requests = [_request(i) for i in range(1000)]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        calls = 0
        counting = False
        stop_at = 0.0

        async def worker(w: int) -> None:
            nonlocal calls
            i = w
            while time.monotonic() < stop_at:
                await stub.Choose(requests[i % len(requests)], metadata=metadata, timeout=30)
                i += concurrency
                if counting:
                    calls += 1

        stop_at = time.monotonic() + warmup
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        await asyncio.sleep(0.5)  # the writer drains the warm-up
        counting = True
        cpu0, began = _cpu_seconds(pid), time.monotonic()
        stop_at = began + seconds
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return calls, time.monotonic() - began, _cpu_seconds(pid) - cpu0


def end_to_end(mode: str, seconds: float, concurrency: int, warmup: float,
               build: Path = ROOT) -> tuple[float, float]:
    """(QPS, server CPU microseconds per Choose) of one run of ``mode`` (open or tokens)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "experiments.toml")
        config.write_text(CONFIG)
        extra: list[str] = []
        if mode == "tokens":
            tokens = Path(tmp, "tokens.toml")
            tokens.write_text("".join(
                f'[[tokens]]\nname = "service-{i}"\nsha256 = "{sha256_hex(f"other-{i}")}"\n'
                f'roles = ["decide"]\n' for i in range(9))
                + f'[[tokens]]\nname = "bench"\nsha256 = "{sha256_hex(TOKEN)}"\nroles = ["decide"]\n')
            extra = ["--auth-tokens", str(tokens)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0",
             "--db", f"sqlite:///{tmp}/arbiter.db", "--config", str(config), *extra],
            cwd=build, env={**os.environ, "PYTHONPATH": str(build)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline()
            if not line.startswith("arbiter listening on "):
                proc.kill()
                raise RuntimeError(f"the server did not start: {proc.stderr.read()[-2000:]}")
            target = line.removeprefix("arbiter listening on ").strip()
            metadata = (("authorization", f"Bearer {TOKEN}"),) if mode == "tokens" else None
            calls, wall, cpu = asyncio.run(_drive(target, metadata, seconds, concurrency,
                                                  proc.pid, warmup))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return calls / wall, cpu / calls * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--build", type=Path, default=ROOT,
                        help="serve Arbiter from this source tree (default: this one)")
    args = parser.parse_args(argv)

    print("micro-benchmark (per call)")
    for what, ns in micro():
        print(f"  {what:<38} {ns / 1000:7.2f} us")
    if args.micro_only:
        return 0
    runs: dict[str, list[tuple[float, float]]] = {"open": [], "tokens": []}
    for _ in range(args.rounds):
        for mode in runs:
            runs[mode].append(end_to_end(mode, args.seconds, args.concurrency, args.warmup,
                                         args.build))
    print(f"\nChoose end to end ({args.rounds} interleaved rounds of {args.seconds:g} s, "
          f"{args.concurrency} in flight; best round by CPU per call; median in brackets)")
    best = {}
    for mode, results in runs.items():
        qps, cpu = min(results, key=lambda r: r[1])
        best[mode] = cpu
        print(f"  {mode:<7} {qps:8.0f} calls/s   server CPU {cpu:7.1f} us/call "
              f"[{statistics.median(r[1] for r in results):.1f}]   "
              f"QPS of every round: {', '.join(f'{r[0]:.0f}' for r in results)}")
    print(f"  tokens / open, server CPU per call: {best['tokens'] / best['open']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
