"""A progressively fitted ridge reward model q̂(x, a) for the replay's DM/DR terms, in one pass.

The replay streams the log once and keeps O(n) floats, so it cannot hold the ``(n, K, d)``
features the cross-fitted :class:`evaluation.RewardModel` needs. Instead q̂ is fitted on the
past only: round i is predicted by a ridge model fitted on rounds < i (refitted at rounds
``first_refit``, 2·``first_refit``, 4·``first_refit``, ... and then every ``refit_every``
rounds), then round i is added to the sufficient statistics. Like cross-fitting, no round's
reward enters its own prediction; since q̂_i depends only on the past, the DR terms keep their
expectation (an online/"predictable" DR, as in progressive validation).

Features φ(x, a), sparse, over a :class:`policies.featurize.Vocabulary` of at most ``dim_cap``
columns (keys beyond the cap are hashed onto shared columns)::

    φ(x, a) = [1, context features, features of a, 1{action id = a}, context ⊗ 1{action id = a}]

i.e. a shared linear model plus a per-action-id intercept and slope (LinUCB's disjoint layout).
The model is β = (Σ φφᵀ + λP)⁻¹ Σ φ r over the rounds seen (P = I with the intercept
unpenalized). Before the first refit q̂ is the mean reward seen so far (0 for the first round).
Memory: the ``(dim_cap, dim_cap)`` Gram matrix; cost per round O(K·m + m²) for m features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from evaluation._checks import FloatArray
from evaluation.reward_model import _solve
from policies import Decision
from policies.featurize import INTERCEPT, Vocabulary, feature_items

__all__ = ["ProgressiveRidge", "SparseRows"]

SparseRows = list[tuple[NDArray[np.intp], FloatArray]]
"""φ(x, a) of each of a round's K actions as ``(columns (m,), values (m,))``."""


@dataclass(kw_only=True)
class ProgressiveRidge:
    """Ridge q̂(x, a) refitted on the past at growing intervals; see the module docstring."""

    l2: float = 1.0
    dim_cap: int = 512
    first_refit: int = 100
    refit_every: int = 20_000
    _vocabulary: Vocabulary = field(init=False, repr=False)
    _gram: FloatArray = field(init=False, repr=False)
    _target: FloatArray = field(init=False, repr=False)
    _beta: FloatArray | None = field(init=False, default=None, repr=False)
    _seen: int = field(init=False, default=0)
    _reward_sum: float = field(init=False, default=0.0)
    _next_refit: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._vocabulary = Vocabulary(self.dim_cap)
        self._gram = np.zeros((self.dim_cap, self.dim_cap))
        self._target = np.zeros(self.dim_cap)
        self._next_refit = self.first_refit

    def features(self, decision: Decision) -> SparseRows:
        """φ(x, a) for each of the decision's K actions (grows the vocabulary)."""
        shared = [(key, value) for ns in decision.context for key, value in feature_items("s", ns)]
        rows: SparseRows = []
        for action_id, namespaces in zip(decision.action_ids, decision.action_features, strict=True):
            items = [(INTERCEPT, 1.0), *shared, (f"id|{action_id}", 1.0)]
            items += [(f"x|{action_id}|{key}", value) for key, value in shared]
            items += [item for ns in namespaces for item in feature_items("a", ns)]
            columns = np.fromiter((self._vocabulary.column(key) for key, _ in items), np.intp, len(items))
            rows.append((columns, np.fromiter((value for _, value in items), np.float64, len(items))))
        return rows

    def predict(self, rows: SparseRows) -> FloatArray:
        """q̂(x, a) for each action, shape ``(K,)``, from the rounds learned before now."""
        beta = self._beta
        if beta is None:
            mean = self._reward_sum / self._seen if self._seen else 0.0
            return np.full(len(rows), mean)
        return np.array([float(beta[columns] @ values) for columns, values in rows])

    def learn(self, rows: SparseRows, chosen: int, reward: float) -> None:
        """Add (φ(x, a_chosen), reward) to the statistics; refit when a checkpoint is reached."""
        columns, values = rows[chosen]
        np.add.at(self._gram, (columns[:, None], columns[None, :]), np.outer(values, values))
        np.add.at(self._target, columns, values * reward)
        self._seen += 1
        self._reward_sum += reward
        if self._seen >= self._next_refit:
            self._refit()
            self._next_refit = min(2 * self._seen, self._seen + self.refit_every)

    def _refit(self) -> None:
        d = len(self._vocabulary)
        penalty = np.full(d, self.l2)
        penalty[0] = 0.0  # column 0 is the intercept
        matrix = self._gram[:d, :d] + np.diag(penalty)
        beta = np.zeros(self.dim_cap)
        beta[:d] = _solve(matrix, self._target[:d])
        self._beta = beta

