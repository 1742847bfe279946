"""Input checks shared by the evaluation modules: one error type, messages naming the argument."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


class EvaluationInputError(ValueError):
    """An input array is malformed; the message names the argument (and the offending row)."""


def float_array(value: ArrayLike, name: str, *, ndim: int) -> FloatArray:
    """``value`` as a float64 array of ``ndim`` dimensions with no NaN or infinity."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EvaluationInputError(f"`{name}` must be numeric: {exc}") from None
    if array.ndim != ndim:
        raise EvaluationInputError(f"`{name}` must be {ndim}-dimensional, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(array[where]) else "an infinite value"
        at = f"row {where[0]}" if ndim == 1 else f"index {where}"
        raise EvaluationInputError(f"`{name}` contains {what} at {at}")
    return array


def action_array(value: ArrayLike, *, n_rows: int, n_actions: int) -> NDArray[np.intp]:
    """``action`` as ``(n_rows,)`` integer indices, each in ``0..n_actions-1``."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise EvaluationInputError(f"`action` must be 1-dimensional, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise EvaluationInputError(f"`action` must hold integer action indices, got dtype {array.dtype}")
    if array.shape[0] != n_rows:
        raise EvaluationInputError(f"`action` has {array.shape[0]} rows but `reward` has {n_rows}")
    outside = (array < 0) | (array >= n_actions)
    if np.any(outside):
        i = int(np.argmax(outside))
        raise EvaluationInputError(
            f"`action` at row {i} is {int(array[i])}, outside 0..{n_actions - 1} (K = {n_actions} actions)"
        )
    return array.astype(np.intp, copy=False)


def same_rows(name: str, length: int, n_rows: int) -> None:
    """Raise unless the argument ``name`` has ``n_rows`` rows, like ``reward``."""
    if length != n_rows:
        raise EvaluationInputError(f"`{name}` has {length} rows but `reward` has {n_rows}")


def check_int(value: object, name: str, *, minimum: int) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else an error naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EvaluationInputError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return value
