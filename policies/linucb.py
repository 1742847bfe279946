"""LinUCB (Li, Chu, Langford, Schapire 2010), disjoint model: one ridge regression per action.

For the ``(K, D)`` design matrix ``X`` (row ``x_k`` = context features, action ``k``'s features and
an intercept) the upper confidence bound of action ``k`` is::

    ucb_k = x_k . theta_k + alpha * sqrt(x_k^T A_k^{-1} x_k)

and the distribution puts ``1 - epsilon`` evenly on the argmax set and ``epsilon / K`` on every
action, so that logged decisions keep a positive propensity for offline evaluation
(``epsilon = 0`` gives plain LinUCB). ``A_k^{-1}`` is kept by Sherman-Morrison updates
(:mod:`policies.ridge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from policies import params as check
from policies.explore import greedy_with_floor
from policies.linear import LinearPolicy


@dataclass(kw_only=True)
class LinUCB(LinearPolicy):
    """``alpha`` (>= 0, default 0.3) scales the confidence width; ``epsilon`` (in [0, 1],
    default 0.01) is the exploration floor; ``l2`` and ``max_features`` as in LinearPolicy.
    """

    name: ClassVar[str] = "linucb"

    alpha: float = 0.3
    epsilon: float = 0.01

    def __post_init__(self) -> None:
        self.alpha = check.real("alpha", self.alpha, low=0.0)
        self.epsilon = check.real("epsilon", self.epsilon, low=0.0, high=1.0)
        super().__post_init__()

    def _choose(
        self, x: NDArray[np.float64], slots: NDArray[np.intp], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        scores = self._ridge.mean(x, slots)
        if self.alpha:
            scores = scores + self.alpha * np.sqrt(self._ridge.variance(x, slots))
        return greedy_with_floor(scores, self.epsilon)
