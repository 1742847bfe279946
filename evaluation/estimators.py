"""Off-policy estimators: the value of an evaluated policy π from a log collected by another.

Every estimator takes the same keyword arguments, all plain numpy arrays:

==================  ==========  =================================================================
argument            shape       meaning
==================  ==========  =================================================================
``reward``          ``(n,)``    r_i, the observed reward of logged round i
``action``          ``(n,)``    a_i, the index (0..K-1, integer dtype) of the logged action
``pscore``          ``(n,)``    π_0(a_i|x_i), the logged probability of a_i, in (0, 1]
``action_dist``     ``(n, K)``  π(a|x_i), the evaluated policy's distribution in round i
``estimated_rewards``  ``(n, K)``  q̂(x_i, a), reward-model predictions (DM, DR, SNDR, SwitchDR);
                                see :mod:`evaluation.reward_model` for a cross-fitted model
==================  ==========  =================================================================

With the importance weight w_i = π(a_i|x_i) / π_0(a_i|x_i), the model's value of the evaluated
policy q̂(x_i, π) = Σ_a π(a|x_i) q̂(x_i, a) / Σ_a π(a|x_i) (the denominator is 1 up to the
validation tolerance; dividing by it reproduces OBP's ``np.average`` bit for bit) and E_n the mean
over the n rounds, the estimators are the textbook ones, exactly as Open Bandit Pipeline
(``obp.ope``) defines them:

- IPS       V̂ = E_n[w_i r_i]                                  (Horvitz-Thompson; Strehl et al. 2010)
- SNIPS     V̂ = E_n[w_i r_i] / E_n[w_i]                       (Swaminathan & Joachims 2015)
- DM        V̂ = E_n[q̂(x_i, π)]                               (Beygelzimer & Langford 2009)
- DR        V̂ = E_n[q̂(x_i, π) + w_i (r_i - q̂(x_i, a_i))]     (Dudík et al. 2011)
- SNDR      V̂ = E_n[q̂(x_i, π) + w_i (r_i - q̂(x_i, a_i)) / E_n[w_i]]      (OBP's SNDR)
- SwitchDR  V̂ = E_n[q̂(x_i, π) + 1{w_i ≤ τ} w_i (r_i - q̂(x_i, a_i))]     (Wang et al. 2017)

No clipping or smoothing is applied. Inputs are validated once, in the public methods; a bad
input raises :class:`EvaluationInputError` (a ``ValueError``) whose message names the argument.

Like OBP, each estimator is a small dataclass whose per-round hook ``_round_rewards`` returns
terms whose mean is the estimate; SNIPS and SNDR override only that hook. Unlike OBP they are
frozen and keyword-only, take no ``**kwargs``, and the bootstrap recomputes the estimator on
each resample (so the self-normalizing mean weight is re-estimated too; OBP resamples the
per-round terms with the full-sample normalizer held fixed — the two agree for IPS, DM, DR and
SwitchDR, whose terms do not depend on other rows).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from arbiter.evaluation._checks import (
    EvaluationInputError,
    FloatArray,
    action_array,
    check_int,
    float_array,
    same_rows,
)

__all__ = [
    "DM",
    "DR",
    "ESTIMATORS",
    "IPS",
    "ROW_SUM_TOLERANCE",
    "SNDR",
    "SNIPS",
    "EvaluationInputError",
    "OffPolicyEstimator",
    "SwitchDR",
    "effective_sample_size",
    "importance_weights",
]

IntervalMethod = Literal["bootstrap", "normal"]

ROW_SUM_TOLERANCE = 1e-6
"""How far a row of ``action_dist`` may sum from 1 (absolute) before it is rejected."""

_BOOTSTRAP_BLOCK = 1 << 22
"""Resampled cells held in memory at once: replicates are drawn in blocks of ~4M row indices."""


@dataclass(frozen=True, slots=True)
class _Rows:
    """The per-row quantities every estimator is a function of; each array is ``(..., n)``.

    The leading axes, if any, are bootstrap replicates (one resample per leading index), so
    hooks must reduce over rows with ``axis=-1, keepdims=True``.
    """

    reward: FloatArray  # r_i
    weight: FloatArray  # w_i = π(a_i|x_i) / pscore_i
    q_policy: FloatArray  # q̂(x_i, π); zeros when no reward model was given
    q_logged: FloatArray  # q̂(x_i, a_i); zeros when no reward model was given

    @property
    def n(self) -> int:
        return int(self.reward.shape[-1])

    def take(self, index: NDArray[np.intp]) -> _Rows:
        """The rows at ``index`` (any shape ``(..., m)``): a resample of the log."""
        return _Rows(
            reward=self.reward[index],
            weight=self.weight[index],
            q_policy=self.q_policy[index],
            q_logged=self.q_logged[index],
        )


@dataclass(frozen=True, kw_only=True)
class OffPolicyEstimator(ABC):
    """Base class: shared validation, point estimate and intervals; subclasses add one hook.

    A subclass defines ``name``, whether it needs ``estimated_rewards``, and
    ``_round_rewards(rows) -> (..., n)`` whose mean over the last axis is the estimate.
    """

    name: ClassVar[str]
    needs_reward_model: ClassVar[bool] = False
    self_normalized: ClassVar[bool] = False

    # ----------------------------------------------------------------- public API

    def estimate_policy_value(
        self,
        *,
        reward: ArrayLike,
        action: ArrayLike,
        pscore: ArrayLike,
        action_dist: ArrayLike,
        estimated_rewards: ArrayLike | None = None,
    ) -> float:
        """The estimate V̂ of the evaluated policy's expected reward per round (a float).

        Shapes: ``reward``, ``action``, ``pscore`` are ``(n,)``; ``action_dist`` and
        ``estimated_rewards`` are ``(n, K)``. See the module docstring for the formula.
        """
        rows = self._prepare(reward, action, pscore, action_dist, estimated_rewards)
        return float(np.mean(self._round_rewards(rows)))

    def estimate_interval(
        self,
        *,
        reward: ArrayLike,
        action: ArrayLike,
        pscore: ArrayLike,
        action_dist: ArrayLike,
        estimated_rewards: ArrayLike | None = None,
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        seed: int | None = None,
        method: IntervalMethod = "bootstrap",
    ) -> tuple[float, float]:
        """A ``(low, high)`` confidence interval for V̂ at level ``1 - alpha``.

        ``method="bootstrap"`` (default): the nonparametric percentile bootstrap. Each of
        ``n_bootstrap`` replicates draws n rows of the log uniformly with replacement (with
        ``np.random.default_rng(seed)``) and recomputes the estimator on them; the interval is
        the ``alpha/2`` and ``1 - alpha/2`` quantiles (linear interpolation) of the replicates.
        The reward model is held fixed (it is not refitted per replicate). Cost O(n_bootstrap·n).

        ``method="normal"``: the normal (Wald) approximation V̂ ± z_{1-alpha/2} · s/√n, where s is
        the sample standard deviation (ddof=1) of the estimator's per-row influence terms: the
        per-round terms for IPS, DM, DR and SwitchDR; the delta-method terms
        w_i (r_i - V̂) / E_n[w] for SNIPS and the analogous ones for SNDR. Deterministic;
        ``n_bootstrap`` and ``seed`` are ignored. Needs n ≥ 2.
        """
        rows = self._prepare(reward, action, pscore, action_dist, estimated_rewards)
        return self._interval(rows, alpha, n_bootstrap, seed, method, versus_logging=False)

    def compare_to_logging(
        self,
        *,
        reward: ArrayLike,
        action: ArrayLike,
        pscore: ArrayLike,
        action_dist: ArrayLike,
        estimated_rewards: ArrayLike | None = None,
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        seed: int | None = None,
        method: IntervalMethod = "bootstrap",
    ) -> tuple[float, float, float]:
        """``(difference, low, high)``: V̂(π) - r̄ and its paired ``1 - alpha`` interval.

        r̄ = E_n[r_i], the logging policy's on-policy value on the same log. The interval is
        paired: each bootstrap replicate computes V̂ and r̄ on the same resampled rows, and the
        normal interval uses the influence terms ψ_i - (r_i - r̄). Pairing removes the variance
        the two share, so it is narrower than combining two separate intervals. Same
        ``alpha``, ``n_bootstrap``, ``seed`` and ``method`` as :meth:`estimate_interval`.
        """
        rows = self._prepare(reward, action, pscore, action_dist, estimated_rewards)
        difference = float(np.mean(self._round_rewards(rows)) - np.mean(rows.reward))
        low, high = self._interval(rows, alpha, n_bootstrap, seed, method, versus_logging=True)
        return difference, low, high

    # ----------------------------------------------------------------- hooks

    @abstractmethod
    def _round_rewards(self, rows: _Rows) -> FloatArray:
        """Per-round terms, shape ``(..., n)``; their mean over the last axis is V̂."""

    def _influence(self, rows: _Rows) -> FloatArray:
        """Per-row influence terms ψ_i (mean 0) with Var(V̂) ≈ Var(ψ)/n; ``rows`` is 1-D."""
        terms = self._round_rewards(rows)
        centered: FloatArray = terms - terms.mean()
        return centered

    # ----------------------------------------------------------------- internals

    def _prepare(
        self,
        reward: ArrayLike,
        action: ArrayLike,
        pscore: ArrayLike,
        action_dist: ArrayLike,
        estimated_rewards: ArrayLike | None,
    ) -> _Rows:
        if self.needs_reward_model and estimated_rewards is None:
            raise EvaluationInputError(
                f"`estimated_rewards` is required by {type(self).__name__} (shape (n, K), "
                "e.g. from arbiter.evaluation.reward_model.RewardModel.fit_predict)"
            )
        rows = _validated_rows(reward, action, pscore, action_dist, estimated_rewards)
        if self.self_normalized and not np.any(rows.weight > 0):
            raise EvaluationInputError(
                "`action_dist` gives probability 0 to every logged action, so "
                f"{type(self).__name__} (self-normalized by the mean weight) is undefined"
            )
        return rows

    def _interval(
        self,
        rows: _Rows,
        alpha: float,
        n_bootstrap: int,
        seed: int | None,
        method: IntervalMethod,
        *,
        versus_logging: bool,
    ) -> tuple[float, float]:
        if not (isinstance(alpha, float | int) and 0.0 < alpha < 1.0):
            raise EvaluationInputError(f"`alpha` must be in (0, 1), got {alpha!r}")
        if method == "bootstrap":
            check_int(n_bootstrap, "n_bootstrap", minimum=1)
            return self._bootstrap_interval(rows, alpha, n_bootstrap, seed, versus_logging)
        if method == "normal":
            return self._normal_interval(rows, alpha, versus_logging)
        raise EvaluationInputError(f"`method` must be 'bootstrap' or 'normal', got {method!r}")

    def _statistic(self, rows: _Rows, versus_logging: bool) -> FloatArray:
        """V̂ (or V̂ - r̄) of each resample: shape ``(...)`` for rows of shape ``(..., n)``."""
        value: FloatArray = self._round_rewards(rows).mean(axis=-1)
        if versus_logging:
            value = value - rows.reward.mean(axis=-1)
        return value

    def _bootstrap_interval(
        self, rows: _Rows, alpha: float, n_bootstrap: int, seed: int | None, versus_logging: bool
    ) -> tuple[float, float]:
        rng = np.random.default_rng(seed)
        n = rows.n
        replicates = np.empty(n_bootstrap, dtype=np.float64)
        block = max(1, _BOOTSTRAP_BLOCK // n)
        with np.errstate(invalid="ignore", divide="ignore"):
            for start in range(0, n_bootstrap, block):
                stop = min(start + block, n_bootstrap)
                index = rng.integers(0, n, size=(stop - start, n))
                replicates[start:stop] = self._statistic(rows.take(index), versus_logging)
        # A self-normalized replicate whose resampled weights are all 0 is undefined (0/0);
        # such replicates are dropped, the rest give the interval.
        finite = replicates[np.isfinite(replicates)]
        if finite.size == 0:
            raise EvaluationInputError(
                "every bootstrap replicate was undefined (all resampled importance weights 0)"
            )
        low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
        return float(low), float(high)

    def _normal_interval(self, rows: _Rows, alpha: float, versus_logging: bool) -> tuple[float, float]:
        if rows.n < 2:
            raise EvaluationInputError("`reward` needs at least 2 rows for a normal interval")
        value = float(self._statistic(rows, versus_logging))
        influence = self._influence(rows)
        if versus_logging:
            influence = influence - (rows.reward - rows.reward.mean())
        spread = float(np.std(influence, ddof=1)) / math.sqrt(rows.n)
        z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
        return value - z * spread, value + z * spread


def _mean_rows(values: FloatArray) -> FloatArray:
    """Mean over the rows (last axis), kept as an axis so it broadcasts against ``(..., n)``."""
    mean: FloatArray = values.mean(axis=-1, keepdims=True)
    return mean


@dataclass(frozen=True, kw_only=True)
class IPS(OffPolicyEstimator):
    """Inverse propensity scoring: V̂ = E_n[w_i r_i], w_i = π(a_i|x_i) / π_0(a_i|x_i).

    Unbiased when the logged propensities are exact and π_0 covers π; high variance when the
    weights are large. Per-round term: w_i r_i.
    """

    name: ClassVar[str] = "ips"

    def _round_rewards(self, rows: _Rows) -> FloatArray:
        terms: FloatArray = rows.reward * rows.weight
        return terms


@dataclass(frozen=True, kw_only=True)
class SNIPS(IPS):
    """Self-normalized IPS: V̂ = E_n[w_i r_i] / E_n[w_i] (Swaminathan & Joachims 2015).

    Biased but consistent; bounded by the reward range. Per-round term: w_i r_i / E_n[w].
    Normal-interval influence term: w_i (r_i - V̂) / E_n[w] (delta method).
    """

    name: ClassVar[str] = "snips"
    self_normalized: ClassVar[bool] = True

    def _round_rewards(self, rows: _Rows) -> FloatArray:
        terms: FloatArray = rows.reward * rows.weight / _mean_rows(rows.weight)
        return terms

    def _influence(self, rows: _Rows) -> FloatArray:
        value = np.mean(self._round_rewards(rows))
        influence: FloatArray = rows.weight * (rows.reward - value) / rows.weight.mean()
        return influence


@dataclass(frozen=True, kw_only=True)
class DM(OffPolicyEstimator):
    """Direct method: V̂ = E_n[q̂(x_i, π)], q̂(x_i, π) = Σ_a π(a|x_i) q̂(x_i, a).

    Uses only the reward model: ``reward`` and ``pscore`` do not enter the value (they are
    still validated). Low variance, biased as far as q̂ is wrong. Per-round term: q̂(x_i, π).
    """

    name: ClassVar[str] = "dm"
    needs_reward_model: ClassVar[bool] = True

    def _round_rewards(self, rows: _Rows) -> FloatArray:
        return rows.q_policy


@dataclass(frozen=True, kw_only=True)
class DR(OffPolicyEstimator):
    """Doubly robust: V̂ = E_n[q̂(x_i, π) + w_i (r_i - q̂(x_i, a_i))] (Dudík et al. 2011).

    Unbiased if the propensities are exact, whatever q̂; lower variance than IPS the better q̂
    is. With q̂ ≡ 0 it is IPS. Per-round term: q̂(x_i, π) + w_i (r_i - q̂(x_i, a_i)).
    """

    name: ClassVar[str] = "dr"
    needs_reward_model: ClassVar[bool] = True

    def _round_rewards(self, rows: _Rows) -> FloatArray:
        terms: FloatArray = rows.q_policy + rows.weight * (rows.reward - rows.q_logged)
        return terms


@dataclass(frozen=True, kw_only=True)
class SNDR(DR):
    """Self-normalized DR, as OBP defines it: the DR correction is divided by the mean weight.

    V̂ = E_n[q̂(x_i, π) + w_i (r_i - q̂(x_i, a_i)) / E_n[w]]. Per-round term: the bracket.
    Normal-interval influence term, with C = E_n[w (r - q̂(x, a))] / E_n[w]:
    (q̂(x_i, π) - E_n[q̂(x, π)]) + (w_i (r_i - q̂(x_i, a_i)) - C w_i) / E_n[w].
    """

    name: ClassVar[str] = "sndr"
    self_normalized: ClassVar[bool] = True

    def _round_rewards(self, rows: _Rows) -> FloatArray:
        correction = rows.weight * (rows.reward - rows.q_logged) / _mean_rows(rows.weight)
        terms: FloatArray = rows.q_policy + correction
        return terms

    def _influence(self, rows: _Rows) -> FloatArray:
        mean_weight = rows.weight.mean()
        residual = rows.weight * (rows.reward - rows.q_logged)
        ratio = residual.mean() / mean_weight
        influence: FloatArray = (rows.q_policy - rows.q_policy.mean()) + (
            residual - ratio * rows.weight
        ) / mean_weight
        return influence


@dataclass(frozen=True, kw_only=True)
class SwitchDR(DR):
    """Switch-DR (Wang et al. 2017, as in OBP): DR where w_i ≤ τ, DM alone where w_i > τ.

    V̂ = E_n[q̂(x_i, π) + 1{w_i ≤ τ} w_i (r_i - q̂(x_i, a_i))]. ``tau`` (τ ≥ 0, default ∞)
    is the importance-weight threshold: τ = ∞ gives DR, τ = 0 gives DM for every row with w > 0.
    """

    name: ClassVar[str] = "switch-dr"
    tau: float = math.inf

    def __post_init__(self) -> None:
        if isinstance(self.tau, bool) or not isinstance(self.tau, float | int):
            raise EvaluationInputError(f"`tau` must be a number, got {self.tau!r}")
        if math.isnan(self.tau) or self.tau < 0:
            raise EvaluationInputError(f"`tau` must be >= 0, got {self.tau!r}")

    def _round_rewards(self, rows: _Rows) -> FloatArray:
        switch = rows.weight <= self.tau
        terms: FloatArray = rows.q_policy + switch * rows.weight * (rows.reward - rows.q_logged)
        return terms


ESTIMATORS: Mapping[str, type[OffPolicyEstimator]] = {
    cls.name: cls for cls in (IPS, SNIPS, DM, DR, SNDR, SwitchDR)
}
"""Every estimator class by its ``name`` (``"ips"``, ``"snips"``, ``"dm"``, ``"dr"``, ...)."""


# --------------------------------------------------------------------------- helpers


def importance_weights(*, action: ArrayLike, pscore: ArrayLike, action_dist: ArrayLike) -> FloatArray:
    """w_i = π(a_i|x_i) / π_0(a_i|x_i), shape ``(n,)``, with the estimators' input checks."""
    action_arr = np.asarray(action)
    if action_arr.ndim == 1 and action_arr.shape[0] == 0:
        raise EvaluationInputError("`action` is empty: at least one logged round is needed")
    # A placeholder reward of the right length, so that only the real arguments can fail.
    n = action_arr.shape[0] if action_arr.ndim == 1 else 1
    rows = _validated_rows(np.zeros(n), action_arr, pscore, action_dist, None)
    return rows.weight


