"""LinUCB (Li, Chu, Langford, Schapire 2010), disjoint model: one ridge regression per action.

For the ``(K, D)`` design matrix ``X`` (row ``x_k`` = context features, action ``k``'s features and
an intercept) the upper confidence bound of action ``k`` is::

    ucb_k = x_k . theta_k + alpha * sqrt(x_k^T A_k^{-1} x_k)

and the distribution puts ``1 - epsilon`` evenly on the argmax set and ``epsilon / K`` on every
action, so that logged decisions keep a positive propensity for offline evaluation
(``epsilon = 0`` gives plain LinUCB). ``A_k^{-1}`` is kept by Sherman-Morrison updates
(:mod:`policies.ridge`).

With ``hybrid = true`` the model is the paper's hybrid one (:mod:`policies.hybrid`): the row is
scored with shared coefficients plus the action's own, ``x_k . (beta + theta_k)``, and the width
uses the joint posterior variance. It pools what actions have in common, so a new action starts
from the shared estimate instead of zero, at about 2.5 times the cost per decision; it does not
take ``decay`` < 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from arbiter.policies import params as check
from arbiter.policies.base import PolicyConfigError
from arbiter.policies.explore import greedy_with_floor, greedy_with_floor_blocks
from arbiter.policies.hybrid import HybridRidge
from arbiter.policies.linear import LinearPolicy
from arbiter.policies.ridge import RidgeModels


@dataclass(kw_only=True)
class LinUCB(LinearPolicy):
    """``alpha`` (>= 0, default 0.3) scales the confidence width; ``epsilon`` (in [0, 1],
    default 0.01) is the exploration floor; ``hybrid`` (default false) adds the shared part;
    ``l2`` and ``max_features`` as in LinearPolicy.
    """

    name: ClassVar[str] = "linucb"
    summary: ClassVar[str] = ("a ridge model per action; the highest upper confidence bound wins, "
                              "with an exploration floor")

    alpha: float = field(default=0.3, metadata=check.doc(
        ">= 0", "width of the confidence bonus: estimate + alpha * standard error (0: greedy)"))
    epsilon: float = field(default=0.01, metadata=check.doc(
        "[0, 1]", "exploration floor: every action gets at least epsilon / K"))
    hybrid: bool = field(default=False, metadata=check.doc(
        "true or false", "add a model shared by all actions, so new actions start from it"))

    def __post_init__(self) -> None:
        self.alpha = check.real("alpha", self.alpha, low=0.0)
        self.epsilon = check.real("epsilon", self.epsilon, low=0.0, high=1.0)
        self.hybrid = check.flag("hybrid", self.hybrid)
        super().__post_init__()
        if self.hybrid and self.decay != 1.0:
            raise PolicyConfigError(f"`decay` must be 1 with `hybrid` = true, got {self.decay!r}")

    def _new_ridge(self) -> RidgeModels:
        return HybridRidge(self.l2) if self.hybrid else RidgeModels(self.l2, self.decay)

    def _needs_variance(self) -> bool:
        return bool(self.alpha)

    def _finish_block(self, mean: NDArray[np.float64], variance: NDArray[np.float64] | None,
                      offsets: NDArray[np.intp]) -> NDArray[np.float64]:
        scores = mean if variance is None else mean + self.alpha * np.sqrt(variance)
        return greedy_with_floor_blocks(scores, offsets, self.epsilon)

    def _exploration(self, variance: NDArray[np.float64]) -> tuple[NDArray[np.float64], bool]:
        return self.alpha * np.sqrt(variance), True

    def _from_scores(self, mean: NDArray[np.float64], variance: NDArray[np.float64] | None,
                     rng: np.random.Generator) -> NDArray[np.float64]:
        scores = mean if variance is None else mean + self.alpha * np.sqrt(variance)
        return greedy_with_floor(scores, self.epsilon)
