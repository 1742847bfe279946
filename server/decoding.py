"""Request bodies that do not decode are INVALID_ARGUMENT, not UNKNOWN with a traceback.

grpc.aio decodes a request with the deserializer given at registration (the generated code's
``Message.FromString``); when it raises, grpc answers UNKNOWN with the exception's text and
logs a traceback — per request. :class:`DecodingServer` wraps the ``grpc.aio`` server that the
generated ``add_*_to_server`` functions register with: every unary request is decoded by
:func:`total` instead, so a body that does not parse (random bytes, a truncated message,
invalid UTF-8 in a string field) becomes :data:`UNDECODABLE`. The guard
(:mod:`server.guard`) answers it INVALID_ARGUMENT for Arbiter's services (one identity check
per call, no extra coroutine); handlers of other services (health) are wrapped here to do the
same. Such bodies are logged at most once per second, with how many there were, never with a
traceback.

The guarded services' responses are serialized by the generated code's serializer, except one
that is already bytes (:func:`serialized`): an explained Choose answers its wire bytes.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import grpc

log = logging.getLogger(__name__)

MESSAGE = "the request body cannot be decoded (malformed or truncated)"


class _Undecodable:
    """The request that :func:`total` returns for a body that does not parse."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDECODABLE"


UNDECODABLE: Any = _Undecodable()


class RateLimitedLog:
    """Logs at most one line per ``interval`` seconds; the next line counts those skipped."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._logger = logger
        self._interval = interval
        self._next = 0.0
        self._skipped = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._skipped += 1
                return
            skipped, self._skipped, self._next = self._skipped, 0, now + self._interval
        suffix = f" ({skipped} more since the last line)" if skipped else ""
        self._logger.warning(message + suffix, *args)


_undecodable_log = RateLimitedLog(log)


def total(deserializer: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    """``deserializer`` that never raises: a body it refuses gives :data:`UNDECODABLE`."""

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:  # whatever the parser raises, the body is at fault
            _undecodable_log.warning("undecodable request bodies answered INVALID_ARGUMENT: "
                                     "%d bytes for %s (%s)", len(data), method, error)
            return UNDECODABLE

    return decode


def _refusing(behavior: Callable[..., Any]) -> Callable[..., Any]:
    """A unary-unary ``behavior`` that answers :data:`UNDECODABLE` INVALID_ARGUMENT itself."""

    async def refusing(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is UNDECODABLE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MESSAGE)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return refusing


def serialized(serializer: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """``serializer``, passing through a response that is already its wire bytes (an
    explained Choose's, :func:`server.convert.choose_answer`)."""

    def serialize(response: Any) -> bytes:
        return response if response.__class__ is bytes else serializer(response)

    return serialize


def safe_handler(handler: Any, method: str, guarded: bool) -> Any:
    """``handler`` (a ``grpc.RpcMethodHandler``) decoding with :func:`total` if its request is
    unary; ``guarded``: its behavior checks for :data:`UNDECODABLE` itself (the guard), and
    may answer bytes already serialized (:func:`serialized`)."""
    if handler is None or handler.request_streaming or handler.request_deserializer is None:
        return handler
    if handler.response_streaming:  # nothing to wrap it with cheaply: left as it is
        return handler
    changes: dict[str, Any] = {"request_deserializer": total(handler.request_deserializer, method)}
    if not guarded:
        changes["unary_unary"] = _refusing(handler.unary_unary)
    elif handler.response_serializer is not None:
        changes["response_serializer"] = serialized(handler.response_serializer)
    return handler._replace(**changes)


class _SafeGenericHandler(grpc.ServiceRpcHandler):  # type: ignore[misc]
    """A generic handler whose method handlers decode with :func:`total` (made once each)."""

    def __init__(self, inner: Any, guarded: Collection[str]) -> None:
        self._inner = inner
        self._guarded = guarded
        self._made: dict[str, tuple[Any, Any]] = {}

    def service_name(self) -> str:
        name = getattr(self._inner, "service_name", None)
        return str(name()) if callable(name) else ""

    def service(self, handler_call_details: Any) -> Any:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        made = self._made.get(method)
        if made is None or made[0] is not handler:
            service = method.lstrip("/").split("/", 1)[0]
            made = (handler, safe_handler(handler, method, service in self._guarded))
            self._made[method] = made
        return made[1]


class DecodingServer:
    """A ``grpc.aio.Server`` that registers every unary method with :func:`total` decoding.

    ``guarded``: full names of the services whose handlers answer :data:`UNDECODABLE`
    themselves (wrapped by :func:`server.guard.guard`); any other service's unary handlers are
    wrapped here. Everything else is the wrapped server's.
    """

    def __init__(self, server: Any, guarded: Iterable[str]) -> None:
        self._server = server
        self._guarded = frozenset(guarded)

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_SafeGenericHandler(h, self._guarded) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        self._server.add_registered_method_handlers(service, {
            name: safe_handler(handler, f"/{service}/{name}", service in self._guarded)
            for name, handler in handlers.items()})

    def __getattr__(self, name: str) -> Any:  # ports, start, stop: the server's own
        return getattr(self._server, name)
