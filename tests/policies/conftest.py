"""Shared pieces of the policy tests: decisions and a seeded synthetic bandit problem."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from arbiter.policies import Decision, Namespace

PARAMS: dict[str, dict[str, object]] = {"fixed": {"action": "a0", "floor": 0.1}}
"""Hyperparameters the contract suite needs beyond the defaults (``fixed`` needs an action)."""

VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("linucb", {"hybrid": True}),
    ("linucb", {"decay": 0.9}),
    ("lints", {"decay": 0.95}),
]
"""Configurations that take another code path, run through the contract suite as well."""

BASELINES = {"uniform", "fixed"}
"""Registered policies that do not learn (exempt from 'beats uniform')."""


def decision(
    x: NDArray[np.float64],
    action_ids: tuple[str, ...],
    *,
    segment: str = "web",
    price: dict[str, float] | None = None,
) -> Decision:
    """Context: numbers ``x0..`` and one category; each action may carry a ``price`` feature."""
    context = (
        Namespace("user", numbers={f"x{i}": float(v) for i, v in enumerate(x)}),
        Namespace("meta", categories={"segment": segment}),
    )
    features = tuple(
        (Namespace("item", numbers={"price": price[a]}),) if price and a in price else () for a in action_ids
    )
    return Decision(context=context, action_ids=action_ids, action_features=features)


@dataclass(frozen=True)
class Round:
    """One round of the synthetic problem: the decision and every action's reward probability."""

    decision: Decision
    success: NDArray[np.float64]  # (K,)


def linear_rounds(seed: int, n: int, k: int = 4) -> Iterator[Round]:
    """Bernoulli rewards with ``P(r = 1 | x, a_j) = 0.1 + 0.5 x_j + 0.3 j / (K - 1)``, x ~ U(0,1)^K.

    Both the context (which action is best depends on x) and the action (a fixed lift) matter,
    so contextual and context-free learners can both beat uniform.
    """
    rng = np.random.default_rng(seed)
    ids = tuple(f"a{j}" for j in range(k))
    lift = 0.3 * np.arange(k) / (k - 1)
    for _ in range(n):
        x = rng.random(k)
        yield Round(decision(x, ids), 0.1 + 0.5 * x + lift)


@pytest.fixture
def rounds() -> Callable[[int, int], Iterator[Round]]:
    return linear_rounds
