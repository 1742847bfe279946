"""Featurization: the one mapping from a decision's namespaces to model inputs.

Every feature has a *key*: ``"<role>|<namespace>|<name>"`` for a number (its value is the
number) and ``"<role>|<namespace>|<name>=<value>"`` for a category (its value is 1), where role
is ``s`` for the shared context and ``a`` for an action's features. The linear policies map keys
to columns of dense vectors with a :class:`Vocabulary`; the VW policy hashes the same keys with
:func:`stable_hash`. Nothing here uses Python's salted ``hash()``: the same inputs give the same
vectors in every process.

Design matrix of a decision (linear policies), shape ``(K, D)`` with ``D >= len(vocabulary)``::

    X[k] = e_0 + sum_{f in context} v_f e_{col(f)} + sum_{f in features of k} v_f e_{col(f)}

Column 0 is a constant 1 (an intercept), columns that no feature uses are 0, and features that
collide after hashing add up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from policies.base import Decision, Namespace

INTERCEPT = "\x00intercept"
"""Key of column 0, the constant feature."""

_CACHE_LIMIT = 4096
"""Entries kept in a per-namespace lookup cache before it is cleared (a memory bound only)."""

IndexT = TypeVar("IndexT", np.intp, np.uint64)

Encoded = tuple[NDArray[np.intp], NDArray[np.float64]]
"""A namespace as ``(columns, values)``, both shape ``(n,)``."""


def stable_hash(key: str) -> int:
    """A 64-bit hash of ``key`` that is the same in every process (BLAKE2b, 8 bytes)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def feature_items(role: str, namespace: Namespace) -> Iterator[tuple[str, float]]:
    """``(key, value)`` for every feature of ``namespace``: numbers first, then categories."""
    prefix = f"{role}|{namespace.name}|"
    for name, value in namespace.numbers.items():
        yield prefix + name, float(value)
    for name, category in namespace.categories.items():
        yield f"{prefix}{name}={category}", 1.0


class Vocabulary:
    """Feature key → column, growing lazily up to ``cap`` columns, hashing beyond it.

    The first ``cap`` distinct keys (column 0 is :data:`INTERCEPT`) get a column of their own in
    order of first appearance; any later key shares column ``1 + stable_hash(key) % (cap - 1)``.
    A column that appears for the first time has no history, which is what lets ridge models
    extend their inverse block-diagonally (exactly) when the vocabulary grows.
    """

    def __init__(self, cap: int, keys: Iterable[str] = (INTERCEPT,)) -> None:
        self.cap = cap
        self._columns: dict[str, int] = {}
        for key in keys:
            self.column(key)

    def __len__(self) -> int:
        return len(self._columns)

    @property
    def keys(self) -> list[str]:
        """Keys that own a column, in column order (the serialized form)."""
        return list(self._columns)

    def has(self, key: str) -> bool:
        """True when ``key`` owns a column already."""
        return key in self._columns

    def column(self, key: str) -> int:
        """The column of ``key``, assigning the next free one if there is room."""
        column = self._columns.get(key)
        if column is None:
            if len(self._columns) < self.cap:
                column = self._columns[key] = len(self._columns)
            else:
                column = 1 + stable_hash(key) % (self.cap - 1)
        return column


class NamespaceEncoder(Generic[IndexT]):
    """A namespace's features as ``(indices, values)``, indices given by ``index(key)``.

    Index lookups are cached by the namespace's feature names (and category values), so a
    steady stream of requests costs one dictionary lookup per namespace, not one per feature.
    """

    def __init__(self, index: Callable[[str], int], dtype: type[IndexT]) -> None:
        self._index = index
        self._dtype: type[IndexT] = dtype
        self._cache: dict[tuple[object, ...], NDArray[IndexT]] = {}

    def cached(self, role: str, namespace: Namespace) -> bool:
        """True when ``namespace``'s indices were already looked up (and are cached)."""
        lookup = (role, namespace.name, tuple(namespace.numbers), tuple(namespace.categories.items()))
        return lookup in self._cache

    def encode(self, role: str, namespace: Namespace) -> tuple[NDArray[IndexT], NDArray[np.float64]]:
        """Indices and values, both shape ``(n,)``, of ``namespace``'s ``n`` features."""
        numbers, categories = namespace.numbers, namespace.categories
        lookup = (role, namespace.name, tuple(numbers), tuple(categories.items()))
        indices = self._cache.get(lookup)
        if indices is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            keys = [key for key, _ in feature_items(role, namespace)]
            indices = np.array([self._index(key) for key in keys], dtype=self._dtype)
            self._cache[lookup] = indices
        values = np.ones(len(indices))
        values[: len(numbers)] = np.fromiter(numbers.values(), np.float64, len(numbers))
        return indices, values


class Featurizer:
    """Turns decisions into design matrices over a growing :class:`Vocabulary`."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._encoder = NamespaceEncoder(vocabulary.column, np.intp)

    def knows(self, decision: Decision) -> bool:
        """True when encoding ``decision`` would not grow the vocabulary."""
        vocabulary = self.vocabulary
        if len(vocabulary) >= vocabulary.cap:
            return True
        parts = [("s", decision.context), *(("a", f) for f in decision.action_features)]
        return all(
            self._encoder.cached(role, ns) or all(vocabulary.has(key) for key, _ in feature_items(role, ns))
            for role, namespaces in parts
            for ns in namespaces
        )

    def _encode_all(self, role: str, namespaces: tuple[Namespace, ...]) -> Encoded | None:
        if not namespaces:
            return None
        parts = [self._encoder.encode(role, ns) for ns in namespaces]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([c for c, _ in parts]), np.concatenate([v for _, v in parts])

    def encode(self, decision: Decision) -> DesignRows:
        """Assign columns to every feature of ``decision`` (growing the vocabulary)."""
        return DesignRows(
            self._encode_all("s", decision.context),
            [self._encode_all("a", features) for features in decision.action_features],
        )


@dataclass(frozen=True, slots=True)
class DesignRows:
    """A decision's features as columns and values; :meth:`matrix` builds the ``(K, D)`` matrix."""

    shared: Encoded | None
    actions: list[Encoded | None]

    def matrix(self, width: int) -> NDArray[np.float64]:
        """The design matrix, shape ``(K, width)``, or shape ``(width,)`` when no action has
        features of its own: then every action's row is that one row (and nothing is copied).
        """
        base = np.zeros(width)
        if self.shared is not None:
            columns, values = self.shared
            base += np.bincount(columns, values, minlength=width)
        base[0] += 1.0
        if all(features is None for features in self.actions):
            return base
        matrix = np.tile(base, (len(self.actions), 1))
        for row, features in zip(matrix, self.actions, strict=True):
            if features is not None:
                row += np.bincount(features[0], features[1], minlength=width)
        return matrix
