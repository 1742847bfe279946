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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

import msgspec
import numpy as np
from numpy.typing import NDArray

from arbiter.policies.base import Decision, Namespace

INTERCEPT = "\x00intercept"
"""Key of column 0, the constant feature."""

_CACHE_LIMIT = 4096
"""Entries kept in a per-namespace lookup cache before it is cleared (a memory bound only)."""

Encoded = tuple[list[int], list[float], list[str]]
"""Namespaces as ``(columns, values, names)``, three lists of the same length (names as
:func:`feature_name` gives them: what explanations show)."""


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


def feature_name(key: str) -> str:
    """A feature key as people read it: ``"s|user|age"`` → ``"user.age"``, ``"a|item|kind=x"``
    → ``"item.kind=x"``, :data:`INTERCEPT` → ``"intercept"``."""
    if key == INTERCEPT:
        return "intercept"
    _, namespace, name = key.split("|", 2)
    return f"{namespace}.{name}"


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

    def truncate(self, size: int) -> None:
        """Forget every key assigned a column at or after ``size`` (undoing growth)."""
        for key in list(self._columns)[size:]:
            del self._columns[key]

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


class Features(msgspec.Struct, frozen=True, gc=False):
    """A namespace encoded: ``indices[i]`` is the index of the feature with value ``values[i]``
    and name ``names[i]`` (only the features that have one); ``unseen`` lists the rest, whose
    squared norm (values of a repeated key added first) is ``norm``. Python lists: a namespace
    holds a handful of features, and one array per decision (:meth:`DesignRows.matrix`) is
    cheaper than several small ones per namespace. A ``msgspec.Struct``, like
    :class:`DesignRows`: built for every namespace scored, in 0.09 µs against a NamedTuple's
    0.23."""

    indices: list[int]
    values: list[float]
    unseen: Unseen
    norm: float
    names: list[str]


@dataclass(frozen=True, slots=True)
class _Lookup:
    """A cached namespace lookup: the indices found, the names of their features
    (:func:`feature_name`) and, if some keys had none, which.

    ``known`` is ``None`` when every key has an index (valid for good: indices never move);
    otherwise the positions that have one, and ``unseen`` the ``(position, key)`` of the rest,
    valid only while the vocabulary's ``generation`` is the one recorded; ``distinct`` says
    no unseen key repeats (a number named ``"c=v"`` and the category ``c: v`` would).
    """

    indices: list[int]
    names: list[str]
    known: list[int] | None = None
    unseen: tuple[tuple[int, str], ...] = ()
    distinct: bool = True
    generation: int = 0


class NamespaceEncoder:
    """A namespace's features as :class:`Features`.

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
        generation: Callable[[], int] = lambda: 0,
    ) -> None:
        self._index, self._peek, self._generation = index, peek, generation
        self._cache: dict[tuple[object, ...], _Lookup] = {}

    def encode(self, role: str, namespace: Namespace, grow: bool = True,
               unseen: bool = True) -> Features:
        """The namespace's features: numbers (their values), then categories (value 1).

        ``unseen=False``: leave :attr:`Features.unseen` empty (``norm`` is still exact) —
        only merging several namespaces' unseen keys needs them.
        """
        numbers, categories = namespace.numbers, namespace.categories
        values = [*numbers.values(), *repeat(1.0, len(categories))]
        key = (role, namespace.name, tuple(numbers), tuple(categories.items()))
        lookup = self._cache.get(key)
        if lookup is None or (lookup.known is not None
                              and (grow or lookup.generation != self._generation())):
            lookup = self._look_up(role, namespace, grow)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = lookup
        if lookup.known is None:
            return Features(lookup.indices, values, [], 0.0, lookup.names)
        items = [(feature, values[i]) for i, feature in lookup.unseen] if unseen else []
        if not lookup.distinct:
            norm = squared_norm(items or [(feature, values[i]) for i, feature in lookup.unseen])
        elif not lookup.known:  # nothing has an index (a model that has not learned yet)
            norm = sum([value * value for value in values])
        else:
            norm = sum([values[i] * values[i] for i, _ in lookup.unseen])
        return Features(lookup.indices, [values[i] for i in lookup.known], items, norm,
                        lookup.names)

    def grow(self, role: str, namespace: Namespace) -> None:
        """Give every feature of the namespace a column, as :meth:`encode` with ``grow=True``
        would, without encoding it: one cached lookup when all have one already."""
        key = (role, namespace.name, tuple(namespace.numbers), tuple(namespace.categories.items()))
        lookup = self._cache.get(key)
        if lookup is None or lookup.known is not None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = self._look_up(role, namespace, grow=True)

    def complete(self, role: str, name: str, numbers: Mapping[str, float],
                 categories: Mapping[str, str]) -> list[int] | None:
        """The indices of a namespace's features if a cached lookup gives every one of them
        an index (:meth:`encode`'s ``indices``, its values being the numbers, then a 1 per
        category); None if it is not cached or some feature has none."""
        lookup = self._cache.get((role, name, tuple(numbers), tuple(categories.items())))
        return lookup.indices if lookup is not None and lookup.known is None else None

    @property
    def cached(self) -> Callable[[tuple[object, ...]], _Lookup | None]:
        """The cache's ``get``, for a loop that inlines :meth:`complete` (the same key)."""
        return self._cache.get

    def _look_up(self, role: str, namespace: Namespace, grow: bool) -> _Lookup:
        keys = [key for key, _ in feature_items(role, namespace)]
        found = [self._index(key) if grow else self._peek(key) for key in keys]
        known = [i for i, index in enumerate(found) if index is not None]
        indices = [index for index in found if index is not None]
        names = [feature_name(keys[i]) for i in known]
        if len(known) == len(keys):
            return _Lookup(indices, names)
        unseen = tuple((i, key) for i, (key, index) in enumerate(zip(keys, found, strict=True))
                       if index is None)
        distinct = len({key for _, key in unseen}) == len(unseen)
        return _Lookup(indices, names, known, unseen, distinct, self._generation())


