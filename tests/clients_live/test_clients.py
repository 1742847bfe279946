"""Each generated client (Node, Go, Java) against a real ``arbiter serve`` subprocess.

One server (free port, SQLite file under a temp dir) serves the module. Each test runs that
language's own test program through ``make -C clients test-<lang>`` with ``ARBITER_TARGET`` set;
the program checks that Choose returns a valid decision, that Reward on that event succeeds, that
a second Reward gets ALREADY_EXISTS and that a Choose with no actions gets INVALID_ARGUMENT, and
exits non-zero with its own message otherwise. Builds are cached in each client's build folder.

A second server serves TLS, requires a client certificate (mTLS) and tokens (certificates made
by tests/certs.py, a token file with a ``decide`` token): each language runs the same checks with
ARBITER_TLS_CA, ARBITER_TLS_CERT, ARBITER_TLS_KEY and ARBITER_TOKEN set, and then checks that a
call without the token gets UNAUTHENTICATED and that a plaintext client gets UNAVAILABLE at once.

A language whose toolchain is missing is skipped with the command that installs it; with ``CI``
set it fails instead, so CI never skips silently.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from arbiter.server.auth import sha256_hex
from tests.certs import make_pki

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
EXPERIMENT = "homepage"
CONFIG = f"""\
[experiments.{EXPERIMENT}]
policy = "linucb"
params = {{ alpha = 0.5 }}
"""
START_TIMEOUT_S = 60
# First runs compile (npm ci + tsc, go vet/build, javac); later ones reuse the build folders.
LANGUAGE_TIMEOUT_S = 600
GOCODE = Path("/usr/share/gocode/src")
JAVA_SHARE = Path("/usr/share/java")
# What `make test` runs as root; the one command for every toolchain the suite needs.
INSTALL = "sudo bash scripts/install-deps.sh"


TOKEN = "live-clients-token"


@dataclass
class Server:
    target: str
    log: Path
    proc: subprocess.Popen[str]
    env: dict[str, str]  # what the client test programs need besides ARBITER_TARGET

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m arbiter.cli serve`` on 127.0.0.1:0 with a SQLite file; stopped with SIGTERM."""
    yield from _serve(tmp_path_factory.mktemp("clients_live"), secure=False)


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same with TLS, a required client certificate and a token file."""
    yield from _serve(tmp_path_factory.mktemp("clients_live_tls"), secure=True)


def _serve(tmp: Path, *, secure: bool) -> Iterator[Server]:
    config = tmp / "experiments.toml"
    config.write_text(CONFIG)
    log = tmp / "server.log"
    flags: list[str] = []
    env: dict[str, str] = {}
    if secure:
        pki = make_pki(tmp / "pki")
        tokens = tmp / "tokens.toml"
        tokens.write_text(f'[[tokens]]\nname = "live-clients"\nsha256 = "{sha256_hex(TOKEN)}"\n'
                          'roles = ["decide"]\n')
        flags = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                 "--tls-client-ca", str(pki.ca), "--auth-tokens", str(tokens)]
        env = {"ARBITER_TLS_CA": str(pki.ca), "ARBITER_TLS_CERT": str(pki.client_cert),
               "ARBITER_TLS_KEY": str(pki.client_key), "ARBITER_TOKEN": TOKEN}
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0",
             "--db", f"sqlite:///{tmp / 'arbiter.db'}", "--config", str(config), *flags],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=log_file, text=True)
    try:
        target = _read_target(proc, log)
        yield Server(target=target, log=log, proc=proc, env=env)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def _read_target(proc: subprocess.Popen[str], log: Path) -> str:
    """Wait for ``arbiter listening on HOST:PORT``; keep draining stdout afterwards."""
    assert proc.stdout is not None
    stdout = proc.stdout
    first: list[str] = []
    got_line = threading.Event()

    def drain() -> None:
        first.append(stdout.readline())
        got_line.set()
        for _ in stdout:  # the rest of stdout, so the server never blocks on a full pipe
            pass

    threading.Thread(target=drain, daemon=True).start()
    if not got_line.wait(START_TIMEOUT_S):
        proc.kill()
        pytest.fail(f"server printed nothing in {START_TIMEOUT_S}s; log:\n{log.read_text()}")
    line = first[0]
    prefix = "arbiter listening on "
    if not line.startswith(prefix):
        proc.kill()
        proc.wait(timeout=30)
        pytest.fail(f"server did not start: first line {line!r}; log:\n{log.read_text()}")
    return line.removeprefix(prefix).strip()


def _java_jars() -> list[str]:
    """The Debian jars clients/Makefile compiles and runs the Java client with."""
    out = subprocess.run(["make", "-s", "-C", str(CLIENTS), "java-classpath"],
                         capture_output=True, text=True, check=True).stdout
    return [*out.strip().split(":"), str(JAVA_SHARE / "geronimo-annotation-1.3-spec.jar")]


def _missing(language: str) -> list[str]:
    """What the language's build needs and this machine lacks."""
    missing = [tool for tool in ("make",) if shutil.which(tool) is None]
    if language == "node":
        missing += [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    elif language == "go":
        missing += [tool for tool in ("go",) if shutil.which(tool) is None]
        missing += [f"{GOCODE / pkg} (Debian's Go sources)" for pkg in
                    ("google.golang.org/grpc", "google.golang.org/protobuf",
                     "github.com/golang/protobuf/proto")
                    if not (GOCODE / pkg).is_dir()]
    elif language == "java":
        missing += [tool for tool in ("javac", "java", "jar") if shutil.which(tool) is None]
        if shutil.which("make"):
            missing += [jar for jar in _java_jars() if not Path(jar).is_file()]
    return missing


def _require(language: str) -> None:
    missing = _missing(language)
    if not missing:
        return
    message = (f"{language} toolchain missing ({', '.join(missing)}): install it with "
               f"`{INSTALL}`")
    if os.environ.get("CI"):
        pytest.fail(f"CI must test every client: {message}")
    pytest.skip(message)


def _run_client_test(language: str, server: Server) -> None:
    _require(language)
    env = {**os.environ, "ARBITER_TARGET": server.target, "ARBITER_EXPERIMENT": EXPERIMENT,
           **server.env}
    for variable in ("ARBITER_TLS_CA", "ARBITER_TLS_CERT", "ARBITER_TLS_KEY", "ARBITER_TOKEN"):
        if variable not in server.env:
            env.pop(variable, None)  # the plaintext server: none from the caller's environment

    try:
        result = subprocess.run(
            ["make", "-s", "-C", str(CLIENTS), f"test-{language}", f"ARBITER_TARGET={server.target}"],
            env=env, capture_output=True, text=True, timeout=LANGUAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        partial = "\n".join(_text(part) for part in (e.stdout, e.stderr))
        pytest.fail(f"{language} client test timed out after {LANGUAGE_TIMEOUT_S}s:\n{_tail(partial, 150)}")

    output = f"{result.stdout}\n{result.stderr}".strip()
    assert result.returncode == 0, (
        f"{language} client test failed (exit {result.returncode}) against {server.target}:\n"
        f"{_tail(output, 150)}\n--- server log (tail) ---\n{server.log_tail()}")
    assert server.proc.poll() is None, f"server exited during the {language} test:\n{server.log_tail()}"


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _tail(text: str, lines: int) -> str:
    kept = text.splitlines()
    return "\n".join(kept if len(kept) <= lines else ["[...]", *kept[-lines:]])


def test_node_client(server: Server) -> None:
    """`npm test` in clients/node: DecisionClient's unit tests and live checks."""
    _run_client_test("node", server)


def test_go_client(server: Server) -> None:
    """`go test` of clients/go/arbiter (compiled to bin/arbiter.test): unit and live checks."""
    _run_client_test("go", server)


def test_java_client(server: Server) -> None:
    """dev.arbiter.client.LiveCheck, compiled with javac against Debian's gRPC-Java."""
    _run_client_test("java", server)


@pytest.mark.parametrize("language", ["node", "go", "java"])
def test_client_with_tls_a_client_certificate_and_a_token(
        secure_server: Server, language: str) -> None:
    """The same checks over mTLS with a token; without the token UNAUTHENTICATED, and a
    plaintext client UNAVAILABLE at once (each language's own test program checks both)."""
    _run_client_test(language, secure_server)


def test_generated_client_code_matches_protos() -> None:
    """The committed stubs of every language are what `make -C clients generate` makes now."""
    for language in ("node", "go", "java"):
        _require(language)
    for tool in ("protoc", "protoc-gen-go", "protoc-gen-go-grpc", "grpc_java_plugin"):
        if shutil.which(tool) is None:
            _require_tool(tool)

    result = subprocess.run(["make", "-s", "-C", str(CLIENTS), "check-generated"],
                            capture_output=True, text=True, timeout=LANGUAGE_TIMEOUT_S)

    assert result.returncode == 0, _tail(f"{result.stdout}\n{result.stderr}", 150)


def _require_tool(tool: str) -> None:
    message = f"{tool} missing: install it with `{INSTALL}`"
    if os.environ.get("CI"):
        pytest.fail(f"CI must check the generated clients: {message}")
    pytest.skip(message)
