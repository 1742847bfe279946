"""Where one server's CPU goes, per thread: Choose, then Reward, for one or more builds side by side.

Each build (a checkout: this one, or e.g. ``git worktree add /tmp/arbiter-base 588b3f9``) runs
one in-process server (``App``, imported from that checkout: the old top-level ``server``
package or ``arbiter.server``) on a fresh SQLite file in a process of its own. The load
generator (this process, 64 calls in flight over two connections) sends 500 Choose calls to warm
up, then ``--chooses`` measured ones, then ``--rewards`` Rewards for the latest decisions (all
still in the decision cache). ``--explain`` adds two phases after those, on the model the
Rewards taught (its features have columns, so there is something to explain), as in
``bench.load``: Choose again, then Explain (the same requests with ``explain = true``), and
prints the Explain / Choose again ratio of process CPU per call. ``--batch`` adds a ChooseBatch
phase after those (the same requests in batches of ``BATCH``, ``BATCH_CONCURRENCY`` in flight,
``--chooses`` decisions), shown per *decision*, and prints its process CPU per decision against
Choose's per call (the issue's ChooseBatch goal is >= 5x in throughput, one process; this is
its CPU side, thread by thread). Before and after each phase
the server reports the CPU time of each of its threads (``/proc/self/task/TID/stat``, by
``threading`` name) and of the whole process (gRPC's own threads included); the table shows
milliseconds per call, the median over ``--rounds`` rounds that alternate between the builds.

    python -m bench.threadcpu --build . --build /tmp/arbiter-base --rounds 5
    python -m bench.threadcpu --build . --build /tmp/arbiter-main --rounds 3 --batch  # with ChooseBatch

``--metrics`` serves each build twice per round, without and with ``--metrics-listen``
(``Settings.metrics_listen``; the build must have it), and prints the with/without ratio of each
phase's CPU per call: what recording the metrics costs. The endpoint is scraped once per phase,
as Prometheus would every 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from itertools import cycle, islice
from multiprocessing.connection import Connection
from pathlib import Path
from statistics import median
from typing import Any

# Nothing here imports the generated code at the top: the server process of an old build
# imports its own copy of the same proto (``protos.arbiter.v1``), and one process cannot hold
# both; the load generator (this process) imports it in ``load``.
EXPERIMENT = "bench"
WARMUP = 500
CONCURRENCY = 64
BATCH = 100
BATCH_CONCURRENCY = 8
"""ChooseBatch phase (``--batch``): decisions per call and calls in flight, as ``bench.load``."""
SETTLE = 1.5
"""Seconds after a phase before the second reading, so the writer's and the tail's work on it
is counted."""


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far per thread name (trailing digits dropped) and of the whole process."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
        except OSError:
            continue
        values = fields.split()
        name = thread.name.rstrip("0123456789_")
        out[name] = out.get(name, 0.0) + (int(values[11]) + int(values[12])) / ticks
    values = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    out["(process)"] = (int(values[11]) + int(values[12])) / ticks
    return out


def serve(build: str, db: str, pipe: Connection, metrics: bool = False) -> None:
    """The server process: an App of ``build`` on ``db`` (``metrics``: with its metrics endpoint,
    scraped at every "cpu"); answers "cpu" with :func:`thread_cpu`."""
    sys.path.insert(0, build)
    app_module: Any
    config_module: Any
    if (Path(build) / "server" / "__main__.py").exists():  # before arbiter/ (e.g. 588b3f9)
        import server.app as app_module
        import server.config as config_module
    else:
        import arbiter.server.app as app_module
        import arbiter.server.config as config_module
    logging.basicConfig(level=logging.ERROR)
    more = {"metrics_listen": "127.0.0.1:0"} if metrics else {}
    app = app_module.App(app_module.Settings(listen="127.0.0.1:0", db=db, **more),
                         config_module.parse_config({"experiments": {EXPERIMENT: {"policy": "linucb"}}}))
    pipe.send(app.start())
    try:
        while pipe.recv() == "cpu":
            if metrics:
                with urllib.request.urlopen(f"http://{app.metrics_address}/metrics") as scraped:
                    scraped.read()
            pipe.send(thread_cpu())
    finally:
        app.stop(grace=1)


async def load(address: str, pipe: Connection, chooses: int, rewards: int,
               explain: bool, batch: bool = False) -> dict[str, tuple[int, float, dict[str, float]]]:
    """Warm up, then the Choose and the Reward phase, (``explain``) Choose again and Explain,
    and (``batch``) ChooseBatch: {phase: (calls — decisions for ChooseBatch —, seconds, CPU per
    thread)}."""
    import grpc

    from arbiter.v1 import decision_pb2_grpc
    from bench.load import batch_requests, choose_requests, explained_request, reward_requests, send

    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(2)]
    stubs = [decision_pb2_grpc.DecisionServiceStub(channel) for channel in channels]
    pool = choose_requests(0)
    requests, explaining = cycle(pool), cycle([explained_request(r) for r in pool])
    event_ids: list[str] = []
    out = {}
    try:
        await send([s.Choose for s in stubs], islice(requests, WARMUP), 120, CONCURRENCY,
                   lambda answer: event_ids.append(answer.event_id))
        await asyncio.sleep(1)
        phases = [("Choose", [s.Choose for s in stubs], lambda: islice(requests, chooses)),
                  ("Reward", [s.Reward for s in stubs],
                   lambda: reward_requests(event_ids[-rewards:], 0)),
                  ("Choose again", [s.Choose for s in stubs], lambda: islice(requests, chooses)),
                  ("Explain", [s.Choose for s in stubs], lambda: islice(explaining, chooses))]
        chosen = phases if explain else phases[:2]
        if batch:
            batches = cycle(batch_requests(pool, BATCH))
            chosen.append(("ChooseBatch", [s.ChooseBatch for s in stubs],
                           lambda: islice(batches, max(1, chooses // BATCH))))
        for phase, methods, calls in chosen:
            pipe.send("cpu")
            before = pipe.recv()
            started = time.perf_counter()
            per_call = BATCH if phase == "ChooseBatch" else 1
            latencies, failed = await send(methods, calls(), 300,
                                           BATCH_CONCURRENCY if per_call > 1 else CONCURRENCY,
                                           lambda answer: _answered(answer, event_ids))
            seconds = time.perf_counter() - started
            if failed:
                raise RuntimeError(f"{failed} {phase} calls failed")
            await asyncio.sleep(SETTLE)
            pipe.send("cpu")
            after = pipe.recv()
            out[phase] = (len(latencies) * per_call, seconds,
                          {k: after[k] - before.get(k, 0.0) for k in after})
    finally:
        for channel in channels:
            await channel.close()
    return out


def _answered(answer: Any, event_ids: list[str]) -> None:
    """Keep a Choose's event id; a ChooseBatch with a failed decision would measure less work
    than it claims: stop."""
    if hasattr(answer, "event_id"):
        event_ids.append(answer.event_id)
    elif hasattr(answer, "results"):
        failed = [result for result in answer.results if result.code]
        if failed:
            raise RuntimeError(f"{len(failed)} decisions of a batch failed: {failed[0].message}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threadcpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="append", default=[], metavar="DIR",
                        help="a checkout to serve (repeatable; default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chooses", type=int, default=4000)
    parser.add_argument("--rewards", type=int, default=3000,
                        help="at most what the decision cache holds (6,338 of these decisions)")
    parser.add_argument("--explain", action="store_true",
                        help="then Choose again and Explain (Choose with explain = true)")
    parser.add_argument("--batch", action="store_true",
                        help="then ChooseBatch (--chooses decisions, batches of 100, 8 in flight)")
    parser.add_argument("--metrics", action="store_true",
                        help="serve each build without and with --metrics-listen; print the ratio")
    args = parser.parse_args(argv)
    builds = [str(Path(build).resolve()) for build in args.build] or [str(Path.cwd())]
    runs = [(build, metrics) for build in builds for metrics in ((False, True) if args.metrics
                                                                 else (False,))]
    context = multiprocessing.get_context("spawn")
    results: dict[str, list[dict[str, tuple[int, float, dict[str, float]]]]] = {
        _label(*run): [] for run in runs}
    for _ in range(args.rounds):
        for build, metrics in runs:
            with tempfile.TemporaryDirectory(prefix="arbiter-threadcpu-") as workdir:
                ours, theirs = context.Pipe()
                process = context.Process(target=serve, daemon=True,
                                          args=(build, f"sqlite:///{workdir}/a.db", theirs, metrics))
                process.start()
                try:
                    if not ours.poll(120):
                        raise RuntimeError(f"the server of {build} did not start")
                    address = ours.recv()
                    results[_label(build, metrics)].append(asyncio.run(load(
                        address, ours, args.chooses, args.rewards, args.explain, args.batch)))
                finally:
                    ours.send("stop")
                    process.join(30)
                    if process.is_alive():
                        process.kill()
                        process.join()
    print(f"ms of CPU per call (ChooseBatch: per decision), medians of {args.rounds} interleaved "
          "rounds; calls (decisions) per second in brackets")
    phases = [*("Choose", "Reward", "Choose again", "Explain")[:4 if args.explain else 2],
              *(("ChooseBatch",) if args.batch else ())]
    for phase in phases:
        for build, rounds in results.items():
            names = sorted({name for r in rounds for name in r[phase][2]}, key=lambda n: n != "(process)")
            cells = [f"{name}={median(1e3 * r[phase][2].get(name, 0.0) / r[phase][0] for r in rounds):.3f}"
                     for name in names
                     if median(1e3 * r[phase][2].get(name, 0.0) / r[phase][0] for r in rounds) >= 0.0005]
            rate = median(r[phase][0] / r[phase][1] for r in rounds)
            print(f"{phase} {build} ({rate:,.0f}/s): {' '.join(cells)}", flush=True)
    for build in builds if args.metrics else ():
        on, off = results[_label(build, True)], results[_label(build, False)]
        ratios = [f"{phase} {_per_call(on, phase) / _per_call(off, phase):.3f}x"
                  for phase in ("Choose", "Reward")]
        print(f"metrics on/off, process CPU per call, {build}: {', '.join(ratios)}")
    for build in builds if args.batch else ():
        rounds = results[build]
        print(f"Choose per call / ChooseBatch per decision, process CPU, {build}: "
              f"{_per_call(rounds, 'Choose') / _per_call(rounds, 'ChooseBatch'):.2f}x")
    for build in builds if args.explain else ():
        rounds = results[build]
        print(f"Explain / Choose again, process CPU per call, {build}: "
              f"{_per_call(rounds, 'Explain') / _per_call(rounds, 'Choose again'):.3f}x")
    return 0


def _label(build: str, metrics: bool) -> str:
    return f"{build} +metrics" if metrics else build


def _per_call(rounds: list[dict[str, tuple[int, float, dict[str, float]]]], phase: str) -> float:
    """Median process CPU seconds per call of ``phase`` over the rounds."""
    return median(r[phase][2]["(process)"] / r[phase][0] for r in rounds)


if __name__ == "__main__":
    raise SystemExit(main())
