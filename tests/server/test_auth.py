"""Tokens with roles (``arbiter serve --auth-tokens``), through a real server and real channels.

Every status a caller can get: UNAUTHENTICATED (no token, an unknown one, another scheme),
PERMISSION_DENIED (a known token without the method's role), NOT_FOUND (an experiment outside
the token's list, or an event of one — with the very message an unknown one gets); health
stays open; reflection can be turned off; SetTraffic and Promote write the principal into
their audit rows; the token file is reloaded on SIGHUP; a server without tokens says it is open.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from arbiter.cli.main import main
from arbiter.client import DecisionClient, NotFoundError, UnauthenticatedError
from arbiter.log.schema import experiment_states, promotions
from arbiter.server.app import App
from arbiter.server.auth import TokenFileError, load_tokens, parse_tokens, sha256_hex
from arbiter.server.cache import DecisionCache
from arbiter.v1 import decision_pb2, decision_pb2_grpc, experiments_pb2, experiments_pb2_grpc
from tests.conftest import count_rows, running_apps
from tests.process import ROOT, ServerProcess

CONFIG: dict[str, Any] = {"experiments": {
    "homepage": {"policy": "linucb", "params": {"alpha": 0.5}},
    "secret": {"control": "champion", "variants": [
        {"name": "champion", "policy": "uniform", "traffic": 0.5},
        {"name": "challenger", "policy": "linucb", "traffic": 0.5},
        {"name": "candidate", "policy": "lints", "shadow": True}]},
}}
# token -> (name, roles, experiments or None)
TOKENS: dict[str, tuple[str, list[str], list[str] | None]] = {
    "t-decide-home": ("checkout-service", ["decide"], ["homepage"]),
    "t-decide-all": ("ranker", ["decide"], None),
    "t-read": ("dashboard", ["read"], None),
    "t-admin-home": ("homepage-owner", ["admin"], ["homepage"]),
    "t-admin": ("ops", ["admin"], None),
}
ACTIONS = [decision_pb2.Action(id="a"), decision_pb2.Action(id="b")]


def token_file(path: Path, tokens: dict[str, tuple[str, list[str], list[str] | None]]) -> Path:
    lines = []
    for token, (name, roles, experiments) in tokens.items():
        lines += ["[[tokens]]", f'name = "{name}"', f'sha256 = "{sha256_hex(token)}"',
                  "roles = [" + ", ".join(f'"{r}"' for r in roles) + "]"]
        if experiments is not None:
            lines.append("experiments = [" + ", ".join(f'"{e}"' for e in experiments) + "]")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'arbiter.db'}"


@pytest.fixture
def start(sqlite_url: str) -> Iterator[Callable[..., App]]:
    yield from running_apps(sqlite_url, default_config=CONFIG)


@pytest.fixture
def app(start: Callable[..., App], tmp_path: Path) -> App:
    return start(auth_tokens=str(token_file(tmp_path / "tokens.toml", TOKENS)))


@pytest.fixture
def channel(app: App) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield channel


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def choose(channel: grpc.Channel, experiment: str, metadata: Any = None,
           **fields: Any) -> decision_pb2.ChooseResponse:
    stub = decision_pb2_grpc.DecisionServiceStub(channel)
    response: decision_pb2.ChooseResponse = stub.Choose(
        decision_pb2.ChooseRequest(experiment=experiment, actions=ACTIONS, **fields),
        metadata=metadata, timeout=10)
    return response


# ----------------------------------------------------------------------------- UNAUTHENTICATED
@pytest.mark.parametrize("metadata", [
    None,
    bearer("not-a-token"),
    (("authorization", "Basic dC1kZWNpZGUtYWxs"),),  # another scheme, even for a known secret
    (("authorization", "t-decide-all"),),  # no scheme
    (("authorization", "Bearer "),),
    (("x-token", "Bearer t-decide-all"),),  # another key
], ids=["none", "unknown", "basic", "no-scheme", "empty", "other-key"])
def test_no_or_unknown_token_is_unauthenticated_on_every_service(
        channel: grpc.Channel, metadata: Any, sqlite_url: str) -> None:
    decisions = decision_pb2_grpc.DecisionServiceStub(channel)
    experiments = experiments_pb2_grpc.ExperimentServiceStub(channel)
    calls = [
        lambda: choose(channel, "homepage", metadata),
        lambda: decisions.Reward(decision_pb2.RewardRequest(event_id="e", value=1.0),
                                 metadata=metadata, timeout=10),
        lambda: decisions.Activate(decision_pb2.ActivateRequest(event_id="e"),
                                   metadata=metadata, timeout=10),
        lambda: experiments.ListExperiments(experiments_pb2.ListExperimentsRequest(),
                                            metadata=metadata, timeout=10),
        lambda: experiments.Promote(experiments_pb2.PromoteRequest(
            experiment="secret", variant="challenger"), metadata=metadata, timeout=10),
    ]
    for call in calls:
        assert code_of(call)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert count_rows(sqlite_url) == {"decisions": 0, "rewards": 0, "learnings": 0}


def test_the_token_is_found_in_any_metadata_position_and_any_case_of_bearer(
        channel: grpc.Channel) -> None:
    metadata = (("x-request-id", "1"), ("x-trace", "abc"),
                ("authorization", "bearer t-decide-all"), ("x-last", "z"))

    response = choose(channel, "homepage", metadata)

    assert response.action_id in {"a", "b"}


def test_two_authorization_entries_are_unauthenticated(channel: grpc.Channel) -> None:
    metadata = (("authorization", "Bearer t-decide-all"), ("authorization", "Bearer t-admin"))

    assert code_of(lambda: choose(channel, "homepage", metadata))[0] == \
        grpc.StatusCode.UNAUTHENTICATED


def test_the_python_client_sends_its_token(app: App) -> None:
    target = f"127.0.0.1:{app.port}"
    with DecisionClient(target, token="t-decide-all") as client:
        choice = client.choose("homepage", actions=["a", "b"])
        assert client.reward(choice.event_id, 1.0).learned
    with DecisionClient(target) as client, pytest.raises(UnauthenticatedError):
        client.choose("homepage", actions=["a", "b"])


# ----------------------------------------------------------------------------- PERMISSION_DENIED
def test_each_method_needs_its_role(channel: grpc.Channel) -> None:
    decisions = decision_pb2_grpc.DecisionServiceStub(channel)
    experiments = experiments_pb2_grpc.ExperimentServiceStub(channel)

    def reward(token: str) -> object:
        return decisions.Reward(decision_pb2.RewardRequest(event_id="nosuch", value=1.0),
                                metadata=bearer(token), timeout=10)

    def activate(token: str) -> object:
        return decisions.Activate(decision_pb2.ActivateRequest(event_id="nosuch"),
                                  metadata=bearer(token), timeout=10)

    def choose_batch(token: str) -> object:
        return decisions.ChooseBatch(decision_pb2.ChooseBatchRequest(requests=[
            decision_pb2.ChooseRequest(experiment="secret", actions=ACTIONS)]),
            metadata=bearer(token), timeout=10)

    def listing(token: str) -> object:
        return experiments.ListExperiments(experiments_pb2.ListExperimentsRequest(),
                                           metadata=bearer(token), timeout=10)

    def get(token: str) -> object:
        return experiments.GetExperiment(experiments_pb2.GetExperimentRequest(
            experiment="secret"), metadata=bearer(token), timeout=10)

    def report(token: str) -> object:
        return experiments.GetReport(experiments_pb2.GetReportRequest(experiment="secret"),
                                     metadata=bearer(token), timeout=30)

    def set_traffic(token: str) -> object:
        return experiments.SetTraffic(experiments_pb2.SetTrafficRequest(
            experiment="secret", traffic={"champion": 0.5, "challenger": 0.5}),
            metadata=bearer(token), timeout=30)

    def promote(token: str) -> object:
        return experiments.Promote(experiments_pb2.PromoteRequest(
            experiment="secret", variant="nosuch"), metadata=bearer(token), timeout=30)

    denied, allowed = grpc.StatusCode.PERMISSION_DENIED, {
        grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND}  # NOT_FOUND: the event/variant "nosuch"
    expected = {  # token -> what each method answers
        "t-decide-all": [allowed, allowed, allowed, allowed, denied, denied, denied, denied,
                         denied],
        "t-read": [denied, denied, denied, denied, allowed, allowed, allowed, denied, denied],
        "t-admin": [denied, denied, denied, denied, allowed, allowed, allowed, allowed, allowed],
    }
    methods = [lambda t: choose(channel, "secret", bearer(t)), choose_batch, reward, activate,
               listing, get, report, set_traffic, promote]
    for token, answers in expected.items():
        for method, answer in zip(methods, answers, strict=True):
            code, details = code_of(lambda m=method, t=token: m(t))  # type: ignore[misc]
            if answer is denied:
                assert code == denied, (token, code, details)
                assert repr(TOKENS[token][0]) in details  # names the principal, not the token
                assert token not in details
            else:
                assert code in answer, (token, code, details)


# ----------------------------------------------------------------------------- NOT_FOUND
def test_an_experiment_outside_the_tokens_list_is_not_found_like_an_unknown_one(
        channel: grpc.Channel, sqlite_url: str) -> None:
    hidden = code_of(lambda: choose(channel, "secret", bearer("t-decide-home")))
    unknown = code_of(lambda: choose(channel, "nosuch", bearer("t-decide-home")))

    assert hidden[0] == unknown[0] == grpc.StatusCode.NOT_FOUND
    assert hidden[1].replace("secret", "X") == unknown[1].replace("nosuch", "X")
    assert choose(channel, "homepage", bearer("t-decide-home")).action_id in {"a", "b"}
    # In a batch: the hidden experiment's request fails alone, with the same answer.
    batch = decision_pb2_grpc.DecisionServiceStub(channel).ChooseBatch(
        decision_pb2.ChooseBatchRequest(requests=[
            decision_pb2.ChooseRequest(experiment=name, actions=ACTIONS)
            for name in ("secret", "homepage", "nosuch")]),
        metadata=bearer("t-decide-home"), timeout=10)
    hidden_in_batch, served, unknown_in_batch = batch.results
    assert (hidden_in_batch.code, hidden_in_batch.message) == (hidden[0].value[0], hidden[1])
    assert (unknown_in_batch.code, unknown_in_batch.message) == (unknown[0].value[0], unknown[1])
    assert served.code == 0 and served.response.action_id in {"a", "b"}
    assert count_rows(sqlite_url)["decisions"] == 2


def test_an_event_of_a_hidden_experiment_is_not_found_like_an_unknown_one_and_changes_nothing(
        app: App, channel: grpc.Channel, sqlite_url: str) -> None:
    secret = choose(channel, "secret", bearer("t-decide-all"), deferred=True)
    decisions = decision_pb2_grpc.DecisionServiceStub(channel)
    before = count_rows(sqlite_url)

    # Cached here, then (a new cache) read from the log, then unknown.
    for event_id in (secret.event_id, "new cache", secret.event_id, "no-such-event"):
        if event_id == "new cache":
            app.loop.cache = DecisionCache(1 << 20)
            continue
        reward = code_of(lambda e=event_id: decisions.Reward(  # type: ignore[misc]
            decision_pb2.RewardRequest(event_id=e, value=1.0),
            metadata=bearer("t-decide-home"), timeout=10))
        activate = code_of(lambda e=event_id: decisions.Activate(  # type: ignore[misc]
            decision_pb2.ActivateRequest(event_id=e), metadata=bearer("t-decide-home"),
            timeout=10))
        assert reward[0] == activate[0] == grpc.StatusCode.NOT_FOUND
        assert reward[1].replace(event_id, "X") == "no decision with event_id 'X'"
        assert activate[1].replace(event_id, "X") == "no decision with event_id 'X'"

    assert count_rows(sqlite_url) == before
    # A retried Choose with that event id does not say which experiment holds it.
    code, details = code_of(lambda: choose(channel, "homepage", bearer("t-decide-home"),
                                           event_id=secret.event_id))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "secret" not in details
    decisions.Reward(decision_pb2.RewardRequest(event_id=secret.event_id, value=1.0),
                     metadata=bearer("t-decide-all"), timeout=10)  # its owner still may


def test_admin_calls_see_only_the_tokens_experiments(channel: grpc.Channel) -> None:
    stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
    token = bearer("t-admin-home")

    listed = stub.ListExperiments(experiments_pb2.ListExperimentsRequest(), metadata=token,
                                  timeout=10)
    everything = stub.ListExperiments(experiments_pb2.ListExperimentsRequest(),
                                      metadata=bearer("t-read"), timeout=10)

    assert [e.name for e in listed.experiments] == ["homepage"]
    assert [e.name for e in everything.experiments] == ["homepage", "secret"]
    unknown = code_of(lambda: stub.GetExperiment(experiments_pb2.GetExperimentRequest(
        experiment="nosuch"), metadata=token, timeout=10))
    for call in (
        lambda: stub.GetExperiment(experiments_pb2.GetExperimentRequest(experiment="secret"),
                                   metadata=token, timeout=10),
        lambda: stub.GetReport(experiments_pb2.GetReportRequest(experiment="secret"),
                               metadata=token, timeout=10),
        lambda: stub.SetTraffic(experiments_pb2.SetTrafficRequest(
            experiment="secret", traffic={"champion": 0.9, "challenger": 0.1}),
            metadata=token, timeout=10),
        lambda: stub.Promote(experiments_pb2.PromoteRequest(
            experiment="secret", variant="challenger"), metadata=token, timeout=10),
    ):
        code, details = code_of(call)
        assert code == grpc.StatusCode.NOT_FOUND
        assert details.replace("secret", "X") == unknown[1].replace("nosuch", "X")
    assert stub.GetExperiment(experiments_pb2.GetExperimentRequest(experiment="secret"),
                              metadata=bearer("t-admin"), timeout=10).control == "champion"


# ----------------------------------------------------------------------------- open parts
def test_health_needs_no_token(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="arbiter.v1.DecisionService"), timeout=10)

    assert health.status == health_pb2.HealthCheckResponse.SERVING


def _reflected_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answer = next(stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    return {s.name for s in answer.list_services_response.service}


def test_reflection_is_served_unless_turned_off(start: Callable[..., App]) -> None:
    on, off = start(), start(reflection=False)
    with grpc.insecure_channel(f"127.0.0.1:{on.port}") as channel:
        assert "arbiter.v1.DecisionService" in _reflected_services(channel)
    with grpc.insecure_channel(f"127.0.0.1:{off.port}") as channel:
        code, _ = code_of(lambda: _reflected_services(channel))
        assert code == grpc.StatusCode.UNIMPLEMENTED
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


# ----------------------------------------------------------------------------- audit rows
def test_every_experiment_service_write_is_an_audit_row_with_the_principal(
        db_url: str, tmp_path: Path) -> None:
    apps = running_apps(db_url, default_config=CONFIG)
    start = next(apps)
    try:
        app = start(auth_tokens=str(token_file(tmp_path / "tokens.toml", TOKENS)))
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
            stub.SetTraffic(experiments_pb2.SetTrafficRequest(
                experiment="secret", traffic={"champion": 0.7, "challenger": 0.3}),
                metadata=bearer("t-admin"), timeout=30)
            stub.Promote(experiments_pb2.PromoteRequest(
                experiment="secret", variant="candidate", reason="looks better"),
                metadata=bearer("t-admin"), timeout=30)
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as connection:
                states = connection.execute(
                    sa.select(experiment_states.c.version, experiment_states.c.reason,
                              experiment_states.c.principal)
                    .where(experiment_states.c.experiment == "secret")
                    .order_by(experiment_states.c.version)).all()
                audit = connection.execute(
                    sa.select(promotions.c.to_variant, promotions.c.reason,
                              promotions.c.principal, promotions.c.state_version)).all()
        finally:
            engine.dispose()
    finally:
        for _ in apps:
            pass
    # Version 1 is the server's own seeding from the TOML: no principal.
    assert [(v, p) for v, _, p in states] == [(1, None), (2, "ops"), (3, "ops")]
    assert states[1][1] == "traffic set" and states[2][1] == "promoted candidate"
    assert audit == [("candidate", "looks better", "ops", 3)]


# ----------------------------------------------------------------------------- the token file
@pytest.mark.parametrize(("text", "words"), [
    ('[[tokens]]\nname = "a"\nsha256 = "abc"\nroles = ["decide"]\n',
     ["entry 1", "'a'", "`sha256`", "64 hex"]),
    (f'[[tokens]]\nname = "a"\nsha256 = "{"z" * 64}"\nroles = ["decide"]\n',
     ["entry 1", "`sha256`"]),
    (f'[[tokens]]\nname = "a"\nsha256 = "{"0" * 64}"\nroles = ["decide"]\n'
     f'[[tokens]]\nname = "b"\nsha256 = "{"1" * 64}"\nroles = ["write"]\n',
     ["entry 2", "'b'", "`roles`", "'write'", "decide | read | admin"]),
    (f'[[tokens]]\nname = "a"\nsha256 = "{"0" * 64}"\nroles = []\n', ["entry 1", "`roles`"]),
    (f'[[tokens]]\nname = "a"\nsha256 = "{"0" * 64}"\nrole = ["decide"]\n',
     ["entry 1", "'a'", "unknown key 'role'"]),
    (f'[[tokens]]\nsha256 = "{"0" * 64}"\nroles = ["decide"]\n', ["entry 1", "`name`"]),
    (f'[[tokens]]\nname = "a"\nsha256 = "{"0" * 64}"\nroles = ["read"]\nexperiments = "home"\n',
     ["entry 1", "`experiments`"]),
    (f'[[tokens]]\nname = "a"\nsha256 = "{"0" * 64}"\nroles = ["read"]\n'
     f'[[tokens]]\nname = "a"\nsha256 = "{"1" * 64}"\nroles = ["read"]\n',
     ["entry 2", "`name`", "entry 1"]),
    (f'[[tokens]]\nname = "a"\nsha256 = "{"0" * 64}"\nroles = ["read"]\n'
     f'[[tokens]]\nname = "b"\nsha256 = "{"0" * 64}"\nroles = ["read"]\n',
     ["entry 2", "'b'", "`sha256`", "'a'"]),
    ('[token]\nname = "a"\n', ["unknown key 'token'"]),
    ("[[tokens]\n", ["not valid TOML"]),
])
def test_a_bad_token_file_is_refused_naming_the_entry_and_the_key(
        tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)

    with pytest.raises(TokenFileError) as error:
        load_tokens(path)

    for word in [str(path), *words]:
        assert word in str(error.value)


def test_serve_with_a_bad_token_file_exits_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[[tokens]]\nname = "a"\nsha256 = "abc"\nroles = ["decide"]\n')
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "uniform"\n')

    code = main(["serve", "--listen", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'a.db'}",
                 "--config", str(config), "--auth-tokens", str(tokens)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "`sha256`" in err and "entry 1" in err
    assert not (tmp_path / "a.db").exists()  # refused before touching the database


def test_admin_implies_read_and_nothing_else() -> None:
    tokens = parse_tokens({"tokens": [{"name": "ops", "sha256": sha256_hex("x"),
                                       "roles": ["admin"]}]})

    principal = tokens.principal("x")

    assert principal is not None and principal.roles == {"admin", "read"}
    assert tokens.principal("y") is None and tokens.principal("") is None


# ----------------------------------------------------------------------------- SIGHUP, warning
def test_sighup_reloads_the_token_file_and_a_bad_one_keeps_the_tokens_in_force(
        tmp_path: Path) -> None:
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "linucb"\n')
    tokens = token_file(tmp_path / "tokens.toml", {"old-token": ("old", ["decide"], None)})
    server = ServerProcess(config, f"sqlite:///{tmp_path / 'a.db'}", "--auth-tokens", str(tokens),
                           "--log-level", "INFO")
    try:
        with DecisionClient(server.target, token="old-token") as old, \
                DecisionClient(server.target, token="new-token") as new:
            old.choose("homepage", actions=["a", "b"])
            with pytest.raises(UnauthenticatedError):
                new.choose("homepage", actions=["a", "b"])

            token_file(tokens, {"new-token": ("new", ["decide"], None)})
            server.proc.send_signal(signal.SIGHUP)
            _eventually(lambda: _works(new))

            with pytest.raises(UnauthenticatedError):
                old.choose("homepage", actions=["a", "b"])
            tokens.write_text("this is not toml [")
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(1.5)  # the server checks for SIGHUP every half second
            new.choose("homepage", actions=["a", "b"])  # the previous tokens stay in force
            with pytest.raises(NotFoundError):  # and the process is alive and serving
                new.choose("nosuch", actions=["a", "b"])
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert "tokens reloaded" in err and "tokens not reloaded" in err
    assert "new-token" not in err and "old-token" not in err  # secrets never logged
    assert "this server is open" not in err


def _works(client: DecisionClient) -> bool:
    try:
        client.choose("homepage", actions=["a", "b"])
    except UnauthenticatedError:
        return False
    return True


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.1)


def test_a_server_without_tokens_warns_at_start_that_it_is_open(tmp_path: Path) -> None:
    server = ServerProcess(ROOT / "examples" / "experiments.toml", f"sqlite:///{tmp_path / 'a.db'}")
    code, _, err = server.stop()

    assert code == 0
    assert "no --auth-tokens: this server is open" in err


def test_sighup_to_the_supervisor_reloads_every_server_process(tmp_path: Path) -> None:
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "linucb"\n')
    tokens = token_file(tmp_path / "tokens.toml", {"old-token": ("old", ["decide"], None)})
    server = ServerProcess(config, f"sqlite:///{tmp_path / 'a.db'}", "--auth-tokens", str(tokens),
                           processes=2)
    try:
        children = server.children()
        token_file(tokens, {"new-token": ("new", ["decide"], None)})
        server.proc.send_signal(signal.SIGHUP)

        def every_connection_takes_the_new_token() -> bool:
            for _ in range(8):  # fresh connections: the kernel spreads them over both servers
                with DecisionClient(server.target, token="new-token") as client:
                    if not _works(client):
                        return False
            return True

        _eventually(every_connection_takes_the_new_token)
        assert server.children() == children  # reloaded, not restarted
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert err.count("tokens reloaded") == 2


def test_an_undecodable_body_without_a_token_is_unauthenticated_not_invalid(
        channel: grpc.Channel) -> None:
    raw = channel.unary_unary("/arbiter.v1.DecisionService/Choose")
    garbage = b"\xff\xff\xff\xff"

    without = code_of(lambda: raw(garbage, timeout=10))
    with_token = code_of(lambda: raw(garbage, metadata=bearer("t-decide-all"), timeout=10))

    assert without[0] == grpc.StatusCode.UNAUTHENTICATED
    assert with_token[0] == grpc.StatusCode.INVALID_ARGUMENT
