"""ε-greedy on ridge estimates: exploit the best estimated action, explore uniformly.

With ``x_k . theta_k`` the ridge estimate of action ``k`` (:mod:`policies.ridge`)::

    p_k = (1 - epsilon) [k in argmax_j x_j . theta_j] / |argmax| + epsilon / K
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from arbiter.policies import params as check
from arbiter.policies.explore import greedy_with_floor, greedy_with_floor_blocks
from arbiter.policies.linear import LinearPolicy


@dataclass(kw_only=True)
class EpsilonGreedy(LinearPolicy):
    """``epsilon`` (in [0, 1], default 0.1) is the share of uniform exploration."""

    name: ClassVar[str] = "epsilon_greedy"
    summary: ClassVar[str] = (
        "epsilon-greedy on a ridge model per action: the best estimate, or uniform with probability epsilon")

    epsilon: float = field(default=0.1, metadata=check.doc(
        "[0, 1]", "share of decisions explored uniformly; the rest go to the best estimate"))

    def __post_init__(self) -> None:
        self.epsilon = check.real("epsilon", self.epsilon, low=0.0, high=1.0)
        super().__post_init__()

    def _needs_variance(self) -> bool:
        return False

    def _finish_block(self, mean: NDArray[np.float64], variance: NDArray[np.float64] | None,
                      offsets: NDArray[np.intp]) -> NDArray[np.float64]:
        return greedy_with_floor_blocks(mean, offsets, self.epsilon)

    def _from_scores(self, mean: NDArray[np.float64], variance: NDArray[np.float64] | None,
                     rng: np.random.Generator) -> NDArray[np.float64]:
        return greedy_with_floor(mean, self.epsilon)
