"""The fuzz suite (issue 14): thousands of hostile calls against a real server on a real channel.

- Structured: hypothesis builds requests of every method of Arbiter's services from the
  messages' descriptors (ids drawn partly from what the server knows, numbers including NaN,
  infinities, huge and subnormal values, strings including very long ones).
- Raw: random bodies, and valid bodies mutated (bit flips, truncation, insertion, splicing),
  sent as bytes with identity serializers to every method and to health's Check.

Every answer is a status a client can act on — never UNKNOWN or INTERNAL; every rejected call
leaves every table of the log as it was (a repeated Reward's ALREADY_EXISTS is not a rejection:
that reward is stored for offline evaluation, as the README says); the server is SERVING at
the end. Runs derandomized (hypothesis) and seeded (raw), so a failure reproduces.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbiter.server.app import App
from arbiter.v1 import decision_pb2, experiments_pb2
from tests.conftest import running_apps

STRUCTURED = 2200  # hypothesis examples, one call each
RAW_PER_METHOD = 250  # raw bodies per method
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
REWARD = "/arbiter.v1.DecisionService/Reward"  # ALREADY_EXISTS: a repeat, stored (README)
TABLES = ("decisions", "rewards", "windows", "activations", "learnings", "experiment_states",
          "promotions", "snapshots")
EVENTS = [f"fz-{i}" for i in range(12)]  # decided before the fuzzing (even: deferred)
VARIANTS = ("champion", "holdout", "candidate", "vw", "default")

CONFIG = {"experiments": {
    "homepage": {"segment_by": "user.segment", "variants": [
        {"name": "champion", "policy": "linucb", "traffic": 0.8},
        {"name": "holdout", "policy": "uniform", "traffic": 0.2},
        {"name": "candidate", "policy": "lints", "shadow": True},
        {"name": "vw", "policy": "vw", "shadow": True}]},
    "clicks": {"policy": "thompson", "reward_range": [0, 1], "reward_aggregation": "sum"},
}}
EXPERIMENTS = tuple(CONFIG["experiments"])


def _methods() -> dict[str, type[Message]]:
    """``/service/Method`` → request class, for every method of Arbiter's two services."""
    found: dict[str, type[Message]] = {}
    for module, service in ((decision_pb2, "DecisionService"),
                            (experiments_pb2, "ExperimentService")):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            found[f"/{descriptor.full_name}/{method.name}"] = getattr(module, method.input_type.name)
    return found


METHODS = _methods()


