"""The echo baseline of ``make bench``: ``arbiter.v1.DecisionService`` answering a fixed reply.

Built from the same generated code. ``--stack aio`` (the default) serves it the way Arbiter does
(``grpc.aio``, every handler on one event loop), so the difference between the two under the
same load is what Arbiter's own work costs: validation, the policy, the SQL log, the learner.
``--stack sync`` serves it with ``grpc.server`` over a thread pool, the other way gRPC Python
serves, so the bench also shows what the stack itself costs.

    python -m bench.echo --listen 127.0.0.1:0      # prints "arbiter listening on HOST:PORT"

``--reuse-port`` sets SO_REUSEPORT, so several echo processes serve one port (the bench's
``--processes N`` rows).

SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from collections.abc import Sequence
from concurrent import futures

import grpc

from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc

STACKS = ("aio", "sync")
SYNC_WORKERS = 32
"""Thread-pool size of the ``sync`` stack."""

CHOOSE_RESPONSE = pb.ChooseResponse(
    event_id="00000000-0000-4000-8000-000000000000",
    action_id="action-0",
    probability=0.91,
    ranking=[pb.RankedAction(action_id=f"action-{k}", probability=0.91 if k == 0 else 0.01)
             for k in range(10)],
    variant="default",
    model_version="echo@0",
)
"""A reply of the real server's size for 10 actions: a UUID, the full ranking, a version."""

REWARD_RESPONSE = pb.RewardResponse(learned=True)


class EchoServicer(decision_pb2_grpc.DecisionServiceServicer):
    """Answers every call with the same fixed response, whatever the request (thread pool)."""

    def Choose(self, request: pb.ChooseRequest, context: grpc.ServicerContext) -> pb.ChooseResponse:
        return CHOOSE_RESPONSE

    def Reward(self, request: pb.RewardRequest, context: grpc.ServicerContext) -> pb.RewardResponse:
        return REWARD_RESPONSE

    def Activate(self, request: pb.ActivateRequest,
                 context: grpc.ServicerContext) -> pb.ActivateResponse:
        return pb.ActivateResponse()


class AsyncEchoServicer(decision_pb2_grpc.DecisionServiceServicer):
    """The same fixed responses from coroutines (``grpc.aio``)."""

    async def Choose(self, request: pb.ChooseRequest,
                     context: grpc.aio.ServicerContext) -> pb.ChooseResponse:
        return CHOOSE_RESPONSE

    async def Reward(self, request: pb.RewardRequest,
                     context: grpc.aio.ServicerContext) -> pb.RewardResponse:
        return REWARD_RESPONSE

    async def Activate(self, request: pb.ActivateRequest,
                       context: grpc.aio.ServicerContext) -> pb.ActivateResponse:
        return pb.ActivateResponse()


def options(reuse_port: bool) -> list[tuple[str, int]]:
    return [("grpc.so_reuseport", 1 if reuse_port else 0)]


def serve_sync(listen: str, stop: threading.Event, reuse_port: bool = False) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SYNC_WORKERS,
                                                    thread_name_prefix="echo-rpc"),
                         options=options(reuse_port))
    decision_pb2_grpc.add_DecisionServiceServicer_to_server(EchoServicer(), server)
    announce(listen, server.add_insecure_port(listen))
    server.start()
    stop.wait()
    server.stop(grace=5).wait()


async def serve_aio(listen: str, stop: threading.Event, reuse_port: bool = False) -> None:
    server = grpc.aio.server(options=options(reuse_port))
    decision_pb2_grpc.add_DecisionServiceServicer_to_server(AsyncEchoServicer(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    announce(listen, port)
    await asyncio.to_thread(stop.wait)
    await server.stop(grace=5)


def announce(listen: str, port: int) -> None:
    """Print the line the load generator waits for (port 0 = the free port picked)."""
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen}")
    print(f"arbiter listening on {listen.rsplit(':', 1)[0]}:{port}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = any free)")
    parser.add_argument("--stack", choices=STACKS, default="aio", help="gRPC Python server stack")
    parser.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT (off by default)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.stack == "sync":
        serve_sync(args.listen, stop, args.reuse_port)
    else:
        asyncio.run(serve_aio(args.listen, stop, args.reuse_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
