"""One place that maps errors to gRPC statuses, for every method of Arbiter's services.

:func:`guard` wraps a servicer's methods where they are registered: a gRPC interceptor would do
the same, but grpc.aio runs an interceptor chain (a coroutine per call) on every call, about a
tenth of the echo server's whole cost per call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from arbiter.server.errors import ArbiterError, status_of

log = logging.getLogger(__name__)

S = TypeVar("S")
Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def guard(servicer: S, service: ServiceDescriptor) -> S:
    """``servicer`` with each of ``service``'s methods wrapped: domain errors → their status and
    message; anything else → INTERNAL, details in the log. Returns ``servicer`` for chaining."""
    for method in service.methods:
        handler = getattr(servicer, method.name)
        setattr(servicer, method.name, _guarded(handler, f"/{service.full_name}/{method.name}"))
    return servicer


def _guarded(inner: Handler, method: str) -> Handler:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:  # the handler chose its status itself
            raise
        except ArbiterError as error:
            await context.abort(status_of(error), str(error))
        except Exception:
            log.exception("unexpected error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return guarded
