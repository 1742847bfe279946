"""``DecisionClient``: Choose and Reward over gRPC without touching proto types.

Features are plain dicts: ``{"user": {"country": "DE", "age": 31}}`` is namespace ``user`` with
the category ``country=DE`` (strings and booleans are categories) and the number ``age=31``.
Actions are ids, or dicts ``{"id": "a1", "features": {"item": {"price": 9.5}}}``.
Nothing else is a feature value: a nested dict, a list or ``None`` raises ``ValueError`` (naming
the namespace and the feature) rather than being sent as its ``str()``.

A server with TLS and tokens (README: "Security and privacy")::

    DecisionClient("arbiter.internal:50051", token=os.environ["ARBITER_TOKEN"],
                   ca_file="ca.pem", cert_file="client.pem", key_file="client-key.pem")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc

from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc

Features = Mapping[str, Mapping[str, Any]]
ActionSpec = str | Mapping[str, Any]


class ArbiterClientError(Exception):
    """A call failed; ``code`` is the gRPC status code and the message the server's."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgumentError(ArbiterClientError):
    """The request was rejected; the message names the field."""


class NotFoundError(ArbiterClientError):
    """Unknown experiment or event id."""


class AlreadyExistsError(ArbiterClientError):
    """The event already has a reward."""


class UnavailableError(ArbiterClientError):
    """The server or its database is unavailable, or the deadline passed: retry later."""


class UnauthenticatedError(ArbiterClientError):
    """The server needs a token and got none, or one it does not know."""


class PermissionDeniedError(ArbiterClientError):
    """The token does not have the role this method needs."""


