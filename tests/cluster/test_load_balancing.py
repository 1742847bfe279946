"""Two ``arbiter serve`` processes on one database behind a load balancer: nginx ``grpc_pass``
(a real nginx, started here) and gRPC's client-side ``round_robin``.

Consecutive calls go to alternating servers, so a Reward usually reaches the process that did not
make the decision: it is answered from the log, not from that process's memory. Which server
answered is read from outside the servers: nginx's access log (``$upstream_addr``) and the client
channel's own per-address call counts (channelz).

The SQLite case is two processes on one host (what ``--processes`` runs); several hosts share
one PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from grpc._cython import cygrpc  # channelz, as grpcio-channelz reads it

from arbiter.client import DecisionClient
from tests.postgres import free_port
from tests.process import ROOT, ServerProcess

DEMO_CONFIG = ROOT / "examples" / "experiments.toml"
PAIRS = 100
INSTALL_NGINX = (
    "install it with `sudo bash scripts/install-deps.sh` (what `make test` runs as root: Debian's "
    "nginx, which has the http2 and grpc modules)")

pytestmark = pytest.mark.slow


@pytest.fixture
def two_servers(db_url: str) -> Iterator[list[ServerProcess]]:
    """Two servers (each its own process) on the one database ``db_url``."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):
            servers.append(ServerProcess(DEMO_CONFIG, db_url))
        yield servers
    finally:
        for server in servers:
            server.stop()


def nginx_binary() -> str:
    """nginx's path (it lives in /usr/sbin, which a non-root PATH may lack); fails if missing."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which("nginx", path=path)
    if found is None:
        pytest.fail(f"nginx not found: {INSTALL_NGINX}")
    return found


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
error_log {tmp}/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format calls '$request_uri $status $upstream_addr';
    access_log {tmp}/access.log calls;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream arbiter {{
{servers}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            grpc_pass grpc://arbiter;
        }}
    }}
}}
"""


class Nginx:
    """A real nginx in the foreground on ``127.0.0.1:port``, round-robin over ``backends``."""

    def __init__(self, tmp: Path, backends: list[str], *, start_timeout: float = 10) -> None:
        binary = nginx_binary()
        tmp.mkdir(parents=True, exist_ok=True)
        self.access_log = tmp / "access.log"
        self._error_log = tmp / "error.log"
        servers = "\n".join(f"        server {backend};" for backend in backends)
        for _ in range(3):  # the free port may be taken before nginx binds it: try another
            self.port = free_port()
            conf = tmp / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, servers=servers, port=self.port))
            self.proc = subprocess.Popen([binary, "-p", str(tmp), "-e", str(self._error_log),
                                          "-c", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if self._wait_listening(start_timeout):
                return
            errors = self._errors()
            self.stop()
            if "Address already in use" not in errors:
                break
        raise AssertionError(f"nginx did not start on 127.0.0.1:{self.port} in {start_timeout}s:\n"
                             f"{errors}")

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def _errors(self) -> str:
        """What nginx said: its stderr (once it exited) and its error log."""
        stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        return stderr + (self._error_log.read_text() if self._error_log.exists() else "")

    def calls(self) -> list[tuple[str, str, str]]:
        """(method, HTTP status, upstream address) of every call nginx passed on, in order."""
        rows = []
        for line in self.access_log.read_text().splitlines():
            uri, status, upstream = line.split(" ", 2)
            rows.append((uri.rsplit("/", 1)[1], status, upstream))
        return rows

    def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown); SIGKILL if it is still there after 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture
def nginx(tmp_path: Path, two_servers: list[ServerProcess]) -> Iterator[Nginx]:
    proxy = Nginx(tmp_path / "nginx", [server.target for server in two_servers])
    try:
        yield proxy
    finally:
        proxy.stop()


def choose_then_reward(client: DecisionClient, pairs: int) -> list[str]:
    """``pairs`` Choose calls, each followed by its Reward on the next call; every Reward must
    be learned (the first reward of an open window). Returns the event ids."""
    event_ids = []
    for i in range(pairs):
        choice = client.choose("homepage", unit_id=f"user-{i}",
                               context={"user": {"country": ("DE", "FR")[i % 2], "age": i % 50}},
                               actions=["a", "b", "c"])
        assert choice.action_id in ("a", "b", "c")
        assert client.reward(choice.event_id, 1.0 if choice.action_id == "a" else 0.0).learned
        event_ids.append(choice.event_id)
    return event_ids


def assert_logged_once(db_url: str, event_ids: list[str]) -> None:
    """The log holds exactly one decision, one reward and one learned event per event id."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            def ids(sql: str) -> Counter[str]:
                return Counter(str(row[0]) for row in connection.execute(sa.text(sql)))

            expected = Counter(event_ids)
            assert len(expected) == len(event_ids)
            assert ids("SELECT event_id FROM decisions") == expected
            assert ids("SELECT event_id FROM rewards WHERE learned") == expected
            assert ids("SELECT event_id FROM rewards") == expected
            assert ids("SELECT event_id FROM learnings WHERE event_id IS NOT NULL") == expected
    finally:
        engine.dispose()


def test_choose_and_reward_through_nginx_grpc_pass_reach_both_servers(
        db_url: str, two_servers: list[ServerProcess], nginx: Nginx) -> None:
    with DecisionClient(f"127.0.0.1:{nginx.port}", timeout=10) as client:
        event_ids = choose_then_reward(client, PAIRS)

    calls = nginx.calls()
    assert [method for method, _, _ in calls] == ["Choose", "Reward"] * PAIRS
    assert {status for _, status, _ in calls} == {"200"}
    backends = {server.target for server in two_servers}
    assert Counter(upstream for _, _, upstream in calls).keys() == backends  # one try each, both
    crossed = sum(calls[i][2] != calls[i + 1][2] for i in range(0, len(calls), 2))
    assert crossed >= PAIRS // 2, f"only {crossed} of {PAIRS} Rewards reached the other server"
    assert_logged_once(db_url, event_ids)


def subchannel_calls(target_prefix: str) -> dict[str, int]:
    """Calls each subchannel of this process's channels to ``target_prefix`` made (channelz):
    address -> calls started."""
    started: Counter[str] = Counter()
    for channel in json.loads(cygrpc.channelz_get_top_channels(0)).get("channel", []):
        if not channel["data"]["target"].startswith(target_prefix):
            continue
        for ref in channel.get("subchannelRef", []):
            sub = json.loads(cygrpc.channelz_get_subchannel(int(ref["subchannelId"])))["subchannel"]
            started[sub["data"]["target"]] += int(sub["data"].get("callsStarted", 0))
    return dict(started)


def test_client_side_round_robin_alternates_between_servers(
        db_url: str, two_servers: list[ServerProcess]) -> None:
    addresses = [server.target for server in two_servers]
    target = "ipv4:" + ",".join(addresses)
    with DecisionClient(target, timeout=10,
                        options=[("grpc.lb_policy_name", "round_robin"),
                                 ("grpc.use_local_subchannel_pool", 1)]) as client:
        event_ids = choose_then_reward(client, PAIRS)
        per_address = subchannel_calls(target)

    # Each address took half the calls (round_robin alternates; a subchannel that connects
    # later than the other may miss the first few).
    assert sorted(per_address) == sorted(f"ipv4:{address}" for address in addresses), per_address
    assert sum(per_address.values()) == 2 * PAIRS
    assert min(per_address.values()) >= PAIRS // 2, per_address
    assert_logged_once(db_url, event_ids)
