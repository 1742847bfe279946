"""Turning scores into distributions, the two ways every policy here explores.

- :func:`greedy_with_floor` — deterministic scores: the argmax set shares ``1 - epsilon``
  evenly, and every action gets the floor ``epsilon / K``.
- :func:`argmax_frequencies` — sampled scores (Thompson sampling): the probability of action
  ``k`` is the fraction of the ``M`` draws in which it has the highest score (ties split), so the
  logged propensity is exactly the distribution the action is then sampled from.

Scores come from learned state and request features, both finite but possibly huge, so a score
may overflow to an infinity or, through ``inf - inf``, to NaN. A NaN score counts as ``-inf``
(never the argmax unless every score is); infinite scores are ordinary maxima. And every policy
passes what it returns through :func:`checked`, the last line of defence: a distribution that is
not finite, not non-negative or sums to 0 becomes uniform, so no policy ever emits one.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def uniform(k: int) -> NDArray[np.float64]:
    """``1/K`` for each of ``K`` actions, shape ``(K,)``."""
    return np.full(k, 1.0 / k)


def greedy_with_floor(scores: NDArray[np.float64], epsilon: float) -> NDArray[np.float64]:
    """``p_k = (1 - epsilon) [k in argmax] / |argmax| + epsilon / K`` for ``scores`` of ``(K,)``."""
    top = np.maximum.reduce(scores)  # scores.max(), without the method's Python wrapper
    if top != top:  # a NaN score (numpy's max propagates it): it counts as -inf
        scores = np.where(np.isnan(scores), -np.inf, scores)
        top = np.maximum.reduce(scores)
    best = scores == top
    probabilities: NDArray[np.float64] = best * ((1.0 - epsilon) / np.count_nonzero(best))
    return probabilities + epsilon / len(scores)


def greedy_with_floor_blocks(scores: NDArray[np.float64], offsets: NDArray[np.intp],
                             epsilon: float) -> NDArray[np.float64]:
    """:func:`greedy_with_floor` of every segment ``offsets[i]:offsets[i + 1]`` of ``scores``
    (shape ``(N,)``, segments non-empty), concatenated: the same arithmetic, element by
    element, in a few array operations for the whole block."""
    starts, sizes = offsets[:-1], np.diff(offsets)
    if np.isnan(scores).any():  # a NaN score counts as -inf
        scores = np.where(np.isnan(scores), -np.inf, scores)
    best = scores == np.repeat(np.maximum.reduceat(scores, starts), sizes)
    share = (1.0 - epsilon) / np.add.reduceat(best, starts)
    probabilities: NDArray[np.float64] = best * np.repeat(share, sizes)
    return probabilities + np.repeat(epsilon / sizes, sizes)


def argmax_frequencies(draws: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of rows in which each column is the argmax, for ``draws`` of ``(M, K)`` → ``(K,)``.

    A row with tied maxima gives each tied column an equal share of that row.
    """
    m, k = draws.shape
    top = draws.max(axis=1, keepdims=True)
    if np.isnan(top).any():  # NaN draws count as -inf
        draws = np.where(np.isnan(draws), -np.inf, draws)
        top = draws.max(axis=1, keepdims=True)
    best = draws == top
    if np.count_nonzero(best) == m:  # no ties (the usual case with continuous draws)
        counts: NDArray[np.float64] = np.bincount(best.argmax(axis=1), minlength=k) / m
        return counts
    shares: NDArray[np.float64] = best / np.count_nonzero(best, axis=1, keepdims=True)
    frequencies: NDArray[np.float64] = shares.mean(axis=0)
    return frequencies


def checked_blocks(probabilities: NDArray[np.float64], offsets: NDArray[np.intp]) -> NDArray[np.bool_]:
    """Which segments ``probabilities[offsets[i]:offsets[i + 1]]`` (each non-empty) pass
    :func:`checked` as they are, shape ``(len(offsets) - 1,)``, with two reductions for the
    whole block: finite, non-negative and summing to 1 within 1e-10 — a tenth of
    :func:`checked`'s margin, so a sum taken in another order cannot disagree. False: not
    known; :func:`checked` decides."""
    starts = offsets[:-1]
    totals = np.add.reduceat(probabilities, starts)
    fine: NDArray[np.bool_] = ((np.abs(totals - 1.0) <= 1e-10)
                               & (np.minimum.reduceat(probabilities, starts) >= 0))
    return fine


def checked(probabilities: NDArray[np.float64]) -> NDArray[np.float64]:
    """``probabilities`` (shape ``(K,)``) if finite, non-negative and summing to more than 0
    (rescaled to sum to 1 when it is off by more than rounding), else uniform over ``K``."""
    total = float(np.add.reduce(probabilities))  # NaN or an infinity anywhere makes it so
    if not (total > 0 and math.isfinite(total) and np.minimum.reduce(probabilities) >= 0):
        return uniform(len(probabilities))
    if abs(total - 1.0) > 1e-9:
        rescaled: NDArray[np.float64] = probabilities / total
        return rescaled
    return probabilities
