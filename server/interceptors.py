"""One place that maps errors to gRPC statuses, for every method of every service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from server.errors import ArbiterError, status_of

log = logging.getLogger(__name__)


class ErrorInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Domain errors → their status and message; anything else → INTERNAL, details in the log."""

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = details.method

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return inner(request, context)
            except ArbiterError as error:
                context.abort(status_of(error), str(error))
            except Exception:
                log.exception("unexpected error in %s", method)
                context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
