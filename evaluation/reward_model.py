"""Cross-fitted reward model q̂(x, a) for the DM, DR, SNDR and SwitchDR estimators.

The log's rows are split into ``n_folds`` folds by a seeded permutation. The predictions for the
rows of fold k come only from a model fitted on the other folds, so no row's reward enters its
own prediction (cross-fitting; Chernozhukov et al. 2018, and OBP's ``RegressionModel`` with
``n_folds``). Each model is fitted only on the logged (row, action) pairs — those are the only
rewards observed — and then predicts every action of the held-out rows.

Two feature layouts, each its own method:

- :meth:`RewardModel.fit_predict` — ``features (n, K, d)``: a feature vector for each (row,
  action) pair (e.g. context crossed with action features, as the policies' featurizer builds
  them); one model q̂(x, a) = f(β·φ(x, a)) shared by all actions.
- :meth:`RewardModel.fit_predict_per_action` — ``context (n, d)``: a separate model per action,
  q̂(x, a) = f(β_a·x) (the disjoint layout of LinUCB), without materialising ``(n, K, d)``.

``kind="ridge"``: f is the identity and β the closed-form ridge solution
(XᵀX + λP)β = Xᵀy, P = I with the intercept unpenalized. ``kind="logistic"``: f is the sigmoid
and β minimises the L2-penalised log loss Σ log(1 + e^{z}) - y z + λ/2 βᵀPβ (z = Xβ) by Newton's
method (IRLS) with step halving; rewards must lie in [0, 1] (fractional targets are allowed).
Both are plain numpy. Features are used as given (no standardisation): scale them comparably
if the penalty should treat them alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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

__all__ = ["RewardModel", "fold_assignment"]

ModelKind = Literal["ridge", "logistic"]


def fold_assignment(n: int, n_folds: int, seed: int | None) -> NDArray[np.intp]:
    """Fold id (0..n_folds-1) of each of n rows, shape ``(n,)``: balanced, seeded, shuffled.

    Row ``permutation[j]`` goes to fold ``j % n_folds``, so fold sizes differ by at most one.
    """
    if n_folds < 2 or n < n_folds:
        raise EvaluationInputError(f"`n_folds` must be in 2..n (n = {n} rows), got {n_folds}")
    folds = np.empty(n, dtype=np.intp)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_folds
    return folds


@dataclass(frozen=True, kw_only=True)
class RewardModel:
    """Settings of a cross-fitted linear (``"ridge"``) or logistic reward model.

    ``l2`` is the penalty λ ≥ 0 (> 0 keeps logistic regression finite on separable data);
    ``n_folds`` ≥ 2 the number of cross-fitting folds; ``seed`` fixes the fold assignment;
    ``fit_intercept`` adds an unpenalized constant feature; ``max_iter`` and ``tol`` bound the
    Newton iterations of the logistic model (stop when the largest coefficient step < ``tol``).
    """

    kind: ModelKind = "ridge"
    l2: float = 1.0
    n_folds: int = 5
    seed: int | None = 0
    fit_intercept: bool = True
    max_iter: int = 50
    tol: float = 1e-10

    def __post_init__(self) -> None:
        if self.kind not in ("ridge", "logistic"):
            raise EvaluationInputError(f"`kind` must be 'ridge' or 'logistic', got {self.kind!r}")
        if not (isinstance(self.l2, float | int) and math.isfinite(self.l2) and self.l2 >= 0):
            raise EvaluationInputError(f"`l2` must be a finite number >= 0, got {self.l2!r}")
        check_int(self.n_folds, "n_folds", minimum=2)
        check_int(self.max_iter, "max_iter", minimum=1)
        if not (isinstance(self.tol, float | int) and self.tol > 0):
            raise EvaluationInputError(f"`tol` must be > 0, got {self.tol!r}")

    # ----------------------------------------------------------------- public API

    def fit_predict(self, *, features: ArrayLike, action: ArrayLike, reward: ArrayLike) -> FloatArray:
        """Cross-fitted q̂(x_i, a) for every row and action, shape ``(n, K)``.

        ``features`` is ``(n, K, d)``: φ(x_i, a) for each row i and action a. ``action`` is
        ``(n,)`` integer indices of the logged actions, ``reward`` ``(n,)``. One shared model
        is fitted per fold on the pairs (φ(x_i, a_i), r_i) of the other folds.
        """
        phi = float_array(features, "features", ndim=3)
        reward_arr = self._reward(reward)
        n, n_actions, dim = phi.shape
        same_rows("features", n, reward_arr.shape[0])
        logged = action_array(action, n_rows=reward_arr.shape[0], n_actions=n_actions)

        def fit_and_predict(train: NDArray[np.intp], test: NDArray[np.intp]) -> FloatArray:
            beta = self._fit(phi[train, logged[train]], reward_arr[train])
            return self._predict(phi[test].reshape(-1, dim), beta).reshape(test.size, n_actions)

        return self._cross_fit(n, n_actions, fit_and_predict)

    def fit_predict_per_action(
        self, *, context: ArrayLike, action: ArrayLike, reward: ArrayLike, n_actions: int
    ) -> FloatArray:
        """Cross-fitted q̂(x_i, a) from one model per action, shape ``(n, n_actions)``.

        ``context`` is ``(n, d)``. For each fold and action a, a model is fitted on the other
        folds' rows that logged a; an action no such row logged is predicted by the mean
        reward of the other folds (there is nothing else to learn it from).
        """
        x = float_array(context, "context", ndim=2)
        reward_arr = self._reward(reward)
        same_rows("context", x.shape[0], reward_arr.shape[0])
        check_int(n_actions, "n_actions", minimum=1)
        logged = action_array(action, n_rows=reward_arr.shape[0], n_actions=n_actions)

        def fit_and_predict(train: NDArray[np.intp], test: NDArray[np.intp]) -> FloatArray:
            out = np.empty((test.size, n_actions), dtype=np.float64)
            for a in range(n_actions):
                rows = train[logged[train] == a]
                if rows.size == 0:
                    out[:, a] = reward_arr[train].mean()
                    continue
                out[:, a] = self._predict(x[test], self._fit(x[rows], reward_arr[rows]))
            return out

        return self._cross_fit(x.shape[0], n_actions, fit_and_predict)

    # ----------------------------------------------------------------- internals

    def _reward(self, reward: ArrayLike) -> FloatArray:
        y = float_array(reward, "reward", ndim=1)
        if y.shape[0] < self.n_folds:
            raise EvaluationInputError(
                f"`reward` has {y.shape[0]} rows, fewer than `n_folds` = {self.n_folds}"
            )
        if self.kind == "logistic" and np.any((y < 0.0) | (y > 1.0)):
            i = int(np.argmax((y < 0.0) | (y > 1.0)))
            raise EvaluationInputError(
                f"`reward` must be in [0, 1] for kind='logistic', got {float(y[i])!r} at row {i}"
            )
        return y

    def _cross_fit(
        self,
        n: int,
        n_actions: int,
        fit_and_predict: Callable[[NDArray[np.intp], NDArray[np.intp]], FloatArray],
    ) -> FloatArray:
        folds = fold_assignment(n, self.n_folds, self.seed)
        estimated = np.empty((n, n_actions), dtype=np.float64)
        for k in range(self.n_folds):
            test = np.flatnonzero(folds == k)
            train = np.flatnonzero(folds != k)
            estimated[test] = fit_and_predict(train, test)
        return estimated

    def _design(self, x: FloatArray) -> FloatArray:
        if not self.fit_intercept:
            return x
        return np.hstack([np.ones((x.shape[0], 1)), x])

    def _penalty(self, n_columns: int) -> FloatArray:
        penalty = np.full(n_columns, float(self.l2))
        if self.fit_intercept:
            penalty[0] = 0.0
        return penalty

    def _fit(self, x: FloatArray, y: FloatArray) -> FloatArray:
        design = self._design(x)
        penalty = self._penalty(design.shape[1])
        if self.kind == "ridge":
            return _solve(design.T @ design + np.diag(penalty), design.T @ y)
        return self._fit_logistic(design, y, penalty)

    def _fit_logistic(self, design: FloatArray, y: FloatArray, penalty: FloatArray) -> FloatArray:
        beta = np.zeros(design.shape[1])
        if self.fit_intercept:
            mean = min(max(float(y.mean()), 1e-6), 1.0 - 1e-6)  # start at the base rate
            beta[0] = math.log(mean / (1.0 - mean))

        def loss(b: FloatArray) -> float:
            z = design @ b
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * b * b))

        current = loss(beta)
        for _ in range(self.max_iter):
            p = _sigmoid(design @ beta)
            gradient = design.T @ (p - y) + penalty * beta
            hessian = (design * (p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
            step = _solve(hessian, gradient)
            scale = 1.0
            candidate: FloatArray = beta - step
            trial = loss(candidate)
            while trial > current and scale > 1e-8:  # step halving keeps the loss monotone
                scale /= 2.0
                candidate = beta - scale * step
                trial = loss(candidate)
            beta, current = candidate, trial
            if float(np.max(np.abs(scale * step))) < self.tol:
                break
        return beta

    def _predict(self, x: FloatArray, beta: FloatArray) -> FloatArray:
        z = self._design(x) @ beta
        return _sigmoid(z) if self.kind == "logistic" else z


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = np.exp(-np.logaddexp(0.0, -z))
    return out


def _solve(matrix: FloatArray, rhs: FloatArray) -> FloatArray:
    """Solve the normal equations; least squares (minimum norm) when they are singular."""
    try:
        solution = np.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError:
        solution = np.linalg.lstsq(matrix, rhs, rcond=None)[0]
    return np.asarray(solution, dtype=np.float64)
