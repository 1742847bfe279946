"""Anytime-valid confidence bounds: hold at every look at once, however often one looks.

A fixed-sample 95% interval misses the truth 5% of the time *at one look*; looked at every few
minutes for as long as an experiment runs, some interval misses it almost surely. A confidence
sequence (CS) bounds the truth at every sample size simultaneously: ``P(∃t: μ̄_t ∉ CS_t) ≤ alpha``,
so a report may be read, and auto-promotion may decide, at any time. Each bound here is
*one-sided* at level ``beta`` (a two-sided CS at ``1 - alpha`` is two of them at ``alpha/2``), and every
function is vectorized: arrays of accumulators in, arrays of bounds out (numpy broadcasting), so
the simulation of ``tests/experiments/test_anytime.py`` and ``bench/promotion.py`` call exactly
the functions the server calls.

Two constructions, chosen per experiment (``server.report.Intervals.of``):

**Empirical Bernstein, non-asymptotic** (Howard, Ramdas, McAuliffe & Sekhon 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Theorem 4; the inequality
of Fan, Grama & Liu 2015) — when the experiment sets ``reward_range = [lo, hi]``. Values are
scaled to ``x = (r - lo)/(hi - lo) ∈ [0, 1]``. For data ``x_i ≥ 0`` with conditional means
``μ_i`` and any predictable centre ``c_i ∈ [0, 1]`` (here the running mean of the values
before, clipped to [0, 1], 1/2 for the first), ``x_i - c_i ≥ -1`` and for every ``λ ∈ [0, 1)``

    L_t(λ) = exp(λ·S_t - ψ(λ)·V_t),  S_t = Σ (x_i - μ_i),  V_t = Σ (x_i - c_i)²,
    ψ(λ) = -log(1 - λ) - λ,

is a non-negative supermartingale (E[exp(λξ - ψ(λ)ξ²)] ≤ 1 + λE[ξ] for ξ ≥ -1). A mixture
``M_t = Σ_j w_j·L_t(λ_j)`` with weights summing to 1 is one too, and Ville's inequality gives
``P(∃t: M_t ≥ 1/β) ≤ β``. ``M_t < 1/β`` ⟺ ``S_t < u(V_t)`` with the boundary

    u(v) = the s solving Σ_j w_j·exp(λ_j·s - ψ(λ_j)·v) = 1/β        (:func:`bernstein_boundary`)

so ``μ̄_t ≥ x̄_t - u(V_t)/t`` at every t with probability ≥ 1 - β: a lower bound that needs
the data bounded *below* only. The grid is ``λ_j = 0.8·1.5^{-j}``, ``j = 0..GRID-1`` (down to
~1e-4: tight for V up to ~1e8), with equal weights ``1/GRID``; the root is found by Newton's
method from above (the left side is convex and increasing in s, so every iterate stays above
the root: the bound is never optimistic). An upper bound is the lower bound of ``1 - x``.
Sums: ``n``, ``Σx`` and ``V`` (:class:`server.stats.Bernstein`), kept event by event.

- mean reward (``x ∈ [0, 1]``): lower bound from ``x``, upper from ``1 - x`` (the same V: the
  centres ``c`` and ``1 - c`` mirror each other).
- IPS (``w·x ≥ 0`` with ``w = π(a|x)/p``, unbounded above: a rare large weight cannot make the
  bound optimistic): lower bound of ``E[w·x]`` from the values ``w·x``; upper bound
  ``1 - lower(E[w·(1 - x)])``, valid as ``E[w] ≤ 1`` for logged propensities
  (``E[w] = Σ_{a: p(a)>0} π(a) ≤ 1``).

**Asymptotic** (Waudby-Smith, Arnold, Wu, Howard & Ramdas 2021, "Time-uniform central limit
theory and asymptotic confidence sequences", Theorem 2.2) — without a configured
``reward_range`` (the default ±1e6 is a guard, not a range: a bounded CS on it would be a
million wide), and for SNIPS. With the sample standard deviation ``s`` of the ``n`` terms:

    radius = s·sqrt( 2(nr² + 1)/(n²r²) · log( sqrt(nr² + 1)/β ) ),
    r² = (2·log(1/β) + log(1 + 2·log(1/β))) / n*,

the normal-mixture boundary, tightest near ``n = n*`` (:data:`ASYMPTOTIC_OPTIMUM`, or the
experiment's ``auto_promote.min_decisions``). Its coverage holds as n grows (finite variance),
not at every small n — the report says which construction it used.

Differences ``μ_B - μ_A`` of two variants: empirical Bernstein, when every term of each comes
from a decision it served itself — one confidence sequence for the difference itself, from the
product of the two variants' mixture supermartingales minimised over the null
(:func:`difference_evidence`, :func:`difference_lower`); valid whatever the traffic did, as
each decision moves one factor only. Otherwise (a shadow's terms come from the champion's
decisions; and the asymptotic construction) ``[low_B - high_A, high_B - low_A]``, the two
variants' own bounds (a union bound, valid whatever the traffic did because each holds at
every one of its own sample sizes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

GRID = 23  # λ_j = LAMBDA_MAX·SPACING^-j
LAMBDA_MAX = 0.8
SPACING = 1.5
NEWTON_STEPS = 60
GOLDEN_STEPS = 48  # golden-section steps over m in [0, 1] (0.618^48 ≈ 1e-10)
REFINE_ROUNDS = 5  # rounds of a grid search for a difference's bound over [-1, 1]
REFINE_POINTS = 33  # δ per round (spacing 1/32 of the bracket)
ASYMPTOTIC_OPTIMUM = 1000  # n* of the asymptotic boundary when no min_decisions is configured

_LAMBDAS = LAMBDA_MAX * SPACING ** -np.arange(GRID, dtype=float)
_PSI = -np.log1p(-_LAMBDAS) - _LAMBDAS
_LOG_WEIGHT = -math.log(GRID)


def bernstein_boundary(v: Any, beta: Any) -> Array:
    """u(v) of the module docstring: ``S_t < u(V_t)`` at every t with probability ≥ 1 - β.
    ``v`` (≥ 0) and ``beta`` (in (0, 1)) broadcast against each other."""
    v_, beta_ = np.broadcast_arrays(np.asarray(v, dtype=float), np.asarray(beta, dtype=float))
    v_ = np.maximum(v_, 0.0)[..., None]
    target = -np.log(beta_)[..., None]
    # any single term reaching 1/β alone puts s above the root: start at the smallest such s
    s = np.min((target - _LOG_WEIGHT + _PSI * v_) / _LAMBDAS, axis=-1, keepdims=True)
    for _ in range(NEWTON_STEPS):
        exponents = _LOG_WEIGHT + _LAMBDAS * s - _PSI * v_
        top = exponents.max(axis=-1, keepdims=True)
        weights = np.exp(exponents - top)
        total = weights.sum(axis=-1, keepdims=True)
        value = top + np.log(total) - target  # log M(s) - log(1/β): convex, increasing in s
        slope = (weights * _LAMBDAS).sum(axis=-1, keepdims=True) / total
        step = value / slope
        s = s - step
        if np.all(np.abs(step) <= 1e-12 * np.maximum(1.0, np.abs(s))):
            break
    return np.asarray(s[..., 0], dtype=float)


def bernstein_lower(n: Any, total: Any, v: Any, beta: Any) -> Array:
    """Lower bound of the average conditional mean of ``n`` values ``≥ 0`` (scaled units) with
    sum ``total`` and ``V = v``; -inf where ``n`` is 0."""
    n_ = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = (np.asarray(total, dtype=float) - bernstein_boundary(v, beta)) / n_
    return np.where(n_ > 0, low, -np.inf)


def log_mixture(s: Any, v: Any) -> Array:
    """log M = log Σ_j w_j·exp(λ_j·s - ψ(λ_j)·v), the mixture at ``S = s``, ``V = v``."""
    exponents = (_LOG_WEIGHT + _LAMBDAS * np.asarray(s, dtype=float)[..., None]
                 - _PSI * np.asarray(v, dtype=float)[..., None])
    top = exponents.max(axis=-1)
    return np.asarray(top + np.log(np.exp(exponents - top[..., None]).sum(axis=-1)))


def difference_evidence(up: Sequence[Any], down: Sequence[Any],
                        delta: Any = 0.0) -> Array:
    """log of the evidence against ``μ_B - μ_A ≤ delta`` (scaled units), from B's lower-bound
    sums ``up = (n, Σx, V)`` (values ≥ 0, mean μ_B) and A's mirrored sums ``down = (n, Σy, V)``
    (values ``y ≥ 0`` of mean ≤ 1 - μ_A: ``1 - x``, or ``w·(1 - x)``):

        E(δ) = min over m in [0, 1] of  M_B(Σx - n_B·(m + δ), V_B) · M_A(Σy - n_A·(1 - m), V_A).

    Each factor at the true means is a mixture supermartingale of the module docstring, and
    each step of the decisions moves one of them: their product is a non-negative
    supermartingale (Ville: ``P(∃t: ≥ 1/β) ≤ β``). M_B falls as its mean rises and M_A as
    ``1 - m`` rises, so at any pair of the null (``μ_B ≤ μ_A + δ``, ``m = μ_A``) the product is
    at most the one at the truth, and ``E(δ)`` at most that: ``E(δ) ≥ 1/β`` rejects the null
    with probability ≤ β at any look. One mixture for the difference rather than a bound per
    variant: about a third fewer decisions than comparing two separate bounds. log M is convex
    in m (a log-sum-exp of affine functions): golden-section search."""
    n_up, total_up, v_up = (np.asarray(x, dtype=float) for x in up)
    n_down, total_down, v_down = (np.asarray(x, dtype=float) for x in down)
    delta_ = np.asarray(delta, dtype=float)

    def log_product(m: Array) -> Array:
        return (log_mixture(total_up - n_up * (m + delta_), v_up)
                + log_mixture(total_down - n_down * (1 - m), v_down))

    shape = np.broadcast_shapes(n_up.shape, n_down.shape, delta_.shape)
    low, high = np.zeros(shape), np.ones(shape)
    ratio = (math.sqrt(5) - 1) / 2
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    f_left, f_right = log_product(left), log_product(right)
    for _ in range(GOLDEN_STEPS):
        go_left = f_left < f_right  # the minimum is left of ``right``: drop (right, high]
        high = np.where(go_left, right, high)
        low = np.where(go_left, low, left)
        new_left = np.where(go_left, high - ratio * (high - low), right)
        new_right = np.where(go_left, left, low + ratio * (high - low))
        f_new = log_product(np.where(go_left, new_left, new_right))
        f_left, f_right = (np.where(go_left, f_new, f_right),
                           np.where(go_left, f_left, f_new))
        left, right = new_left, new_right
    ends = np.minimum(log_product(np.zeros(shape)), log_product(np.ones(shape)))
    return np.asarray(np.minimum(np.minimum(f_left, f_right), ends))


def difference_lower(up: Sequence[Any], down: Sequence[Any], beta: Any) -> Array:
    """The largest δ in [-1, 1] (scaled units) with ``E(δ) ≥ 1/β`` (:func:`difference_evidence`):
    ``μ_B - μ_A ≥`` it at every look with probability ≥ 1 - β; -1 when none. E falls as δ
    rises: :data:`REFINE_ROUNDS` rounds of :data:`REFINE_POINTS` evenly spaced δ bracket it
    (each round vectorized), the result the last rejected one (rounded down: never
    optimistic; to 2/32^5 ≈ 6e-8)."""
    target = -np.log(np.asarray(beta, dtype=float))
    shape = np.broadcast_shapes(np.shape(up[0]), np.shape(down[0]), target.shape)
    up_ = tuple(np.broadcast_to(np.asarray(x, dtype=float), shape)[..., None] for x in up)
    down_ = tuple(np.broadcast_to(np.asarray(x, dtype=float), shape)[..., None] for x in down)
    low, high = np.full(shape, -1.0), np.full(shape, 1.0)
    steps = np.linspace(0.0, 1.0, REFINE_POINTS)
    for _ in range(REFINE_ROUNDS):
        grid = low[..., None] + (high - low)[..., None] * steps
        rejected = difference_evidence(up_, down_, grid) >= np.broadcast_to(target, shape)[..., None]
        k = rejected.sum(axis=-1)  # a prefix: rejected below the bound, not above
        last = np.take_along_axis(grid, np.maximum(k - 1, 0)[..., None], axis=-1)[..., 0]
        after = np.take_along_axis(grid, np.minimum(k, REFINE_POINTS - 1)[..., None],
                                   axis=-1)[..., 0]
        low = np.where(k > 0, last, low)
        high = np.where(k > 0, after, low)
    return low


def asymptotic_radius(n: Any, sd: Any, beta: Any, optimum: float = ASYMPTOTIC_OPTIMUM) -> Array:
    """The asymptotic CS's radius around a mean of ``n`` terms of standard deviation ``sd``
    (one side at ``beta``; conservative: the two-sided boundary at ``beta``); inf below 2."""
    n_, sd_, beta_ = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(sd, dtype=float),
                                         np.asarray(beta, dtype=float))
    log_inverse = -np.log(beta_)
    rho2 = (2 * log_inverse + np.log1p(2 * log_inverse)) / float(optimum)
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = sd_ * np.sqrt(2 * (n_ * rho2 + 1) / (n_ * n_ * rho2)
                               * (0.5 * np.log(n_ * rho2 + 1) + log_inverse))
    return np.where((n_ >= 2) & np.isfinite(sd_), radius, np.inf)


def scaled(value: Any, reward_range: tuple[float, float]) -> Array:
    """``(r - lo)/(hi - lo)``: a reward in [0, 1] units."""
    low, high = reward_range
    return (np.asarray(value, dtype=float) - low) / (high - low)


def unscaled(value: Any, reward_range: tuple[float, float]) -> Array:
    low, high = reward_range
    return low + np.asarray(value, dtype=float) * (high - low)
