"""Turning scores into distributions, the two ways every policy here explores.

- :func:`greedy_with_floor` — deterministic scores: the argmax set shares ``1 - epsilon``
  evenly, and every action gets the floor ``epsilon / K``.
- :func:`argmax_frequencies` — sampled scores (Thompson sampling): the probability of action
  ``k`` is the fraction of the ``M`` draws in which it has the highest score (ties split), so the
  logged propensity is exactly the distribution the action is then sampled from.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def uniform(k: int) -> NDArray[np.float64]:
    """``1/K`` for each of ``K`` actions, shape ``(K,)``."""
    return np.full(k, 1.0 / k)


def greedy_with_floor(scores: NDArray[np.float64], epsilon: float) -> NDArray[np.float64]:
    """``p_k = (1 - epsilon) [k in argmax] / |argmax| + epsilon / K`` for ``scores`` of ``(K,)``."""
    best = scores == scores.max()
    probabilities: NDArray[np.float64] = best * ((1.0 - epsilon) / np.count_nonzero(best))
    return probabilities + epsilon / len(scores)


def argmax_frequencies(draws: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of rows in which each column is the argmax, for ``draws`` of ``(M, K)`` → ``(K,)``.

    A row with tied maxima gives each tied column an equal share of that row.
    """
    m, k = draws.shape
    best = draws == draws.max(axis=1, keepdims=True)
    if np.count_nonzero(best) == m:  # no ties (the usual case with continuous draws)
        counts: NDArray[np.float64] = np.bincount(best.argmax(axis=1), minlength=k) / m
        return counts
    shares: NDArray[np.float64] = best / np.count_nonzero(best, axis=1, keepdims=True)
    frequencies: NDArray[np.float64] = shares.mean(axis=0)
    return frequencies
