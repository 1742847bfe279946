"""Beta-Bernoulli Thompson sampling without context: the classic A/B/n bandit.

Action ``k`` has the posterior ``Beta(a_k, b_k)`` with ``a_k = prior_alpha + sum r`` and
``b_k = prior_beta + sum (1 - r)`` over its rewards ``r``. Rewards must lie in ``[0, 1]``;
fractional rewards are allowed and count as ``r`` of a success and ``1 - r`` of a failure (the
usual extension; for a Bernoulli reward it is exact). The distribution is the frequency of each
action being the argmax over ``M`` posterior draws (:func:`policies.explore.argmax_frequencies`),
the same distribution the server samples from, so the logged propensity is exact. Actions never
seen start from the prior; the context and action features are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from arbiter.policies import params as check
from arbiter.policies import serialize
from arbiter.policies.base import Decision
from arbiter.policies.explore import argmax_frequencies, checked
from arbiter.policies.linear import check_feedback
from arbiter.policies.params import Hyperparameters


@dataclass(kw_only=True)
class BetaThompson(Hyperparameters):
    """``samples`` (M, default 100) draws per decision; ``prior_alpha``, ``prior_beta`` (> 0,
    default 1: uniform prior) are the Beta prior's pseudo-successes and pseudo-failures.
    """

    name: ClassVar[str] = "thompson"
    summary: ClassVar[str] = "Beta-Bernoulli Thompson sampling without context (A/B/n); rewards in [0, 1]"

    samples: int = field(default=100, metadata=check.doc(
        "integer >= 1", "posterior draws per decision; probabilities are multiples of 1 / samples"))
    prior_alpha: float = field(default=1.0, metadata=check.doc(
        "> 0", "Beta prior: pseudo-successes every action starts with"))
    prior_beta: float = field(default=1.0, metadata=check.doc(
        "> 0", "Beta prior: pseudo-failures every action starts with"))

    _posterior: dict[str, tuple[float, float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.samples = check.count("samples", self.samples)
        self.prior_alpha = check.positive("prior_alpha", self.prior_alpha)
        self.prior_beta = check.positive("prior_beta", self.prior_beta)
        self._posterior = {}

    def _parameters(self, action_ids: tuple[str, ...]) -> NDArray[np.float64]:
        """Beta parameters of ``action_ids``, shape ``(2, K)``."""
        prior = (self.prior_alpha, self.prior_beta)
        return np.array([self._posterior.get(a, prior) for a in action_ids]).T

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        """Argmax frequencies of ``M`` draws from the K posteriors, shape ``(K,)``."""
        a, b = self._parameters(decision.action_ids)
        return checked(argmax_frequencies(rng.beta(a, b, size=(self.samples, decision.size))))

    def update(self, decision: Decision, chosen: int, reward: float, probability: float) -> None:
        """``a += reward``, ``b += 1 - reward`` for the chosen action; reward must be in [0, 1]."""
        check_feedback(decision, chosen, reward)
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"`reward` must be in [0, 1] for `thompson`, got {reward}")
        action_id = decision.action_ids[chosen]
        a, b = self._posterior.get(action_id, (self.prior_alpha, self.prior_beta))
        self._posterior[action_id] = (a + reward, b + (1.0 - reward))

    def to_bytes(self) -> bytes:
        """Snapshot: hyperparameters and each seen action's ``(a, b)``."""
        state = {"posterior": {k: list(v) for k, v in self._posterior.items()}}
        return serialize.dump(serialize.Snapshot(self.name, self.params(), state, {}))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        snapshot = serialize.load(data, cls.name)
        policy = cls(**snapshot.params)
        policy._posterior = {k: (a, b) for k, (a, b) in snapshot.state["posterior"].items()}
        return policy

    def mean(self, action_id: str) -> float:
        """Posterior mean reward ``a / (a + b)`` of ``action_id``."""
        a, b = self._posterior.get(action_id, (self.prior_alpha, self.prior_beta))
        return a / (a + b)