def effective_sample_size(weights: ArrayLike) -> float:
    """Kish's effective sample size (Σ w_i)² / Σ w_i² of importance weights ``(n,)``.

    Equals n when every weight is equal and falls towards 1 as one weight dominates: a quick
    read of how many logged rounds an IPS-type estimate effectively rests on. 0.0 when every
    weight is 0 (the evaluated policy never takes a logged action).
    """
    w = float_array(weights, "weights", ndim=1)
    if np.any(w < 0):
        raise EvaluationInputError(f"`weights` must be >= 0, got {float(w.min())}")
    squares = float(np.sum(w * w))
    if squares == 0.0:
        return 0.0
    return float(np.sum(w)) ** 2 / squares


# --------------------------------------------------------------------------- validation


def _validated_rows(
    reward: ArrayLike,
    action: ArrayLike,
    pscore: ArrayLike,
    action_dist: ArrayLike,
    estimated_rewards: ArrayLike | None,
) -> _Rows:
    """Check every input once and reduce them to the per-row quantities of :class:`_Rows`."""
    reward_arr = float_array(reward, "reward", ndim=1)
    n = reward_arr.shape[0]
    if n == 0:
        raise EvaluationInputError("`reward` is empty: at least one logged round is needed")

    pscore_arr = float_array(pscore, "pscore", ndim=1)
    same_rows("pscore", pscore_arr.shape[0], n)
    dist = float_array(action_dist, "action_dist", ndim=2)
    same_rows("action_dist", dist.shape[0], n)
    n_actions = dist.shape[1]
    if n_actions == 0:
        raise EvaluationInputError("`action_dist` has no columns (K = 0 actions)")
    action_idx = action_array(action, n_rows=n, n_actions=n_actions)
    bad_pscore = (pscore_arr <= 0.0) | (pscore_arr > 1.0)
    if np.any(bad_pscore):
        i = int(np.argmax(bad_pscore))
        raise EvaluationInputError(f"`pscore` must be in (0, 1], got {float(pscore_arr[i])!r} at row {i}")
    if np.any(dist < 0.0):
        i, k = (int(v) for v in np.argwhere(dist < 0.0)[0])
        raise EvaluationInputError(
            f"`action_dist` must be >= 0, got {float(dist[i, k])!r} at row {i}, action {k}"
        )
    row_sums = dist.sum(axis=1)
    off = np.abs(row_sums - 1.0) > ROW_SUM_TOLERANCE
    if np.any(off):
        i = int(np.argmax(off))
        raise EvaluationInputError(
            f"rows of `action_dist` must sum to 1, row {i} sums to {float(row_sums[i])!r}"
        )

    index = np.arange(n)
    weight: FloatArray = dist[index, action_idx] / pscore_arr
    if estimated_rewards is None:
        zeros = np.zeros(n, dtype=np.float64)
        return _Rows(reward=reward_arr, weight=weight, q_policy=zeros, q_logged=zeros)

    q_hat = float_array(estimated_rewards, "estimated_rewards", ndim=2)
    if q_hat.shape != dist.shape:
        raise EvaluationInputError(
            f"`estimated_rewards` has shape {q_hat.shape} but `action_dist` has {dist.shape}"
        )
    # Same arithmetic as np.average(q_hat, weights=dist, axis=1), i.e. OBP's DM term.
    q_policy: FloatArray = np.multiply(q_hat, dist).sum(axis=1) / row_sums
    q_logged: FloatArray = q_hat[index, action_idx]
    return _Rows(reward=reward_arr, weight=weight, q_policy=q_policy, q_logged=q_logged)
