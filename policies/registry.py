"""Registry name → policy class, and the two ways the server makes a policy.

Adding a policy is one class and one line in :data:`POLICIES`. The names are a contract: they
appear in ``experiments.toml``, in the decision log and in snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from arbiter.policies.base import Policy, PolicyConfigError
from arbiter.policies.baselines import Fixed, Uniform
from arbiter.policies.epsilon_greedy import EpsilonGreedy
from arbiter.policies.lints import LinTS
from arbiter.policies.linucb import LinUCB
from arbiter.policies.thompson import BetaThompson
from arbiter.policies.vw import VowpalWabbit


class RegisteredPolicy(Policy, Protocol):
    """A :class:`Policy` class that also lists its hyperparameters (see ``policies.params``)."""

    def __init__(self, **params: Any) -> None: ...

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]: ...

    @classmethod
    def required_parameter_names(cls) -> tuple[str, ...]: ...


POLICIES: dict[str, type[RegisteredPolicy]] = {
    "linucb": LinUCB,
    "lints": LinTS,
    "thompson": BetaThompson,
    "vw": VowpalWabbit,
    "epsilon_greedy": EpsilonGreedy,
    "uniform": Uniform,
    "fixed": Fixed,
}


def _policy_class(name: str) -> type[RegisteredPolicy]:
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise PolicyConfigError(f"unknown policy `{name}`; known policies: {known}") from None


def create(name: str, params: Mapping[str, Any]) -> Policy:
    """A new policy ``name`` with hyperparameters ``params`` (missing ones take their defaults).

    Raises :class:`PolicyConfigError` for an unknown policy, an unknown or missing parameter, or
    an invalid value; the message names the policy or the parameter and the value.
    """
    cls = _policy_class(name)
    accepted = cls.parameter_names()
    for key in params:
        if key not in accepted:
            raise PolicyConfigError(
                f"unknown parameter `{key}` for policy `{name}`; accepted: {', '.join(accepted) or 'none'}"
            )
    for key in cls.required_parameter_names():
        if key not in params:
            raise PolicyConfigError(f"missing parameter `{key}` for policy `{name}`")
    policy: Policy = cls(**params)
    return policy


def restore(name: str, data: bytes) -> Policy:
    """The policy ``name`` exactly as it was when ``to_bytes()`` returned ``data``."""
    policy: Policy = _policy_class(name).from_bytes(data)
    return policy
