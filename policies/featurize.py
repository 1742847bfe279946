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
from typing import Any, Generic, TypeVar

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

    def column(self, key: str) -> int:
        """The column of ``key``, assigning the next free one if there is room."""
        column = self.peek(key)
        if column is None:
            column = self._columns[key] = len(self._columns)
        return column

    def peek(self, key: str) -> int | None:
        """The column of ``key`` without assigning any: ``None`` if it would get a new one."""
        column = self._columns.get(key)
        if column is None and len(self._columns) >= self.cap:
            column = 1 + stable_hash(key) % (self.cap - 1)
        return column


Unseen = list[tuple[str, float]]
"""Features without a column yet (``grow=False``), as ``(key, value)``."""


@dataclass(frozen=True, slots=True)
class _Lookup:
    """A cached namespace lookup: the columns found and, if some keys had none, which.

    ``known`` is ``None`` when every key has a column (valid for good: columns never move);
    otherwise the positions that have one, and ``unseen`` the ``(position, key)`` of the rest,
    valid only while the vocabulary's ``generation`` is the one recorded.
    """

    indices: NDArray[Any]
    known: NDArray[np.intp] | None = None
    unseen: tuple[tuple[int, str], ...] = ()
    generation: int = 0


class NamespaceEncoder(Generic[IndexT]):
    """A namespace's features as ``(indices, values, unseen)``.

    Indices come from ``index(key)`` when growing, else from ``peek(key)``, which returns
    ``None`` for a key that has no index yet; such features go to ``unseen``. Lookups are cached
    by the namespace's feature names (and category values), so a steady stream of requests costs
    one dictionary lookup per namespace; a lookup with unseen keys is reused until
    ``generation()`` (the vocabulary's size) changes.
    """

    def __init__(
        self,
        index: Callable[[str], int],
        peek: Callable[[str], int | None],
        dtype: type[IndexT],
        generation: Callable[[], int] = lambda: 0,
    ) -> None:
        self._index, self._peek, self._generation = index, peek, generation
        self._dtype: type[IndexT] = dtype
        self._cache: dict[tuple[object, ...], _Lookup] = {}

    def encode(
        self, role: str, namespace: Namespace, grow: bool = True
    ) -> tuple[NDArray[IndexT], NDArray[np.float64], Unseen]:
        """Indices and values, both shape ``(n,)``, of the ``n`` features that have an index."""
        numbers, categories = namespace.numbers, namespace.categories
        values = np.ones(len(numbers) + len(categories))
        values[: len(numbers)] = np.fromiter(numbers.values(), np.float64, len(numbers))
        key = (role, namespace.name, tuple(numbers), tuple(categories.items()))
        lookup = self._cache.get(key)
        if lookup is None or (lookup.known is not None
                              and (grow or lookup.generation != self._generation())):
            lookup = self._look_up(role, namespace, grow)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = lookup
        if lookup.known is None:
            return lookup.indices, values, []
        return (lookup.indices, values[lookup.known],
                [(feature, float(values[i])) for i, feature in lookup.unseen])

    def _look_up(self, role: str, namespace: Namespace, grow: bool) -> _Lookup:
        keys = [key for key, _ in feature_items(role, namespace)]
        found = [self._index(key) if grow else self._peek(key) for key in keys]
        known = [i for i, index in enumerate(found) if index is not None]
        indices = np.array([found[i] for i in known], dtype=self._dtype)
        if len(known) == len(keys):
            return _Lookup(indices)
        unseen = tuple((i, key) for i, (key, index) in enumerate(zip(keys, found, strict=True))
                       if index is None)
        return _Lookup(indices, np.array(known, dtype=np.intp), unseen, self._generation())


class Featurizer:
    """Turns decisions into design matrices over a growing :class:`Vocabulary`."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._encoder = NamespaceEncoder(vocabulary.column, vocabulary.peek, np.intp,
                                         generation=vocabulary.__len__)

    def _encode_all(
        self, role: str, namespaces: tuple[Namespace, ...], grow: bool
    ) -> tuple[Encoded | None, Unseen]:
        if not namespaces:
            return None, []
        parts = [self._encoder.encode(role, ns, grow) for ns in namespaces]
        unseen = [item for _, _, part in parts for item in part]
        if len(parts) == 1:
            return parts[0][:2], unseen
        return (np.concatenate([c for c, _, _ in parts]), np.concatenate([v for _, v, _ in parts])), unseen

    def encode(self, decision: Decision, grow: bool = True) -> DesignRows:
        """Columns for every feature of ``decision``.

        ``grow=True`` (learning) assigns columns to new features. ``grow=False`` (scoring)
        changes nothing: features without a column are summarised per row by ``unseen``.
        """
        shared, shared_unseen = self._encode_all("s", decision.context, grow)
        actions, action_unseen = [], []
        for features in decision.action_features:
            encoded, unseen = self._encode_all("a", features, grow)
            actions.append(encoded)
            action_unseen.append(unseen)
        norms = None
        if shared_unseen or any(action_unseen):
            # Shared ("s|…") and action ("a|…") keys never coincide, so the norms add up.
            shared_norm = _squared_norm(shared_unseen)
            norms = np.array([shared_norm + _squared_norm(unseen) for unseen in action_unseen])
        return DesignRows(shared, actions, norms)


def _squared_norm(features: Unseen) -> float:
    """``sum_key (sum of the key's values)^2``: the squared norm of the columns they would get."""
    by_key: dict[str, float] = {}
    for key, value in features:
        by_key[key] = by_key.get(key, 0.0) + value
    return sum(value * value for value in by_key.values())


@dataclass(frozen=True, slots=True)
class DesignRows:
    """A decision's features as columns and values; :meth:`matrix` builds the ``(K, D)`` matrix.

    ``unseen`` is ``None`` when every feature has a column; otherwise, shape ``(K,)``, the squared
    norm of each row's features that have none yet (they would get fresh columns when learned).
    """

    shared: Encoded | None
    actions: list[Encoded | None]
    unseen: NDArray[np.float64] | None = None

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