# ---------------------------------------------------------------------------- the server
@dataclass
class Target:
    app: App
    channel: grpc.Channel
    engine: sa.Engine
    calls: int = 0
    rejected: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    def rows(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {t: int(connection.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one())
                    for t in TABLES}

    def call(self, method: str, body: bytes) -> None:
        """Send ``body`` to ``method``; check the status and, if rejected, that nothing changed."""
        before = self.rows()
        try:
            self.channel.unary_unary(method)(body, timeout=20)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
            details = error.details()
            assert code not in NEVER, f"{method} answered {code.name}: {details} ({body[:200]!r})"
            assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"{method} hung ({body[:200]!r})"
            if (method, code) != (REWARD, grpc.StatusCode.ALREADY_EXISTS):  # that one is stored
                assert self.rows() == before, f"{method} {code.name} changed the log ({body[:200]!r})"
            self.rejected += 1
        self.calls += 1
        self.codes[code.name] = self.codes.get(code.name, 0) + 1


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "arbiter.db"
    for start in running_apps(f"sqlite:///{path}"):
        app = start(CONFIG, snapshot_every=10**9, snapshot_seconds=1e9)
        channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
        stub = channel.unary_unary("/arbiter.v1.DecisionService/Choose",
                                   request_serializer=decision_pb2.ChooseRequest.SerializeToString,
                                   response_deserializer=decision_pb2.ChooseResponse.FromString)
        for i, event_id in enumerate(EVENTS):
            stub(decision_pb2.ChooseRequest(
                experiment=EXPERIMENTS[i % 2], event_id=event_id, unit_id=f"u{i}",
                deferred=i % 4 == 0, actions=[decision_pb2.Action(id=a) for a in "abc"]),
                timeout=10)
        engine = sa.create_engine(f"sqlite:///{path}")
        try:
            yield Target(app, channel, engine)
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            channel.close()
            engine.dispose()


# ---------------------------------------------------------------------------- structured
numbers = st.one_of(st.floats(), st.sampled_from([0.0, 1.0, -1.0, 1e308, -1e308, 5e-324, 1e6,
                                                  1e6 + 1, float("nan"), float("inf")]))
text = st.one_of(st.text(max_size=12), st.text(min_size=200, max_size=1200),
                 st.sampled_from(["", "user", "item", "a", "b", "segment", "x" * 129]))


def _hinted(name: str) -> st.SearchStrategy[Any] | None:
    """Strategies for the fields whose values the server looks up, so calls get past NOT_FOUND."""
    if name in ("experiment",):
        return st.one_of(st.sampled_from(EXPERIMENTS), text)
    if name in ("event_id",):
        return st.one_of(st.sampled_from(EVENTS), st.just(""), text)
    if name in ("variant", "previous_champion"):
        return st.one_of(st.sampled_from(VARIANTS), text)
    if name == "segment_by":
        return st.one_of(st.sampled_from(["", "user.segment", "user", ".", "a.b.c"]), text)
    if name == "id":
        return st.one_of(st.sampled_from(["a", "b", "c", "d"]), text)
    return None


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    hinted = _hinted(fd.name)
    if hinted is not None:
        return hinted
    if fd.type == FieldDescriptor.TYPE_STRING:
        return text
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return numbers
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64,
                   FieldDescriptor.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1)
    if fd.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32,
                   FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_ENUM):
        return st.integers(-(2**31), 2**31 - 1)
    if fd.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if fd.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    raise AssertionError(f"no strategy for {fd.full_name}")


def fields_of(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A strategy for the field values of ``descriptor``'s message (any subset of fields)."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for fd in descriptor.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key, value = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            keys = (st.one_of(st.sampled_from(VARIANTS), text) if fd.name == "traffic"
                    else _scalar(key))
            values = _scalar(value) if value.message_type is None else fields_of(value.message_type)
            parts[fd.name] = st.dictionaries(keys, values, max_size=5)
            if fd.name == "traffic":  # often only the serving variants: extreme but valid weights
                parts[fd.name] = st.one_of(parts[fd.name], st.fixed_dictionaries(
                    {"champion": numbers}, optional={"holdout": numbers}))
        elif fd.message_type is not None:
            if depth >= 3:
                continue
            inner = fields_of(fd.message_type, depth + 1)
            if fd.is_repeated:
                parts[fd.name] = st.lists(inner, max_size=6 if fd.name == "actions" else 3)
            else:
                parts[fd.name] = inner
        elif fd.is_repeated:
            parts[fd.name] = st.lists(_scalar(fd), max_size=4)
        else:
            parts[fd.name] = _scalar(fd)
    return st.fixed_dictionaries({}, optional=parts)


def build(message: type[Message], values: dict[str, Any]) -> Message:
    built = message()
    _fill(built, values)
    return built


def _fill(message: Message, values: dict[str, Any]) -> None:
    for name, value in values.items():
        fd = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            for key, item in value.items():
                if value_fd.message_type is None:
                    target[key] = item
                else:
                    _fill(target[key], item)
        elif fd.message_type is not None and fd.is_repeated:
            for item in value:
                _fill(target.add(), item)
        elif fd.message_type is not None:
            _fill(target, value)
        elif fd.is_repeated:
            target.extend(value)
        else:
            setattr(message, name, value)


STRATEGIES = {method: fields_of(message.DESCRIPTOR) for method, message in METHODS.items()}


