"""The memory one request can pin: RSS of a real server before and after 30 large Chooses.

``python -m bench.request_memory [--features-per-action N] [-- SERVE FLAGS...]`` starts
``arbiter serve`` (SQLite in a temporary folder, one LinUCB experiment), sends 30 Chooses of
1,000 actions each with N (default 200) features of names unique to the request (issue 14's
3.7 MB request), and prints the server's RSS before, after, and 5 s later, and the answers.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc

CONFIG = '[experiments.homepage]\npolicy = "linucb"\n'


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def base36(number: int, width: int = 5) -> str:
    digits = ""
    while number or len(digits) < width:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits


def request(round_: int, features: int) -> pb.ChooseRequest:
    """1,000 actions, each with ``features`` numbers whose 5-character names no other feature
    of any request has (a 3.7 MB message with 200)."""
    first = round_ * 1000 * features
    return pb.ChooseRequest(experiment="homepage", actions=[
        pb.Action(id=f"a{k}", features=[pb.Namespace(
            name="i", numbers={base36(first + k * features + j): 1.0 for j in range(features)})])
        for k in range(1000)])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features-per-action", type=int, default=200)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--trace", action="store_true", help="print RSS after every request")
    parser.add_argument("serve", nargs="*", help="extra `arbiter serve` flags (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder, "experiments.toml")
        config.write_text(CONFIG)
        server = subprocess.Popen(
            [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0",
             "--db", f"sqlite:///{folder}/arbiter.db", "--config", str(config), *args.serve],
            stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            address = server.stdout.readline().split()[-1]
            options = [("grpc.max_send_message_length", 64 * 2**20)]
            with grpc.insecure_channel(address, options=options) as channel:
                stub = decision_pb2_grpc.DecisionServiceStub(channel)
                stub.Choose(pb.ChooseRequest(experiment="homepage", actions=[pb.Action(id="a")]))
                time.sleep(1)
                before = rss_mb(server.pid)
                answers: collections.Counter[str] = collections.Counter()
                size = 0
                for r in range(args.requests):
                    message = request(r, args.features_per_action)
                    size = message.ByteSize()
                    try:
                        stub.Choose(message, timeout=120)
                        answers["OK"] += 1
                    except grpc.RpcError as error:
                        answers[f"{error.code().name}: {error.details()[:90]}"] += 1
                    if args.trace:
                        print(f"  after request {r + 1}: RSS {rss_mb(server.pid):.0f} MB", flush=True)
                after = rss_mb(server.pid)
                time.sleep(5)
                later = rss_mb(server.pid)
            print(f"{args.requests} Chooses of {size / 1e6:.2f} MB (1,000 actions x "
                  f"{args.features_per_action} unique features): RSS {before:.0f} MB before, "
                  f"{after:.0f} MB after, {later:.0f} MB 5 s later")
            for answer, count in answers.items():
                print(f"  {count} x {answer}")
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
