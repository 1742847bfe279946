"""Typed Python client for Arbiter's DecisionService (plain dicts in, dataclasses out)."""

from arbiter.client.client import (
    AlreadyExistsError,
    ArbiterClientError,
    Choice,
    Connection,
    DecisionClient,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RewardResult,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "AlreadyExistsError",
    "ArbiterClientError",
    "Choice",
    "Connection",
    "DecisionClient",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RewardResult",
    "UnauthenticatedError",
    "UnavailableError",
]