class Featurizer:
    """Turns decisions into design matrices over a growing :class:`Vocabulary`."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._encoder = NamespaceEncoder(vocabulary.column, vocabulary.peek,
                                         generation=vocabulary.__len__)

    def truncate(self, size: int) -> None:
        """Shrink the vocabulary back to ``size`` keys; cached lookups go (they may name the
        columns forgotten)."""
        if len(self.vocabulary) > size:
            self.vocabulary.truncate(size)
            self._encoder = NamespaceEncoder(self.vocabulary.column, self.vocabulary.peek,
                                             generation=self.vocabulary.__len__)

    def _encode_all(
        self, role: str, namespaces: tuple[Namespace, ...], grow: bool
    ) -> tuple[Encoded | None, float]:
        """The namespaces' indices, values and names together, and the squared norm of the
        unseen ones (keys of different namespaces can only meet if a name contains ``|``)."""
        if not namespaces:
            return None, 0.0
        if len(namespaces) == 1:
            part = self._encoder.encode(role, namespaces[0], grow, unseen=False)
            return (part.indices, part.values, part.names), part.norm
        parts = [self._encoder.encode(role, ns, grow) for ns in namespaces]
        encoded = ([i for part in parts for i in part.indices],
                   [v for part in parts for v in part.values],
                   [n for part in parts for n in part.names])
        return encoded, squared_norm([item for part in parts for item in part.unseen])

    def encode(self, decision: Decision, grow: bool = True, only: int | None = None) -> DesignRows:
        """Columns for every feature of ``decision``.

        ``grow=True`` (learning) assigns columns to new features. ``grow=False`` (scoring)
        changes nothing: features without a column are summarised per row by ``unseen``.
        ``only`` (learning): encode the context and action ``only`` alone, the
        others' rows left empty (``None``) — learning needs the chosen action's row; the other
        actions' features still get their columns, in the same order as a full encode.
        """
        shared, shared_norm = self._encode_all("s", decision.context, grow)
        actions, norms = [], []
        for k, features in enumerate(decision.action_features):
            if only is None or k == only:
                encoded, norm = self._encode_all("a", features, grow)
            else:
                encoded, norm = None, 0.0
                if grow:
                    for namespace in features:
                        self._encoder.grow("a", namespace)
            actions.append(encoded)
            norms.append(norm)
        unseen = None
        if shared_norm or any(norms):
            # Shared ("s|…") and action ("a|…") keys never coincide, so the norms add up.
            unseen = np.array(norms) + shared_norm
        return DesignRows(shared, actions, unseen)

    def block(self, decisions: Sequence[Decision]) -> Block:
        """The features of several decisions for scoring (``grow=False``), flattened into one
        :class:`Block`: the same columns, values and unseen norms as :meth:`encode` of each,
        in the same order, without a :class:`DesignRows` per decision.

        A namespace whose cached lookup gives every feature a column (a model that has
        learned its features) is appended from the cache as it is; any other takes
        :meth:`encode`'s own path. Decisions that hold the very same ``action_features``
        object (a batch's requests that shared their actions) encode them once."""
        shared_columns: list[int] = []
        shared_values: list[float] = []
        shared_counts: list[int] = []
        columns: list[int] = []
        values: list[float] = []
        counts: list[int] = []
        norms: list[float] = []  # per row: the unseen features' squared norm
        extend, cached = self._extend, self._encoder.cached
        done: dict[int, _Spans] = {}  # by id(action_features): where they were appended
        for decision in decisions:
            count, shared_norm = extend("s", decision.context, shared_columns, shared_values)
            shared_counts.append(count)
            given = decision.action_features
            seen = done.get(id(given))
            if seen is not None and seen[0] is given:
                _, start, end, first, last, own = seen
                columns += columns[start:end]
                values += values[start:end]
                counts += counts[first:last]
            else:
                start, first = len(columns), len(counts)
                own = []
                for features in given:
                    if len(features) == 1:  # _extend's first path inlined: 10 per decision
                        namespace = features[0]
                        numbers, categories = namespace.numbers, namespace.categories
                        lookup = cached(("a", namespace.name, tuple(numbers),
                                         tuple(categories.items())))
                        if lookup is not None and lookup.known is None:
                            columns += lookup.indices
                            values += numbers.values()
                            if categories:
                                values += repeat(1.0, len(categories))
                            counts.append(len(lookup.indices))
                            own.append(0.0)
                            continue
                    count, norm = extend("a", features, columns, values)
                    counts.append(count)
                    own.append(norm)
                # ``done`` holds ``given``, so its id cannot pass to another object meanwhile
                done[id(given)] = (given, start, len(columns), first, len(counts), own)
            # Shared ("s|…") and action ("a|…") keys never coincide, so the norms add up.
            norms += [norm + shared_norm for norm in own] if shared_norm else own
        return Block(shared_columns, shared_values, shared_counts, columns, values, counts,
                     np.array(norms) if any(norms) else None)

    def _extend(self, role: str, namespaces: tuple[Namespace, ...], columns: list[int],
                values: list[float]) -> tuple[int, float]:
        """Append the namespaces' columns and values (``grow=False``); how many, and the
        squared norm of the features that have no column."""
        if len(namespaces) == 1:
            namespace = namespaces[0]
            numbers, categories = namespace.numbers, namespace.categories
            found = self._encoder.complete(role, namespace.name, numbers, categories)
            if found is not None:
                columns += found
                values += numbers.values()
                if categories:
                    values += repeat(1.0, len(categories))
                return len(found), 0.0
        encoded, norm = self._encode_all(role, namespaces, False)
        if encoded is None:
            return 0, 0.0
        columns += encoded[0]
        values += encoded[1]
        return len(encoded[0]), norm


_Spans = tuple[object, int, int, int, int, list[float]]
"""Where :meth:`Featurizer.block` appended a decision's actions: the ``action_features``,
the span of ``columns`` and ``values``, the span of ``counts``, and each action's unseen
squared norm."""


def squared_norm(features: Unseen) -> float:
    """``sum_key (sum of the key's values)^2``: the squared norm of the columns they would get."""
    by_key: dict[str, float] = {}
    for key, value in features:
        by_key[key] = by_key.get(key, 0.0) + value
    return sum(value * value for value in by_key.values())


class DesignRows(msgspec.Struct, frozen=True, gc=False):
    """A decision's features as columns, values and names (:data:`Encoded`: the context's in
    ``shared``, each action's own in ``actions``); :meth:`matrix` builds the ``(K, D)`` matrix.

    ``unseen`` is ``None`` when every feature has a column; otherwise, shape ``(K,)``, the squared
    norm of each row's features that have none yet (they would get fresh columns when learned).
    A ``msgspec.Struct`` (frozen, untracked: nothing it holds refers back to it), built for
    every decision scored in a fraction of a frozen dataclass's time.
    """

    shared: Encoded | None
    actions: list[Encoded | None]
    unseen: NDArray[np.float64] | None = None

    def matrix(self, width: int) -> NDArray[np.float64]:
        """The design matrix, shape ``(K, width)``, or shape ``(width,)`` when no action has
        features of its own: then every action's row is that one row (and nothing is copied).

        Every action's features go in with one ``bincount`` over the flattened ``(K, width)``
        matrix (index ``k * width + column``), and the shared row is added by broadcasting.
        """
        base = self._shared_row(width)
        if all(features is None for features in self.actions):
            return base
        flat: list[int] = []
        weights: list[float] = []
        for k, features in enumerate(self.actions):
            if features is not None:
                offset = k * width
                flat += [column + offset for column in features[0]]
                weights += features[1]
        if not flat:  # (bincount of nothing counts in integers)
            return np.tile(base, (len(self.actions), 1))
        size = len(self.actions) * width
        counts = np.bincount(np.array(flat, dtype=np.intp), np.array(weights), minlength=size)
        matrix: NDArray[np.float64] = counts.reshape(len(self.actions), width) + base
        return matrix

    def row(self, k: int, width: int) -> NDArray[np.float64]:
        """Row ``k`` of :meth:`matrix` alone, shape ``(width,)``, equal bit for bit: the same
        bincount of action ``k``'s features plus the same shared row (a bincount sums each
        column's values in the order they come, with or without the other actions' columns
        beside them). Learning needs only the chosen action's row: this spares building K."""
        base = self._shared_row(width)
        if all(features is None for features in self.actions):
            return base
        if not any(features is not None and features[0] for features in self.actions):
            return base  # matrix() tiles the shared row and adds nothing
        columns, values, _ = self.actions[k] or ([], [], [])
        row: NDArray[np.float64] = np.bincount(np.array(columns, dtype=np.intp),
                                               np.array(values, dtype=np.float64),
                                               minlength=width) + base
        return row

    def _shared_row(self, width: int) -> NDArray[np.float64]:
        """The context's columns and the intercept (column 0), shape ``(width,)``."""
        base = np.zeros(width)
        if self.shared is not None:
            columns, values, _ = self.shared
            base += np.bincount(np.array(columns, dtype=np.intp), values, minlength=width)
        base[0] += 1.0
        return base

class Block(msgspec.Struct, frozen=True, gc=False):
    """Several decisions' features (:meth:`Featurizer.block`), flattened: ``shared_counts[i]``
    of ``shared_columns``/``shared_values`` are decision ``i``'s context, in order;
    ``counts[r]`` of ``columns``/``values`` are row ``r``'s own features (row = one action of
    one decision, decision after decision); ``unseen``, shape ``(rows,)``, each row's squared
    norm of features without a column, None when every feature has one."""

    shared_columns: list[int]
    shared_values: list[float]
    shared_counts: list[int]
    columns: list[int]
    values: list[float]
    counts: list[int]
    unseen: NDArray[np.float64] | None

    def matrix(self, sizes: Sequence[int], width: int) -> NDArray[np.float64]:
        """The design matrices stacked, shape ``(sum K, width)`` (``sizes``: each decision's
        K), with two ``bincount``s for the whole block: one for the shared rows (one per
        decision, the intercept added), repeated for each decision's actions, and one for
        every action's features at index ``row * width + column`` — the same sums, in the same
        order, as :meth:`DesignRows.matrix` of each."""
        decisions, rows = len(self.shared_counts), len(self.counts)
        base = _counts(_flat(self.shared_columns, self.shared_counts, width),
                       self.shared_values, decisions * width).reshape(decisions, width)
        base[:, 0] += 1.0
        matrix: NDArray[np.float64] = (
            _counts(_flat(self.columns, self.counts, width), self.values, rows * width)
            .reshape(rows, width) + np.repeat(base, sizes, axis=0))
        return matrix


def _flat(columns: list[int], counts: list[int], width: int) -> NDArray[np.intp]:
    """Each column's index in a flattened ``(len(counts), width)`` matrix: ``counts[r]``
    consecutive columns are in row ``r``."""
    offsets = np.repeat(np.arange(0, len(counts) * width, width, dtype=np.intp), counts)
    flat: NDArray[np.intp] = np.array(columns, dtype=np.intp) + offsets
    return flat


def _counts(indices: NDArray[np.intp], weights: list[float], size: int) -> NDArray[np.float64]:
    """``weights`` summed per index into ``size`` floats."""
    if not len(indices):
        return np.zeros(size)
    return np.asarray(np.bincount(indices, np.array(weights), minlength=size), dtype=np.float64)
