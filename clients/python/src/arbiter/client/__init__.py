"""Typed Python client for Arbiter's DecisionService (plain dicts in, dataclasses out)."""

from arbiter.client.client import (
    AlreadyExistsError,
    ArbiterClientError,
    Choice,
    DecisionClient,
    InvalidArgumentError,
    NotFoundError,
    RewardResult,
    UnavailableError,
)

__all__ = [
    "AlreadyExistsError",
    "ArbiterClientError",
    "Choice",
    "DecisionClient",
    "InvalidArgumentError",
    "NotFoundError",
    "RewardResult",
    "UnavailableError",
]
