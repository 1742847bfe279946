"""Typed Python client for Arbiter's DecisionService (plain dicts in, dataclasses out)."""

from clients.python.client import (
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
