"""TLS and mTLS (``arbiter serve --tls-cert --tls-key [--tls-client-ca]``), through real channels.

Certificates are made by the tests (tests/certs.py). A TLS client with the CA (and, for mTLS,
its certificate) is served; a plaintext client, a client that does not trust the server's CA,
and under mTLS a client without a certificate or with one of another CA fail with UNAVAILABLE at
once (no hang until the deadline). The serve command refuses bad flag combinations and a
plaintext non-loopback address (exit 2, one line) unless ``--insecure``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arbiter.cli.main import main
from arbiter.client import Connection, DecisionClient
from arbiter.server.app import App
from arbiter.server.transport import TlsFiles, is_loopback
from arbiter.v1 import decision_pb2, decision_pb2_grpc
from tests.certs import Pki, make_pki
from tests.conftest import DEMO, running_apps
from tests.process import ServerProcess
from tests.server.test_auth import token_file

DEADLINE_S = 20.0  # a failing connection must answer long before this


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., App]]:
    yield from running_apps(f"sqlite:///{tmp_path / 'arbiter.db'}", default_config=DEMO)


def _choose_code(target: str, connection: Connection) -> tuple[grpc.StatusCode, float]:
    """The status of one Choose over ``connection`` and how long it took."""
    began = time.monotonic()
    with connection.channel(target) as channel:
        try:
            decision_pb2_grpc.DecisionServiceStub(channel).Choose(
                decision_pb2.ChooseRequest(experiment="homepage",
                                           actions=[decision_pb2.Action(id="a")]),
                timeout=DEADLINE_S, metadata=connection.metadata)
        except grpc.RpcError as error:
            return error.code(), time.monotonic() - began
    return grpc.StatusCode.OK, time.monotonic() - began


def test_a_tls_server_serves_a_client_that_trusts_its_ca(
        start: Callable[..., App], pki: Pki) -> None:
    app = start(tls=TlsFiles(cert=str(pki.server_cert), key=str(pki.server_key)))
    target = f"127.0.0.1:{app.port}"

    with DecisionClient(target, ca_file=pki.ca) as client:
        choice = client.choose("homepage", actions=["a", "b"])
        assert client.reward(choice.event_id, 1.0).learned
    with DecisionClient(f"localhost:{app.port}", ca_file=pki.ca) as client:  # by name too
        client.choose("homepage", actions=["a", "b"])
    with Connection(ca_file=pki.ca).channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("connection", ["plaintext", "untrusted-ca"])
def test_a_client_that_cannot_speak_tls_with_the_server_fails_at_once_with_unavailable(
        start: Callable[..., App], pki: Pki, connection: str) -> None:
    app = start(tls=TlsFiles(cert=str(pki.server_cert), key=str(pki.server_key)))
    client = Connection() if connection == "plaintext" else Connection(ca_file=pki.other_ca)

    code, took = _choose_code(f"127.0.0.1:{app.port}", client)

    assert code == grpc.StatusCode.UNAVAILABLE
    assert took < DEADLINE_S / 2


def test_mtls_serves_a_client_certificate_of_its_ca_and_refuses_others(
        start: Callable[..., App], pki: Pki) -> None:
    app = start(tls=TlsFiles(cert=str(pki.server_cert), key=str(pki.server_key),
                             client_ca=str(pki.ca)))
    target = f"127.0.0.1:{app.port}"

    ok, _ = _choose_code(target, Connection(ca_file=pki.ca, cert_file=pki.client_cert,
                                            key_file=pki.client_key))
    without, took_without = _choose_code(target, Connection(ca_file=pki.ca))
    stranger, took_stranger = _choose_code(target, Connection(
        ca_file=pki.ca, cert_file=pki.other_client_cert, key_file=pki.other_client_key))
    plaintext, took_plaintext = _choose_code(target, Connection())

    assert ok == grpc.StatusCode.OK
    assert without == stranger == plaintext == grpc.StatusCode.UNAVAILABLE
    assert max(took_without, took_stranger, took_plaintext) < DEADLINE_S / 2


def test_tls_and_tokens_together_through_the_python_client_and_the_admin_cli(
        start: Callable[..., App], pki: Pki, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    tokens = token_file(tmp_path / "tokens.toml", {
        "d-token": ("decider", ["decide"], None), "a-token": ("operator", ["admin"], None)})
    app = start(tls=TlsFiles(cert=str(pki.server_cert), key=str(pki.server_key),
                             client_ca=str(pki.ca)), auth_tokens=str(tokens))
    target = f"127.0.0.1:{app.port}"
    files = {"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key}
    with DecisionClient(target, token="d-token", **files) as client:  # type: ignore[arg-type]
        client.choose("homepage", actions=["a", "b"])
    (tmp_path / "token").write_text("a-token\n")
    tls = ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert),
           "--tls-key", str(pki.client_key)]

    assert main(["report", "--target", target, "--experiment", "homepage",
                 "--token-file", str(tmp_path / "token"), *tls]) == 0
    assert main(["report", "--target", target, "--experiment", "homepage", *tls]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


# ------------------------------------------------------------------------ the serve command
def _serve(tmp_path: Path, *flags: str) -> list[str]:
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "uniform"\n')
    return ["serve", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--config", str(config), *flags]


@pytest.mark.parametrize(("flags", "words"), [
    (["--listen", "127.0.0.1:0", "--tls-cert", "CERT"], ["--tls-cert and --tls-key"]),
    (["--listen", "127.0.0.1:0", "--tls-key", "KEY"], ["--tls-cert and --tls-key"]),
    (["--listen", "127.0.0.1:0", "--tls-client-ca", "CA"], ["--tls-client-ca needs"]),
    (["--listen", "127.0.0.1:0", "--tls-cert", "nosuch.pem", "--tls-key", "KEY"],
     ["--tls-cert nosuch.pem", "cannot read"]),
    (["--listen", "127.0.0.1:0", "--tls-cert", "KEY", "--tls-key", "KEY"],
     ["--tls-cert", "CERTIFICATE"]),
    (["--listen", "0.0.0.0:0"], ["refusing to listen on 0.0.0.0:0 without TLS", "--insecure"]),
    (["--listen", "[::]:0", "--auth-tokens", "TOKENS"], ["refusing to listen on [::]:0"]),
])
def test_serve_refuses_bad_security_flags_with_exit_2_and_one_line(
        tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str], flags: list[str],
        words: list[str]) -> None:
    tokens = token_file(tmp_path / "tokens.toml", {"x": ("x", ["read"], None)})
    files = {"CERT": str(pki.server_cert), "KEY": str(pki.server_key), "CA": str(pki.ca),
             "TOKENS": str(tokens)}

    code = main(_serve(tmp_path, *[files.get(flag, flag) for flag in flags]))

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("arbiter: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err
    assert not (tmp_path / "a.db").exists()


def test_serve_listens_on_a_network_address_with_tls_or_with_insecure(
        tmp_path: Path, pki: Pki) -> None:
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "uniform"\n')
    for flags in (["--insecure"], ["--tls-cert", str(pki.server_cert),
                                   "--tls-key", str(pki.server_key)]):
        server = ServerProcess(config, f"sqlite:///{tmp_path / 'a.db'}", "--listen", "0.0.0.0:0",
                               *flags)
        code, _, err = server.stop()
        assert server.target.startswith("0.0.0.0:")
        assert code == 0, err


@pytest.mark.parametrize(("listen", "loopback"), [
    ("127.0.0.1:50051", True), ("127.0.0.2:1", True), ("[::1]:50051", True),
    ("localhost:50051", True), ("unix:/tmp/arbiter.sock", True),
    ("0.0.0.0:50051", False), ("[::]:50051", False), (":50051", False),
    ("10.1.2.3:50051", False), ("no-such-host.invalid:1", False),
])
def test_loopback_addresses(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


def test_promote_if_better_goes_through_tls_and_a_token(
        pki: Pki, tmp_path: Path) -> None:
    from arbiter.cli.served import from_server, promote
    from arbiter.evaluation.promote import decide_promotion
    from arbiter.evaluation.summary import CandidateResult, Comparison, Interval, Summary, VariantResult
    from tests.server.test_auth import CONFIG

    tokens = token_file(tmp_path / "tokens.toml", {"a-token": ("operator", ["admin"], None)})
    apps = running_apps(f"sqlite:///{tmp_path / 'arbiter.db'}", default_config=CONFIG)
    start = next(apps)
    try:
        app = start(tls=TlsFiles(cert=str(pki.server_cert), key=str(pki.server_key)),
                    auth_tokens=str(tokens))
        target = f"127.0.0.1:{app.port}"
        versus = Comparison(candidate="challenger", reference="variant champion", rounds=1000,
                            reference_mean=0.5, difference=Interval(0.2, 0.1, 0.3), min_effect=0.005,
                            effective_sample_size=500.0, unsupported_share=0.0, outcome="better")
        summary = Summary(
            experiment="secret", n_rounds=2000, confidence=0.95, interval="normal", primary="dr",
            logging=Interval(0.5, 0.45, 0.55),
            variants={"champion": VariantResult(1000, Interval(0.5, 0.45, 0.55)),
                      "challenger": VariantResult(1000, Interval(0.5, 0.45, 0.55))},
            candidates=[CandidateResult(name="challenger", policy="linucb", params={},
                                        baseline=False, estimates={"dr": Interval(0.7, 0.6, 0.8)},
                                        effective_sample_size=500.0,
                                        comparisons=[replace(versus, reference="logging policy"), versus])],
            winner="challenger", verdict="")
        anonymous = Connection(ca_file=pki.ca)
        with pytest.raises(grpc.RpcError) as refused:
            from_server(target, "secret", anonymous)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

        operator = Connection(ca_file=pki.ca, token="a-token")
        served = from_server(target, "secret", operator)
        promotion = decide_promotion(summary, control=served.control, variants=served.variants)
        assert promotion.promote and promotion.variant == "challenger"
        promote(target, "secret", promotion.variant, promotion.reason, operator)

        assert app.controller.promotions("secret")[-1]["principal"] == "operator"
    finally:
        for _ in apps:
            pass
