"""Per-feature contributions to VW's scores: weight x value, read from the weight table.

VW's ``--cb_explore_adf`` scores action ``k`` of a decision by a linear model over the action's
example merged with the shared one (:mod:`policies.vw`): its cost estimate is

    cost_k = w[constant] + sum_{f linear} w[h_f] v_f + sum_{(X, Y) in -q} sum_{f in X, g in Y} w[h_fg] v_f v_g

where the index of a feature pushed with hash ``h`` is ``h * stride`` (VW multiplies every index
by ``wpp << stride_shift`` before predicting), a quadratic pair's is
``(h_f * stride * FNV) xor (h_g * stride)`` (``FNV = 16777619``, VW's ``FNV_prime``), the
constant feature's is ``11650396 * stride``, all modulo 2^64, and the weight is row
``(index & (2^b * stride - 1)) >> stride_shift`` of :meth:`Workspace.weights`, element 0.
VW drops the shared example's constant when it merges (one constant per action) and skips the
linear features of the namespaces of ``--ignore_linear``.

This layout is only known for the options below (:func:`layout`); any other VW argument (cubic
interactions, ``--interactions`` wildcards, ``--keep``/``--ignore``, reductions stacking several
models) and the policy says it cannot explain itself — an empty list, never a guess.
Contributions are reported in reward units, ``-weight x value`` (VW learns ``cost = -reward``),
so an explanation's score is ``-cost_k``: larger is better, as for the linear policies.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FNV_PRIME = 16777619
"""VW's ``FNV_prime``, the multiplier of the first term of a quadratic index."""
CONSTANT = 11650396
"""VW's ``constant`` feature hash (namespace 128, value 1)."""

_FLAGS = frozenset({"--cb_explore_adf", "--softmax", "--squarecb", "--noconstant", "--adaptive",
                    "--normalized", "--invariant", "--sgd"})
"""Arguments without a value that leave the score's layout as documented."""
_VALUED = frozenset({"--lambda", "--epsilon", "-l", "--learning_rate", "--power_t", "--l1",
                     "--l2", "--gamma_scale", "--gamma_exponent", "--cb_type", "-b",
                     "--bit_precision", "--random_seed", "--first", "--initial_t",
                     "--decay_learning_rate"})
"""Arguments taking one value that leave the score's layout as documented."""
_ROLES = ("s", "a")


@dataclass(frozen=True)
class Layout:
    """How VW builds an action's score from the arguments: ``pairs``, the quadratic
    interactions (first, second feature group); ``linear``, the groups whose own features
    count; ``constant``, whether the constant feature does."""

    pairs: tuple[tuple[str, str], ...]
    linear: tuple[str, ...]
    constant: bool


def layout(args: str) -> Layout | None:
    """The :class:`Layout` of VW argument string ``args``, or None if an argument is outside
    the ones whose layout is known."""
    pairs: list[tuple[str, str]] = []
    ignored: set[str] = set()
    constant = True
    tokens = shlex.split(args)
    i = 0
    while i < len(tokens):
        token, value = tokens[i], None
        if token.startswith("--") and "=" in token:
            token, value = token.split("=", 1)
        elif token.startswith("-q") and len(token) > 2:
            token, value = "-q", token[2:]
        if token in _FLAGS:
            constant = constant and token != "--noconstant"
        elif token in _VALUED or token in ("-q", "--quadratic", "--ignore_linear"):
            if value is None:
                i += 1
                if i == len(tokens):
                    return None
                value = tokens[i]
            if token in ("-q", "--quadratic"):
                if len(value) != 2 or value[0] == value[1] or not set(value) <= set(_ROLES):
                    return None
                if (value[0], value[1]) not in pairs:  # VW drops repeated interactions
                    pairs.append((value[0], value[1]))
            elif token == "--ignore_linear":
                if not set(value) <= set(_ROLES):
                    return None
                ignored |= set(value)
        else:
            return None
        i += 1
    return Layout(tuple(pairs), tuple(r for r in _ROLES if r not in ignored), constant)


Group = tuple[list[str], NDArray[np.uint64], NDArray[np.float64]]
"""A feature group of one action's example: names, hashes (as pushed), values (as float32
would hold them)."""


def terms(plan: Layout, groups: dict[str, Group], weights: NDArray[np.float32]
          ) -> tuple[Callable[[int], str], NDArray[np.float64]]:
    """Every term of one action's cost: ``weight x value`` (float64), per :class:`Layout`, and
    the name of term ``i`` (named on demand: a pair's is ``"first*second"``), with ``groups``
    the action example's groups (``"s"`` the shared one's) and ``weights`` the
    ``(2^b, 1, stride)`` table."""
    size, _, stride = weights.shape
    mask = np.uint64(size * stride - 1)
    shift = np.uint64(stride.bit_length() - 1)
    width = np.uint64(stride)
    names: list[str] = []
    pairs: list[tuple[int, list[str], list[str]]] = []  # (first term, names of each side)
    indices: list[NDArray[np.uint64]] = []
    values: list[NDArray[np.float64]] = []
    if plan.constant:
        names.append("intercept")
        indices.append(np.array([CONSTANT * stride], dtype=np.uint64))
        values.append(np.ones(1))
    for role in plan.linear:
        group_names, hashes, group_values = groups[role]
        names += group_names
        indices.append(hashes * width)
        values.append(group_values)
    for first, second in plan.pairs:
        names_f, hashes_f, values_f = groups[first]
        names_g, hashes_g, values_g = groups[second]
        pairs.append((len(names) + sum(len(f) * len(g) for _, f, g in pairs), names_f, names_g))
        indices.append(np.bitwise_xor.outer(hashes_f * width * np.uint64(FNV_PRIME),
                                            hashes_g * width).ravel())
        values.append(np.multiply.outer(values_f, values_g).ravel())
    index = np.concatenate(indices) if indices else np.zeros(0, dtype=np.uint64)
    value = np.concatenate(values) if values else np.zeros(0)

    def name(i: int) -> str:
        if i < len(names):
            return names[i]
        start, firsts, seconds = next(p for p in reversed(pairs) if p[0] <= i)
        first, second = divmod(i - start, len(seconds))
        return f"{firsts[first]}*{seconds[second]}"

    return name, weights[(index & mask) >> shift, 0, 0].astype(np.float64) * value
