"""Baselines that do not learn: ``uniform`` (the clean holdout) and ``fixed`` (business as usual).

Their snapshots hold only their hyperparameters; ``update`` validates the feedback and ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from arbiter.policies import params as check
from arbiter.policies import serialize
from arbiter.policies.base import Decision
from arbiter.policies.explore import uniform
from arbiter.policies.linear import check_feedback
from arbiter.policies.params import Hyperparameters


@dataclass(kw_only=True)
class StatelessPolicy(Hyperparameters):
    """A policy whose whole state is its hyperparameters."""

    name: ClassVar[str]

    def update(self, decision: Decision, chosen: int, reward: float, probability: float) -> None:
        """Nothing to learn; invalid feedback is still rejected."""
        check_feedback(decision, chosen, reward)

    def to_bytes(self) -> bytes:
        """Snapshot of the hyperparameters."""
        return serialize.dump(serialize.Snapshot(self.name, self.params(), {}, {}))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        return cls(**serialize.load(data, cls.name).params)


@dataclass(kw_only=True)
class Uniform(StatelessPolicy):
    """``p_k = 1 / K`` over the offered actions. No hyperparameters."""

    name: ClassVar[str] = "uniform"
    summary: ClassVar[str] = "uniform over the offered actions; learns nothing (the clean holdout)"

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        """Uniform over ``decision.action_ids``, shape ``(K,)``."""
        return uniform(decision.size)


@dataclass(kw_only=True)
class Fixed(StatelessPolicy):
    """Always ``action`` (an action id), with an optional exploration ``floor`` in [0, 1]::

        p_k = (1 - floor) [action_ids[k] == action] + floor / K

    If ``action`` is not among the offered actions the distribution is uniform: there is no
    business-as-usual choice to make, and uniform keeps the logged decision usable offline.
    """

    name: ClassVar[str] = "fixed"
    summary: ClassVar[str] = "always one given action (business as usual), with an optional exploration floor"

    action: str = field(metadata=check.doc(
        "action id", "the action to choose; when it is not offered the choice is uniform"))
    floor: float = field(default=0.0, metadata=check.doc(
        "[0, 1]", "exploration floor: every action gets at least floor / K"))

    def __post_init__(self) -> None:
        self.action = check.text("action", self.action)
        self.floor = check.real("floor", self.floor, low=0.0, high=1.0)

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        """See the class docstring; shape ``(K,)``."""
        k = decision.size
        if self.action not in decision.action_ids:
            return uniform(k)
        probabilities = np.full(k, self.floor / k)
        probabilities[decision.action_ids.index(self.action)] += 1.0 - self.floor
        return probabilities
