"""Hybrid ridge models (LinUCB's Algorithm 2, Li et al. 2010): a shared part plus one per action.

The reward of action ``a`` with design row ``x`` (shape ``(D,)``) is modelled as
``x . (beta + theta_a)``: ``beta`` is shared by every action (so a brand-new action starts from
what all the others have learned), ``theta_a`` is the action's own deviation, both with ridge
penalty ``l2``. With the paper's shared features ``z`` equal to ``x``, this is one ridge
regression on ``phi = [x ; e_a (x) x]``. Its state, per the paper::

    A0 = l2 I + sum z z^T - sum_a B_a^T A_a^{-1} B_a      (the Schur complement; we keep A0^{-1})
    c  = sum r z - sum_a B_a^T A_a^{-1} b_a                beta = A0^{-1} c
    A_a = l2 I + sum x x^T,  B_a = sum x z^T,  b_a = sum r x
    theta_a = A_a^{-1} (b_a - B_a beta)

and the variance of the estimate (over the noise variance) is ``phi^T P^{-1} phi``::

    s_a = g^T A0^{-1} g + x^T A_a^{-1} x,   g = z - B_a^T A_a^{-1} x.

An update adds ``phi phi^T`` to the joint precision ``P``; its inverse's shared block is
``A0^{-1}``, so ``A0^{-1}`` takes the exact rank-1 step ``A0^{-1} -= h h^T / (1 + s_a)`` with
``h = A0^{-1} g`` — no matrix is inverted per update (the paper recomputes ``A0^{-1}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from arbiter.policies.base import SkippedUpdate
from arbiter.policies.ridge import Design, RidgeModels, finite, magnitude, matvec, rowdot


class HybridRidge(RidgeModels):
    """Shared + per-action ridge models; the per-action ``A_a^{-1}``, ``b_a`` come from the base."""

    prior_variance = 2.0
    """A feature without history is new to both parts: ``v^2 / l2`` each."""

    def __init__(self, l2: float) -> None:
        self._a0inv = np.zeros((0, 0))
        self._c = np.zeros(0)
        self._cross = np.zeros((0, 0, 0))  # B_a, shape (N, D, D)
        self._offset = np.zeros((0, 0))  # B_a^T A_a^{-1} b_a, shape (N, D)
        super().__init__(l2)

    def _resize(self, rows: int, width: int) -> None:
        old_rows, old_width = self._b.shape
        super()._resize(rows, width)
        a0inv = np.eye(width) / self.l2
        a0inv[:old_width, :old_width] = self._a0inv
        c = np.zeros(width)
        c[:old_width] = self._c
        cross = np.zeros((rows, width, width))
        cross[:old_rows, :old_width, :old_width] = self._cross
        offset = np.zeros((rows, width))
        offset[:old_rows, :old_width] = self._offset
        self._a0inv, self._c, self._cross, self._offset = a0inv, c, cross, offset

    def _shrink(self, rows: int, width: int) -> None:
        super()._shrink(rows, width)
        self._a0inv = self._a0inv[:width, :width].copy()
        self._c = self._c[:width].copy()
        self._cross = self._cross[:rows, :width, :width].copy()
        self._offset = self._offset[:rows, :width].copy()

    def _theta_of(self, slots: NDArray[np.intp]) -> NDArray[np.float64]:
        """``beta + theta_a`` of ``slots``, shape ``(K, D)``: what multiplies ``x``."""
        beta = self._a0inv @ self._c
        own = self._b[slots] - self._gather(self._cross, slots) @ beta
        return beta + matvec(self._gather(self._ainv, slots), own)

    def coefficients(self, slots: NDArray[np.intp] | int) -> NDArray[np.float64]:
        if isinstance(slots, int):
            row: NDArray[np.float64] = self._theta_of(np.array([slots]))[0]
            return row
        return self._theta_of(slots)

    def mean(self, design: Design) -> NDArray[np.float64]:
        """``x_k . (beta + theta_k)``, shape ``(K,)``."""
        return rowdot(self._theta_of(design.slots), design.x)

    def variance(self, design: Design) -> NDArray[np.float64]:
        """``s_k = g_k^T A0^{-1} g_k + x_k^T A_k^{-1} x_k``, shape ``(K,)`` (module doc)."""
        x, slots = design.x, design.slots
        u = matvec(self._gather(self._ainv, slots), x)
        g = x - np.einsum("kij,ki->kj", self._gather(self._cross, slots), u)
        shared: NDArray[np.float64] = np.einsum("kd,kd->k", g @ self._a0inv, g)
        return self._with_unseen(shared + rowdot(u, x), design)

    def block_variance(self, design: Design) -> NDArray[np.float64]:
        """:meth:`variance`, row by row (the shared part couples every model)."""
        return self.variance(design)

    def update(self, x: NDArray[np.float64], slot: int, reward: float) -> None:
        """Learn ``(x, reward)`` for the action at ``slot`` (the shared part learns too); raises
        :class:`SkippedUpdate`, changing nothing, if a new value would not be finite."""
        ainv, cross = self._ainv[slot], self._cross[slot]
        with np.errstate(over="ignore", invalid="ignore"):
            u = ainv @ x
            g = x - cross.T @ u
            h = self._a0inv @ g
            scales = np.array([1.0 + g @ h + x @ u, 1.0 + x @ u])  # infinite: not exact
            a0inv = self._a0inv - np.outer(h, h / scales[0])
            new_ainv = ainv - np.outer(u, u / scales[1])
            new_cross = cross + np.outer(x, x)
            b = self._b[slot] + reward * x
            offset = new_cross.T @ (new_ainv @ b)
            c = self._c + reward * x + self._offset[slot] - offset
        if not finite(scales, a0inv, new_ainv, new_cross, b, offset, c):
            raise SkippedUpdate(f"the update with reward {reward:g} and features of norm "
                                f"{magnitude(x):g} would make the model non-finite")
        self._a0inv = a0inv
        ainv[...] = new_ainv
        cross[...] = new_cross
        self._b[slot] = b
        self._c = c
        self._offset[slot] = offset

    def estimate(self, action_id: str) -> NDArray[np.float64]:
        """``beta + theta_a`` over the used columns, shape ``(d,)`` (``beta`` if unseen)."""
        slot = self._slots.get(action_id)
        if slot is None:
            return (self._a0inv @ self._c)[: self._dim]
        return self._theta_of(np.array([slot]))[0, : self._dim]

    def state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """The base state plus ``A0^{-1}``, ``c``, ``B_a`` and ``B_a^T A_a^{-1} b_a``."""
        state, arrays = super().state()
        n, d = len(self._slots), self._dim
        arrays["a0inv"] = self._a0inv[:d, :d]
        arrays["c"] = self._c[:d]
        arrays["cross"] = self._cross[:n, :d, :d]
        arrays["offset"] = self._offset[:n, :d]
        return state, arrays

    def restore(self, state: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
        """Inverse of :meth:`state`."""
        super().restore(state, arrays)
        n, d = len(self._slots), self._dim
        self._a0inv[:d, :d] = arrays["a0inv"]
        self._c[:d] = arrays["c"]
        self._cross[:n, :d, :d] = arrays["cross"]
        self._offset[:n, :d] = arrays["offset"]
