"""The shared ridge core: one ridge regression per action id, kept as an exact inverse.

For action ``a`` with design rows ``x`` (shape ``(D,)``) and rewards ``r`` seen so far::

    A_a = l2 * I + sum x x^T        b_a = sum r x        theta_a = A_a^{-1} b_a

``A_a^{-1}`` is maintained with Sherman-Morrison rank-1 updates, ``O(D^2)`` per update::

    u = A^{-1} x,    A^{-1} <- A^{-1} - u u^T / (1 + x^T u)

Scoring never changes the models. An action id never learned from is scored with a spare row
that is always at the prior; a feature without a column adds nothing to the mean and
``v^2 / l2`` to the variance (its column would start at the prior, uncoupled), which
:class:`Design` carries as ``unseen``.

Storage is a stack over action slots, ``ainv`` of shape ``(N, D, D)`` and ``b``, ``theta`` of
shape ``(N, D)``, allocated with spare capacity in both ``N`` and ``D``. A column no row has used
yet has ``A^{-1}`` entries ``1/l2`` on the diagonal and 0 elsewhere, so growing ``D`` (a new
feature) or ``N`` (a new action id, which starts from the prior) is an exact block-diagonal
extension, and a design row padded with zeros gives the same estimates at any capacity.

Forgetting (``decay`` = g in (0, 1], default 1: none). Each learned event discounts the
evidence of the model it updates — the chosen action's — before adding its own::

    A_a <- g A_a + (1 - g) l2 I + x x^T        b_a <- g b_a + r x

that is, after the model's updates ``1..n``::

    A_a = l2 I + sum_i g^(n-i) x_i x_i^T        b_a = sum_i g^(n-i) r_i x_i

so an event seen ``m`` updates ago weighs ``g^m``; the evidence ``A_a - l2 I`` shrinks while the
prior ``l2 I`` stays (the discount's fixed point): a model that forgets returns to the prior,
never below it, so ``A_a^{-1}`` stays bounded by ``1 / l2``. The
discounted ``A`` is not a rank-1 change of the old one, so with ``g < 1`` the models also keep
``A`` (array ``a``, in snapshots too) and recompute ``A^{-1}`` over the used columns, ``O(d^3)``
per update instead of Sherman-Morrison's ``O(d^2)``. ``g = 1`` is exactly the path above.

An update is all or nothing: it is computed aside and stored only if every new value is finite
(a finite but huge reward or feature can overflow ``r x``, ``x^T u`` or ``A^{-1} b``); otherwise
it raises :class:`~policies.base.SkippedUpdate` and the models are exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from arbiter.policies.base import SkippedUpdate

_ALIGN = 8
_GROWTH = 1.25


@dataclass(frozen=True, slots=True)
class Design:
    """A decision as the ridge models see it.

    ``x``: the ``(K, D)`` design matrix, or one ``(D,)`` row (shared by all K actions, or, for
    learning, the chosen action's alone);
    ``slots``: the model row of each action, shape ``(K,)``; ``unseen``: ``None``, or the squared
    norm per action, shape ``(K,)``, of features that have no column yet.
    """

    x: NDArray[np.float64]
    slots: NDArray[np.intp]
    unseen: NDArray[np.float64] | None = None


def matvec(stack: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``stack[k] @ x_k`` for ``stack`` of ``(K, D, D)`` and ``x`` of ``(K, D)`` or ``(D,)`` → ``(K, D)``."""
    if x.ndim == 1:
        shared: NDArray[np.float64] = stack @ x
        return shared
    product: NDArray[np.float64] = np.matmul(stack, x[:, :, None])[:, :, 0]
    return product


def rowdot(a: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a_k . x_k`` for ``a`` of ``(K, D)`` and ``x`` of ``(K, D)`` or ``(D,)`` → ``(K,)``."""
    dots: NDArray[np.float64] = a @ x if x.ndim == 1 else np.einsum("kd,kd->k", a, x)
    return dots


def finite(*arrays: NDArray[np.float64]) -> bool:
    """True when every entry of every array is finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(arrays)


def _finite(arrays: tuple[NDArray[np.float64], ...]) -> bool:
    """:func:`finite`, under ``np.errstate(over="ignore", invalid="ignore")``: the arrays' total
    is finite only if every entry is (a NaN or an infinity anywhere makes it NaN or infinite);
    when it is not — or the total alone overflowed — entry by entry."""
    total = sum([float(np.add.reduce(a, axis=None)) for a in arrays])
    return math.isfinite(total) or all(bool(np.isfinite(a).all()) for a in arrays)


def _capacity(needed: int, current: int) -> int:
    """Next capacity ``>= needed``: geometric growth, rounded up to a multiple of 8."""
    target = max(needed, int(current * _GROWTH)) if current else needed
    return -(-target // _ALIGN) * _ALIGN


class RidgeModels:
    """Per-action ridge regressions over a shared, growing column space (see module doc)."""

    prior_variance = 1.0
    """Variance (times ``l2``, over the noise variance) that a unit feature without history adds."""

    def __init__(self, l2: float, decay: float = 1.0) -> None:
        self.l2 = l2
        self.decay = decay
        self._a = np.zeros((0, 0, 0))  # A itself, kept only when decay < 1
        self._slots: dict[str, int] = {}
        self._dim = 0
        self._ainv = np.zeros((0, 0, 0))
        self._b = np.zeros((0, 0))
        self._theta = np.zeros((0, 0))
        self._last_ids: tuple[str, ...] = ()
        self._last_slots = np.zeros(0, dtype=np.intp)
        self._last_contiguous = True
        self._last_known = True  # no id of the cached slots is scored with the spare row
        self._scratch: tuple[NDArray[np.float64], ...] = (np.zeros(0),)
        self._resize(_ALIGN, 0)

    @property
    def width(self) -> int:
        """``D``, the column capacity design rows must be padded to."""
        return int(self._b.shape[1])

    def ensure_columns(self, dim: int) -> None:
        """Make room for ``dim`` columns (new columns start from the prior)."""
        self._dim = max(self._dim, dim)
        if dim > self.width:
            self._resize(self._b.shape[0], _capacity(dim, self.width))

    def knows(self, action_ids: tuple[str, ...]) -> bool:
        """True when every action id already has a model."""
        return all(action_id in self._slots for action_id in action_ids)

    def slots(self, action_ids: tuple[str, ...], learn: bool = True) -> NDArray[np.intp]:
        """Model rows of ``action_ids``, shape ``(K,)``.

        An id never seen gets a fresh prior model if ``learn``; otherwise it is scored with the
        spare prior row (the first unused one, which always exists) and nothing is recorded.
        """
        if action_ids == self._last_ids and (self._last_known or not learn):
            return self._last_slots
        if learn and not self.knows(action_ids):
            for action_id in action_ids:
                if action_id not in self._slots:
                    self._slots[action_id] = len(self._slots)
            if len(self._slots) >= self._b.shape[0]:
                self._resize(_capacity(len(self._slots) + 1, self._b.shape[0]), self.width)
            self._last_ids = ()  # the spare row it may have used is an action's now
        spare = len(self._slots)
        slots = np.array([self._slots.get(a, spare) for a in action_ids], dtype=np.intp)
        self._last_ids, self._last_slots = action_ids, slots
        self._last_known = spare not in slots
        self._last_contiguous = bool((slots == np.arange(len(slots))).all())
        return slots

    def mark(self) -> tuple[int, int, int, int]:
        """What :meth:`truncate` needs to undo growth: actions, columns used, capacity."""
        rows, width = self._b.shape
        return len(self._slots), self._dim, rows, width

    def truncate(self, mark: tuple[int, int, int, int]) -> None:
        """Forget the actions and columns added since :meth:`mark` (they were at the prior,
        untouched, so what is left is exactly the models as they were then)."""
        actions, dim, rows, width = mark
        for action_id in list(self._slots)[actions:]:
            del self._slots[action_id]
        self._dim = dim
        self._last_ids = ()
        if (rows, width) != self._b.shape:
            self._shrink(rows, width)

    def _shrink(self, rows: int, width: int) -> None:
        """Back to capacity ``(rows, width)``, no smaller than what is in use."""
        self._ainv = self._ainv[:rows, :width, :width].copy()
        self._b = self._b[:rows, :width].copy()
        self._theta = self._theta[:rows, :width].copy()
        if self.decay < 1.0:
            self._a = self._a[:rows, :width, :width].copy()

    def _resize(self, rows: int, width: int) -> None:
        old_rows, old_width = self._b.shape
        ainv = np.zeros((rows, width, width))
        ainv[:, np.arange(width), np.arange(width)] = 1.0 / self.l2
        ainv[:old_rows, :old_width, :old_width] = self._ainv
        b = np.zeros((rows, width))
        b[:old_rows, :old_width] = self._b
        theta = np.zeros((rows, width))
        theta[:old_rows, :old_width] = self._theta
        self._ainv, self._b, self._theta = ainv, b, theta
        if self.decay < 1.0:
            a = np.zeros((rows, width, width))
            a[:, np.arange(width), np.arange(width)] = self.l2
            a[:old_rows, :old_width, :old_width] = self._a
            self._a = a

    def _gather(self, stack: NDArray[np.float64], slots: NDArray[np.intp]) -> NDArray[np.float64]:
        """``stack[slots]``; a view, not a copy, when the slots are ``0..K-1``."""
        if slots is self._last_slots and self._last_contiguous:
            return stack[: len(slots)]
        return stack[slots]

    def coefficients(self, slots: NDArray[np.intp] | int) -> NDArray[np.float64]:
        """What multiplies each row in :meth:`mean`: ``theta`` of each slot, shape ``(K, D)``
        (of one slot: ``(D,)``, a view)."""
        return self._theta[slots]

    def mean(self, design: Design) -> NDArray[np.float64]:
        """Estimated rewards ``x_k . theta_{slot_k}``, shape ``(K,)``."""
        return rowdot(self._gather(self._theta, design.slots), design.x)

    def variance(self, design: Design) -> NDArray[np.float64]:
        """``x_k^T A_{slot_k}^{-1} x_k``, shape ``(K,)``: estimate variance / noise variance."""
        x = design.x
        return self._with_unseen(rowdot(matvec(self._gather(self._ainv, design.slots), x), x), design)

    def block_variance(self, design: Design) -> NDArray[np.float64]:
        """:meth:`variance` of a block of many decisions' rows (``x`` of ``(N, D)``): rows
        grouped by model, one ``(n, D) @ (D, D)`` product per model instead of gathering an
        ``(N, D, D)`` stack; the same values up to rounding."""
        x, slots = design.x, design.slots
        order = np.argsort(slots, kind="stable")
        bounds = np.flatnonzero(np.diff(slots[order])) + 1
        variance = np.empty(len(slots))
        for group in np.split(order, bounds):
            rows = x[group]
            variance[group] = np.einsum("nd,nd->n", rows @ self._ainv[slots[group[0]]], rows)
        return self._with_unseen(variance, design)

    def _with_unseen(self, variance: NDArray[np.float64], design: Design) -> NDArray[np.float64]:
        """``variance`` plus what features without a column add, clipped at 0 (rounding)."""
        if design.unseen is not None:
            variance = variance + self.prior_variance * design.unseen / self.l2
        return np.maximum(variance, 0.0)

    def update(self, x: NDArray[np.float64], slot: int, reward: float) -> None:
        """Learn ``(x, reward)``, ``x`` of shape ``(D,)``, in the model at ``slot``; raises
        :class:`SkippedUpdate`, changing nothing, if a new value would not be finite."""
        if self.decay < 1.0:
            self._decayed_update(x, slot, reward)
            return
        ainv = self._ainv[slot]
        work, new_ainv, b, theta = self._work(x.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            u = ainv @ x
            scale = 1.0 + x @ u  # an infinity here would leave A^{-1} as it was: not exact
            np.multiply(u[:, None], u / scale, out=new_ainv)  # np.outer(u, u / scale)
            np.subtract(ainv, new_ainv, out=new_ainv)
            np.add(self._b[slot], np.multiply(x, reward), out=b)
            np.matmul(new_ainv, b, out=theta)
            ok = math.isfinite(scale) and _finite((work,))
        if not ok:
            raise SkippedUpdate(f"the update with reward {reward:g} and features of norm "
                                f"{magnitude(x):g} would make the model non-finite")
        ainv[...] = new_ainv
        self._b[slot] = b
        self._theta[slot] = theta

    def _work(self, d: int) -> tuple[NDArray[np.float64], ...]:
        """A scratch buffer for :meth:`update` and its views: the new ``A^{-1}`` ``(d, d)``, ``b``
        and ``theta`` ``(d,)`` side by side, so one finiteness check covers all three (kept
        between updates; what is stored is copied out of it)."""
        if self._scratch[0].size != d * d + 2 * d:
            work = np.empty(d * d + 2 * d)
            self._scratch = (work, work[: d * d].reshape(d, d), work[d * d : d * d + d], work[d * d + d :])
        return self._scratch

    def _decayed_update(self, x: NDArray[np.float64], slot: int, reward: float) -> None:
        """:meth:`update` with ``decay < 1`` (module doc): discount, add, re-invert the used
        ``d x d`` block (the unused columns stay at the prior, the fixed point of the discount)."""
        d, g = self._dim, self.decay
        xd = x[:d]
        with np.errstate(over="ignore", invalid="ignore"):
            a = g * self._a[slot, :d, :d]
            a[np.arange(d), np.arange(d)] += (1.0 - g) * self.l2
            a += np.outer(xd, xd)
            b = g * self._b[slot, :d] + reward * xd
            ok = finite(a, b)
            if ok:
                try:
                    ainv = np.asarray(np.linalg.inv(a), dtype=np.float64)
                except np.linalg.LinAlgError:
                    ok = False
            if ok:
                theta = ainv @ b
                ok = finite(ainv, theta)
        if not ok:
            raise SkippedUpdate(f"the update with reward {reward:g} and features of norm "
                                f"{magnitude(x):g} would make the model non-finite")
        self._a[slot, :d, :d] = a
        self._ainv[slot, :d, :d] = ainv
        self._b[slot, :d] = b
        self._theta[slot, :d] = theta

    def estimate(self, action_id: str) -> NDArray[np.float64]:
        """``theta`` of ``action_id`` over the used columns, shape ``(d,)`` (zeros if unseen)."""
        slot = self._slots.get(action_id)
        if slot is None:
            return np.zeros(self._dim)
        return self._theta[slot, : self._dim].copy()

    def inverse(self, action_id: str) -> NDArray[np.float64]:
        """``A^{-1}`` of ``action_id`` over the used columns, shape ``(d, d)``."""
        slot = self._slots.get(action_id)
        if slot is None:
            return np.eye(self._dim) / self.l2
        return self._ainv[slot, : self._dim, : self._dim].copy()

    def state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """JSON state and arrays for a snapshot (only used rows and columns are written)."""
        n, d = len(self._slots), self._dim
        state = {"actions": list(self._slots), "dim": d, "capacity": list(self._b.shape)}
        arrays = {
            "ainv": self._ainv[:n, :d, :d],
            "b": self._b[:n, :d],
            "theta": self._theta[:n, :d],
        }
        if self.decay < 1.0:
            arrays["a"] = self._a[:n, :d, :d]
        return state, arrays

    def restore(self, state: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
        """Inverse of :meth:`state`, on a fresh instance with the same ``l2``."""
        self._slots = {action_id: i for i, action_id in enumerate(state["actions"])}
        self._resize(*state["capacity"])
        n, d = len(self._slots), state["dim"]
        self._dim = d
        self._ainv[:n, :d, :d] = arrays["ainv"]
        self._b[:n, :d] = arrays["b"]
        self._theta[:n, :d] = arrays["theta"]
        if self.decay < 1.0:
            self._a[:n, :d, :d] = arrays["a"]


def magnitude(x: NDArray[np.float64]) -> float:
    """``|x|`` for a message, overflow and all (then ``inf``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.linalg.norm(x))