def test_structured_requests_of_every_method(target: Target) -> None:
    seen: dict[str, int] = {}

    @settings(max_examples=STRUCTURED, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
        request = build(METHODS[method], data.draw(STRATEGIES[method], label="fields"))
        target.call(method, request.SerializeToString())
        seen[method] = seen.get(method, 0) + 1

    run()

    assert sum(seen.values()) >= 2000
    assert set(seen) == set(METHODS), "every method"
    assert target.rejected > 0 and target.codes.get("OK", 0) > 0, target.codes


# ---------------------------------------------------------------------------- raw bodies
def _seeds(method: str) -> list[bytes]:
    """Valid bodies of ``method`` to mutate: empty, and a few built by the strategies' hints."""
    message = METHODS[method]
    bodies = [b""]
    examples: dict[str, list[Message]] = {
        "ChooseRequest": [decision_pb2.ChooseRequest(
            experiment="homepage", unit_id="u1", context=[decision_pb2.Namespace(
                name="user", numbers={"age": 31.0}, categories={"segment": "web"})],
            actions=[decision_pb2.Action(id="a", features=[decision_pb2.Namespace(
                name="item", numbers={"price": 9.5})]), decision_pb2.Action(id="b")])],
        "RewardRequest": [decision_pb2.RewardRequest(event_id=e, value=0.5, reward_id="r")
                          for e in EVENTS[:3]],
        "ActivateRequest": [decision_pb2.ActivateRequest(event_id=e) for e in EVENTS[:2]],
        "SetTrafficRequest": [experiments_pb2.SetTrafficRequest(
            experiment="homepage", traffic={"champion": 0.7, "holdout": 0.3})],
        "PromoteRequest": [experiments_pb2.PromoteRequest(
            experiment="homepage", variant="candidate", reason="fuzz")],
    }
    for example in examples.get(message.DESCRIPTOR.name, []):
        bodies.append(example.SerializeToString())
    for name in ("experiment", "segment_by", "unit_id"):
        if name in message.DESCRIPTOR.fields_by_name:
            bodies.append(message(**{name: "homepage"}).SerializeToString())
    return bodies


def mutate(body: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(6)
        if how == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif how == 1 and data:  # replace a byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif how == 2 and data:  # truncate
            del data[rng.randrange(len(data)):]
        elif how == 3:  # insert bytes
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif how == 4:  # splice with another valid body (protobuf merges concatenations)
            data += rng.choice(others)
        elif how == 5 and data:  # a large length prefix
            data[rng.randrange(len(data))] = 0xFF
    return bytes(data)


def test_raw_random_and_mutated_bodies_to_every_method(target: Target) -> None:
    rng = random.Random(20261127)
    methods = [*sorted(METHODS), "/grpc.health.v1.Health/Check"]
    seeds = {method: _seeds(method) if method in METHODS else [b""] for method in methods}
    everything = [body for bodies in seeds.values() for body in bodies]
    sent = 0
    for method in methods:
        for i in range(RAW_PER_METHOD):
            if i % 3 == 0:
                body = rng.randbytes(rng.choice([1, 2, 3, 5, 8, 16, 64, 300]))
            else:
                body = mutate(rng.choice(seeds[method]), rng, everything)
            target.call(method, body)
            sent += 1
    assert sent >= 2000
    assert target.codes.get("INVALID_ARGUMENT", 0) > 0, target.codes


def test_the_server_is_still_serving_and_answers(target: Target) -> None:
    health = health_pb2_grpc.HealthStub(target.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    choose: Callable[..., Any] = target.channel.unary_unary(
        "/arbiter.v1.DecisionService/Choose",
        request_serializer=decision_pb2.ChooseRequest.SerializeToString,
        response_deserializer=decision_pb2.ChooseResponse.FromString)
    answer = choose(decision_pb2.ChooseRequest(
        experiment="homepage", actions=[decision_pb2.Action(id="a"), decision_pb2.Action(id="b")]),
        timeout=10)
    assert 0 < answer.probability <= 1
