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
Memory: the ``(dim_cap, dim_cap)`` Gram matrix. Cost per round O(K·m) for m features: the
columns of φ(·, a) are cached by (action id, context feature names), and the Gram updates are
buffered and applied in blocks with one ``np.bincount`` per block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate, pairwise

import numpy as np
from numpy.typing import NDArray

from arbiter.evaluation._checks import FloatArray
from arbiter.evaluation.reward_model import _solve
from arbiter.policies import Decision
from arbiter.policies.featurize import INTERCEPT, Vocabulary, feature_items

__all__ = ["ProgressiveRidge", "SparseRows"]

_CACHE_LIMIT = 65_536
"""Cached column arrays before the cache is cleared (a memory bound only)."""
_FLUSH = 4096
"""Learned rounds buffered before their outer products are added to the Gram matrix."""


@dataclass(frozen=True, slots=True)
class SparseRows:
    """φ(x, a) of a round's K actions: action k is ``columns[starts[k]:starts[k + 1]]`` with
    ``values`` alike; ``columns`` and ``values`` are ``(total,)``, ``starts`` is ``(K + 1,)``.
    The K slices are cut once (a decision recurs; learning takes one of them every round)."""

    columns: NDArray[np.intp]
    values: FloatArray
    starts: NDArray[np.intp]
    _actions: tuple[tuple[NDArray[np.intp], FloatArray], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        bounds = self.starts.tolist()
        object.__setattr__(self, "_actions", tuple(
            (self.columns[start:stop], self.values[start:stop]) for start, stop in pairwise(bounds)))

    def action(self, k: int) -> tuple[NDArray[np.intp], FloatArray]:
        """``(columns, values)`` of action ``k``."""
        return self._actions[k]


@dataclass(kw_only=True)
class ProgressiveRidge:
    """Ridge q̂(x, a) refitted on the past at growing intervals; see the module docstring."""

    l2: float = 1.0
    dim_cap: int = 512
    first_refit: int = 100
    refit_every: int = 20_000
    _vocabulary: Vocabulary = field(init=False, repr=False)
    _columns: dict[tuple[str, tuple[str, ...]], NDArray[np.intp]] = field(init=False, repr=False)
    _gram: FloatArray = field(init=False, repr=False)
    _target: FloatArray = field(init=False, repr=False)
    _pending: dict[int, list[tuple[NDArray[np.intp], FloatArray, float]]] = field(init=False, repr=False)
    _n_pending: int = field(init=False, default=0)
    _beta: FloatArray | None = field(init=False, default=None, repr=False)
    _seen: int = field(init=False, default=0)
    _reward_sum: float = field(init=False, default=0.0)
    _next_refit: int = field(init=False, default=0)
    _fits: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._vocabulary = Vocabulary(self.dim_cap)
        self._columns = {}
        self._gram = np.zeros((self.dim_cap, self.dim_cap))
        self._target = np.zeros(self.dim_cap)
        self._pending = {}
        self._next_refit = self.first_refit

    def features(self, decision: Decision) -> SparseRows:
        """φ(x, a) for each of the decision's K actions (grows the vocabulary)."""
        shared = [item for ns in decision.context for item in feature_items("s", ns)]
        names = tuple(key for key, _ in shared)
        numbers = np.fromiter((value for _, value in shared), np.float64, len(shared))
        values = np.concatenate(([1.0], numbers, [1.0], numbers))
        parts_c: list[NDArray[np.intp]] = []
        parts_v: list[FloatArray] = []
        for action_id, namespaces in zip(decision.action_ids, decision.action_features, strict=True):
            columns = self._action_columns(action_id, names)
            own = [item for ns in namespaces for item in feature_items("a", ns)]
            if own:
                parts_c.append(np.concatenate([columns, [self._vocabulary.column(key) for key, _ in own]]))
                parts_v.append(np.concatenate([values, [value for _, value in own]]))
            else:
                parts_c.append(columns)
                parts_v.append(values)
        starts = np.fromiter(accumulate((len(c) for c in parts_c), initial=0), np.intp, len(parts_c) + 1)
        return SparseRows(np.concatenate(parts_c), np.concatenate(parts_v), starts)

    @property
    def fits(self) -> int | None:
        """How many times β was fitted; None before the first fit (the prediction is then the
        running mean, which changes every round). Predictions change only when this does."""
        return self._fits or None

    def predict(self, rows: SparseRows) -> FloatArray:
        """q̂(x, a) for each action, shape ``(K,)``, from the rounds learned before now."""
        k = rows.starts.size - 1
        if self._beta is None:
            return np.full(k, self._reward_sum / self._seen if self._seen else 0.0)
        terms = self._beta[rows.columns] * rows.values
        return np.add.reduceat(terms, rows.starts[:-1]) if terms.size else np.zeros(k)

    def learn(self, rows: SparseRows, chosen: int, reward: float) -> None:
        """Add (φ(x, a_chosen), reward) to the statistics; refit when a checkpoint is reached."""
        columns, values = rows.action(chosen)
        self._pending.setdefault(columns.size, []).append((columns, values, reward))
        self._n_pending += 1
        self._seen += 1
        self._reward_sum += reward
        if self._n_pending >= _FLUSH:
            self._flush()
        if self._seen >= self._next_refit:
            self._refit()
            self._next_refit = min(2 * self._seen, self._seen + self.refit_every)

    def _action_columns(self, action_id: str, names: tuple[str, ...]) -> NDArray[np.intp]:
        """Columns of [1, context, 1{id}, context ⊗ 1{id}] for ``action_id``, cached."""
        key = (action_id, names)
        columns = self._columns.get(key)
        if columns is None:
            if len(self._columns) >= _CACHE_LIMIT:
                self._columns.clear()
            keys = [INTERCEPT, *names, f"id|{action_id}", *(f"x|{action_id}|{name}" for name in names)]
            columns = np.array([self._vocabulary.column(k) for k in keys], dtype=np.intp)
            self._columns[key] = columns
        return columns

    def _flush(self) -> None:
        """Add the buffered rounds' φφᵀ and φr, one bincount per group of equal length."""
        d = self.dim_cap
        for group in self._pending.values():
            columns = np.concatenate([c for c, _, _ in group]).reshape(len(group), -1)  # (B, m)
            values = np.concatenate([v for _, v, _ in group]).reshape(len(group), -1)
            rewards = np.array([r for _, _, r in group])
            pairs = (columns[:, :, None] * d + columns[:, None, :]).ravel()
            products = (values[:, :, None] * values[:, None, :]).ravel()
            self._gram += np.bincount(pairs, products, minlength=d * d).reshape(d, d)
            self._target += np.bincount(columns.ravel(), (values * rewards[:, None]).ravel(), minlength=d)
        self._pending.clear()
        self._n_pending = 0

    def _refit(self) -> None:
        self._flush()
        d = len(self._vocabulary)
        penalty = np.full(d, self.l2)
        penalty[0] = 0.0  # column 0 is the intercept
        matrix = self._gram[:d, :d] + np.diag(penalty)
        beta = np.zeros(self.dim_cap)
        beta[:d] = _solve(matrix, self._target[:d])
        self._beta = beta
        self._fits += 1