_ERRORS: dict[grpc.StatusCode, type[ArbiterClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


@dataclass(frozen=True)
class Connection:
    """How to reach a server: TLS and a bearer token.

    TLS is on when ``tls`` is true or any file is given: ``ca_file`` (PEM) verifies the server
    (the system's CAs without it); ``cert_file`` and ``key_file`` (PEM, together) present a
    client certificate, for a server that requires one (mTLS). ``token`` goes with every call
    as ``authorization: Bearer <token>`` metadata.
    """

    token: str | None = None
    tls: bool = False
    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("`cert_file` and `key_file` go together (a client certificate "
                             "and its key)")
        if self.token is not None and (not self.token or self.token != self.token.strip()):
            raise ValueError("`token` must be non-empty, without surrounding whitespace")

    @property
    def secure(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    def channel(self, target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A channel to ``target``: TLS as configured, else plaintext."""
        if not self.secure:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, self.credentials(), options=options)

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(root_certificates=read(self.ca_file),
                                            private_key=read(self.key_file),
                                            certificate_chain=read(self.cert_file))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The call metadata that carries the token (None without one)."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else None


@dataclass(frozen=True)
class Explanation:
    """Why ``action_id`` scored ``score``: ``contributions`` are (feature, contribution), the
    largest first, then ("exploration", value) for LinUCB and linear Thompson sampling."""

    action_id: str
    score: float
    contributions: list[tuple[str, float]]


@dataclass(frozen=True)
class Choice:
    """The decision: ``ranking`` is (action id, probability), chosen first; ``explanations``
    only when asked for (``explain=True``) and the policy can explain itself."""

    event_id: str
    action_id: str
    probability: float
    ranking: list[tuple[str, float]]
    variant: str
    model_version: str
    explanations: list[Explanation] = field(default_factory=list)


@dataclass(frozen=True)
class ChooseSpec:
    """One decision of :meth:`DecisionClient.choose_batch`: the arguments of
    :meth:`DecisionClient.choose`."""

    experiment: str
    actions: Sequence[ActionSpec]
    context: Features | None = None
    unit_id: str = ""
    event_id: str = ""
    deferred: bool = False
    excluded_action_ids: Sequence[str] = ()
    explain: bool = False
    baseline_action_id: str = ""

    def request(self) -> pb.ChooseRequest:
        return pb.ChooseRequest(experiment=self.experiment, event_id=self.event_id,
                                unit_id=self.unit_id, context=to_namespaces(self.context),
                                actions=to_actions(self.actions), deferred=self.deferred,
                                excluded_action_ids=list(self.excluded_action_ids),
                                explain=self.explain,
                                baseline_action_id=self.baseline_action_id)


@dataclass(frozen=True)
class RewardResult:
    learned: bool


_SHAPE = '{"namespace": {"feature": value}}, e.g. {"user": {"country": "DE", "age": 31}}'


def _kind(value: object) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def to_namespaces(features: Features | None, *, where: str = "context") -> list[pb.Namespace]:
    """``{"ns": {"k": 1.5, "c": "x"}}`` → Namespace protos (numbers vs categories by type).

    Strict, nothing is guessed: ``TypeError`` (saying the expected shape) unless ``features`` is
    a mapping of namespace names to mappings of feature names; ``ValueError`` (naming the
    namespace and the feature) for a value that is not a number, a string or a boolean — a
    nested dict, a list or ``None``. ``where`` names the argument in the messages.
    """
    if features is None:
        return []
    if not isinstance(features, Mapping):
        raise TypeError(f"`{where}` must be a mapping of namespaces to features, {_SHAPE}; "
                        f"got {_kind(features)}")
    result = []
    for name, values in features.items():
        if not isinstance(name, str) or not isinstance(values, Mapping):
            raise TypeError(f"`{where}` must be a mapping of namespaces to features, {_SHAPE}; "
                            f"namespace {name!r} holds {_kind(values)}, not a mapping of "
                            f"features")
        numbers: dict[str, float] = {}
        categories: dict[str, str] = {}
        for key, value in values.items():
            if not isinstance(key, str):
                raise TypeError(f"`{where}` namespace {name!r}: feature names must be strings, "
                                f"got {key!r}")
            if isinstance(value, bool):
                categories[key] = "true" if value else "false"
            elif isinstance(value, Real):
                numbers[key] = float(value)
            elif isinstance(value, str):
                categories[key] = value
            else:
                raise ValueError(f"`{where}` namespace {name!r} feature {key!r} is "
                                 f"{_kind(value)}: feature values must be numbers, strings or "
                                 f"booleans (flatten nested values into their own features; "
                                 f"leave a missing value out)")
        result.append(pb.Namespace(name=name, numbers=numbers, categories=categories))
    return result


def to_actions(actions: Iterable[ActionSpec]) -> list[pb.Action]:
    """Ids, or ``{"id": "a1", "features": {...}}`` (features as in :func:`to_namespaces`)."""
    result = []
    for index, action in enumerate(actions):
        if isinstance(action, str):
            result.append(pb.Action(id=action))
        elif isinstance(action, Mapping) and "id" in action:
            result.append(pb.Action(id=str(action["id"]), features=to_namespaces(
                action.get("features"), where=f"actions[{index}].features")))
        else:
            raise TypeError(f"`actions[{index}]` must be an action id or "
                            f'{{"id": ..., "features": {_SHAPE}}}; got {_kind(action)}'
                            + ("" if not isinstance(action, Mapping) else " without an \"id\""))
    return result


class DecisionClient:
    """A channel to Arbiter. Use as a context manager, or call ``close()``.

    ``target`` is any gRPC target: ``host:port``, or several servers with client-side load
    balancing, ``ipv4:10.0.0.1:50051,10.0.0.2:50051`` with
    ``options=[("grpc.lb_policy_name", "round_robin")]``. ``options`` are gRPC channel
    arguments; ``channel`` replaces the channel altogether (the token is still sent).

    ``token``, ``tls``, ``ca_file``, ``cert_file``, ``key_file``: see :class:`Connection`
    (or pass ``connection``). Without them the channel is plaintext and sends no token.
    """

    def __init__(self, target: str, *, timeout: float = 5.0,
                 channel: grpc.Channel | None = None,
                 options: Sequence[tuple[str, Any]] = (), token: str | None = None,
                 tls: bool = False, ca_file: str | Path | None = None,
                 cert_file: str | Path | None = None, key_file: str | Path | None = None,
                 connection: Connection | None = None) -> None:
        self.timeout = timeout
        connection = connection or Connection(token=token, tls=tls, ca_file=ca_file,
                                              cert_file=cert_file, key_file=key_file)
        self._metadata = connection.metadata
        self._channel = channel or connection.channel(target, options)
        self._stub = decision_pb2_grpc.DecisionServiceStub(self._channel)

    def choose(self, experiment: str, *, context: Features | None = None,
               actions: Sequence[ActionSpec], unit_id: str = "", event_id: str = "",
               deferred: bool = False, excluded_action_ids: Sequence[str] = (),
               explain: bool = False, baseline_action_id: str = "",
               timeout: float | None = None) -> Choice:
        """One decision. ``excluded_action_ids``: offered actions that must not be chosen
        (probability 0); ``explain``: answer with :class:`Explanation` s of the scores;
        ``baseline_action_id``: what the caller would do without Arbiter (served by a variant
        in apprentice or logging mode; default: the first action not excluded)."""
        request = ChooseSpec(experiment, actions, context, unit_id, event_id, deferred,
                             excluded_action_ids, explain, baseline_action_id).request()
        return _choice(self._call(self._stub.Choose, request, timeout))

    def choose_batch(self, requests: Iterable[ChooseSpec | Mapping[str, Any]], *,
                     timeout: float | None = None) -> list[Choice | ArbiterClientError]:
        """Many decisions in one call (ChooseBatch; the server caps how many, `--max-batch`).

        Each of ``requests`` is a :class:`ChooseSpec` or a mapping of :meth:`choose`'s
        arguments. One result per request, in order: its :class:`Choice`, or — for a request
        the server refused alone — the error :meth:`choose` would have raised, returned (not
        raised). A refused call as a whole (too many requests, UNAVAILABLE, ...) raises.
        """
        specs = [spec if isinstance(spec, ChooseSpec) else ChooseSpec(**spec) for spec in requests]
        batch = pb.ChooseBatchRequest(requests=[spec.request() for spec in specs])
        response = self._call(self._stub.ChooseBatch, batch, timeout)
        return [_choice(result.response) if result.code == 0 else _error(result.code, result.message)
                for result in response.results]

    def reward(self, event_id: str, value: float, *, timeout: float | None = None) -> RewardResult:
        response = self._call(self._stub.Reward,
                              pb.RewardRequest(event_id=event_id, value=value), timeout)
        return RewardResult(learned=response.learned)

    def activate(self, event_id: str, *, timeout: float | None = None) -> None:
        self._call(self._stub.Activate, pb.ActivateRequest(event_id=event_id), timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout,
                          metadata=self._metadata)
        except grpc.RpcError as error:
            code = error.code()
            raise _ERRORS.get(code, ArbiterClientError)(code, error.details() or "") from None


def _choice(response: pb.ChooseResponse) -> Choice:
    return Choice(event_id=response.event_id, action_id=response.action_id,
                  probability=response.probability,
                  ranking=[(r.action_id, r.probability) for r in response.ranking],
                  variant=response.variant, model_version=response.model_version,
                  explanations=[Explanation(e.action_id, e.score,
                                            [(c.feature, c.contribution) for c in e.contributions])
                                for e in response.explanations])


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _error(number: int, message: str) -> ArbiterClientError:
    """The typed error of a status code number (a batch result's)."""
    code = _CODES.get(number, grpc.StatusCode.UNKNOWN)
    return _ERRORS.get(code, ArbiterClientError)(code, message)
