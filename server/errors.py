"""Domain errors and the one table that maps them to gRPC status codes.

The domain raises these; ``server.guard`` turns them into statuses.
Any other exception becomes INTERNAL with a generic message (details go to the server log).
"""

from __future__ import annotations

import grpc


class ArbiterError(Exception):
    """Base of every error a caller may see; the message is sent to the client as is."""


class InvalidArgument(ArbiterError):
    """The request is malformed; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"`{field}` {problem}")
        self.field = field


class NotFound(ArbiterError):
    """An experiment, event or variant that does not exist."""


class AlreadyExists(ArbiterError):
    """A second reward for an event whose reward is already taken."""


class FailedPrecondition(ArbiterError):
    """The request is valid but the object is in the wrong state (e.g. activating a non-deferred decision)."""


class Unavailable(ArbiterError):
    """The database cannot be reached or the server is shutting down; retry later."""


class Overloaded(ArbiterError):
    """The server's queues are full; retry with backoff."""


class Unauthenticated(ArbiterError):
    """No token, or a token the server does not know (``server.auth``)."""


class PermissionDenied(ArbiterError):
    """A known token without the role the method needs (``server.auth``)."""


STATUS_BY_ERROR: dict[type[ArbiterError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def status_of(error: ArbiterError) -> grpc.StatusCode:
    """The status code for a domain error (the most specific registered base class wins)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


MAX_DETAILS = 1000  # characters of a status message


def shortened(message: str) -> str:
    """At most :data:`MAX_DETAILS` characters: a message may quote a caller's value, and the
    status travels in a trailer that HTTP/2 header limits would otherwise break."""
    return message if len(message) <= MAX_DETAILS else message[:MAX_DETAILS - 1] + "…"
