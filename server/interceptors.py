"""One place that maps errors to gRPC statuses, for every unary method of every service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from server.errors import ArbiterError, status_of

log = logging.getLogger(__name__)


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Domain errors → their status and message; anything else → INTERNAL, details in the log.

    The wrapped handlers are built once per method, not per call.
    """

    def __init__(self) -> None:
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        guarded = self._guarded[method] = grpc.unary_unary_rpc_method_handler(
            _guard(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return guarded


def _guard(inner: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
           method: str) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
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
