"""The echo baseline of ``make bench``: ``arbiter.v1.DecisionService`` answering a fixed reply.

Built from the same generated code and with the same threading model as the real server
(``grpc.server`` over a 32-thread pool), so the difference between the two under the same load
is what Arbiter's own work costs: validation, the policy, the SQL log, the learner.

    python -m bench.echo --listen 127.0.0.1:0      # prints "arbiter listening on HOST:PORT"

SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from concurrent import futures

import grpc

from protos.arbiter.v1 import decision_pb2 as pb
from protos.arbiter.v1 import decision_pb2_grpc

WORKERS = 32
"""Thread-pool size, the real server's default (``arbiter serve --workers``)."""

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
    """Answers every call with the same fixed response, whatever the request."""

    def Choose(self, request: pb.ChooseRequest, context: grpc.ServicerContext) -> pb.ChooseResponse:
        return CHOOSE_RESPONSE

    def Reward(self, request: pb.RewardRequest, context: grpc.ServicerContext) -> pb.RewardResponse:
        return REWARD_RESPONSE

    def Activate(self, request: pb.ActivateRequest,
                 context: grpc.ServicerContext) -> pb.ActivateResponse:
        return pb.ActivateResponse()


def start(listen: str, workers: int = WORKERS) -> tuple[grpc.Server, str]:
    """Bind ``listen`` (port 0 = any free port), start serving; returns the server and ``HOST:PORT``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="echo-rpc"),
                         options=[("grpc.so_reuseport", 0)])
    decision_pb2_grpc.add_DecisionServiceServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen}")
    server.start()
    return server, f"{listen.rsplit(':', 1)[0]}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = any free)")
    parser.add_argument("--workers", type=int, default=WORKERS, help="gRPC worker threads")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server, address = start(args.listen, args.workers)
    print(f"arbiter listening on {address}", flush=True)
    stop.wait()
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
