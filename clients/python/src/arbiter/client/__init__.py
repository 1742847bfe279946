"""Typed Python client for Arbiter's DecisionService (plain dicts in, dataclasses out)."""

from arbiter.client.client import (
    AlreadyExistsError,
    ArbiterClientError,
    Choice,
    ChooseSpec,
    Connection,
    DecisionClient,
    Explanation,
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
    "ChooseSpec",
    "Connection",
    "DecisionClient",
    "Explanation",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RewardResult",
    "UnauthenticatedError",
    "UnavailableError",
]
