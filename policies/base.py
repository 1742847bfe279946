"""The policy protocol: the one contract between the server and every learning algorithm.

A policy sees one decision as plain Python values (never protos): the shared context and the
K offered actions with their own features. It returns a probability distribution over those K
actions, shape ``(K,)``, non-negative, summing to 1; the server samples from it with an RNG
seeded by the event id and logs the exact probability. Later the policy learns from
``(decision, chosen index, reward, logged probability)``.

Policies are not thread-safe; the server holds one lock per policy instance around every call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, Self, overload, runtime_checkable

import msgspec
import numpy as np
from numpy.typing import NDArray


class Namespace(msgspec.Struct, frozen=True, gc=False):
    """A group of features. ``numbers`` are values; ``categories`` are one-hot ``name=value``.

    A ``msgspec.Struct``: built in a tenth of a frozen dataclass's time, never tracked by the
    garbage collector (it holds no references back), and encoded to the log's JSON
    ``{"name", "numbers", "categories"}`` as is. Every request builds a dozen of these.
    """

    name: str
    numbers: Mapping[str, float] = {}
    categories: Mapping[str, str] = {}


class Decision(msgspec.Struct, frozen=True, gc=False):
    """One decision to make: shared ``context`` and K actions.

    ``action_features[k]`` are the features of ``action_ids[k]``.
    """

    context: tuple[Namespace, ...]
    action_ids: tuple[str, ...]
    action_features: tuple[tuple[Namespace, ...], ...]

    def __post_init__(self) -> None:
        if len(self.action_ids) != len(self.action_features):
            raise ValueError(
                f"`action_features` has {len(self.action_features)} entries for "
                f"{len(self.action_ids)} actions"
            )

    @property
    def size(self) -> int:
        """K, the number of offered actions."""
        return len(self.action_ids)

    def subset(self, keep: Sequence[int]) -> Decision:
        """The same context offering only the actions at indices ``keep`` (in that order)."""
        return Decision(self.context, tuple([self.action_ids[k] for k in keep]),
                        tuple([self.action_features[k] for k in keep]))


class Scores(Protocol):
    """A block of decisions scored together (:meth:`BlockScoring.score`): the part of each
    distribution that needs the learned state, computed once for the block; ``distribution(i,
    rng)`` finishes decision ``i`` with its own RNG (the random part, if any), reading no
    learned state. Same formulas as :meth:`Policy.distribution` and the same draws from
    ``rng``."""

    def distribution(self, index: int, rng: np.random.Generator) -> NDArray[np.float64]: ...


@runtime_checkable
class BlockScoring(Protocol):
    """What a policy that scores many decisions at once adds to :class:`Policy`."""

    def score(self, decisions: Sequence[Decision]) -> Scores:
        """The decisions' scores as one block (vectorized); changes no learned state."""
        ...


class Explanation(msgspec.Struct, frozen=True, gc=False):
    """Why ``action_id`` scored ``score``: ``contributions``, ``(feature, contribution)`` by
    decreasing magnitude, then ``("exploration", value)`` where the policy has one."""

    action_id: str
    score: float
    contributions: tuple[tuple[str, float], ...]


class ExplanationTable(Sequence[Explanation]):
    """One decision's explanations as columns, and a sequence of :class:`Explanation` (each
    made when read). Action ``k`` is ``action_ids[k]``, its score ``scores[k]``; its
    contributions are named ``features[k]`` and worth ``values[k, :len(features[k])]``, by
    decreasing magnitude, then ``("exploration", exploration[k])`` where the policy has one.

    Shapes: ``scores`` ``(K,)``; ``values`` ``(K, n)``, ``n`` at least the longest row (what
    lies past a row's names means nothing); ``exploration`` ``(K,)`` or None. What the server
    encodes (``server.explanations``), in a few whole-array steps rather than contribution by
    contribution — and with no Python object per contribution."""

    __slots__ = ("action_ids", "exploration", "features", "scores", "values")

    def __init__(self, action_ids: Sequence[str], scores: NDArray[np.float64],
                 features: list[list[str]], values: NDArray[np.float64],
                 exploration: NDArray[np.float64] | None = None) -> None:
        self.action_ids, self.scores, self.features = action_ids, scores, features
        self.values, self.exploration = values, exploration

    @classmethod
    def of(cls, explanations: Sequence[Explanation]) -> ExplanationTable:
        """``explanations`` as a table (their contributions as given, none split off as
        exploration)."""
        width = max((len(e.contributions) for e in explanations), default=0)
        values = np.zeros((len(explanations), width))
        for k, e in enumerate(explanations):
            values[k, :len(e.contributions)] = [value for _, value in e.contributions]
        return cls([e.action_id for e in explanations], np.array([e.score for e in explanations]),
                   [[feature for feature, _ in e.contributions] for e in explanations], values)

    def __len__(self) -> int:
        return len(self.action_ids)

    @overload
    def __getitem__(self, k: int) -> Explanation: ...

    @overload
    def __getitem__(self, k: slice) -> list[Explanation]: ...

    def __getitem__(self, k: int | slice) -> Explanation | list[Explanation]:
        if isinstance(k, slice):
            return [self[i] for i in range(len(self))[k]]
        names = self.features[k]
        contributions = tuple(zip(names, self.values[k, :len(names)].tolist(), strict=True))
        if self.exploration is not None:
            contributions += (("exploration", float(self.exploration[k])),)
        return Explanation(self.action_ids[k], float(self.scores[k]), contributions)


@runtime_checkable
class Explaining(Protocol):
    """What a policy that can explain its scores adds to :class:`BlockScoring`."""

    def score(self, decisions: Sequence[Decision]) -> Scores: ...

    def explain(self, scores: Scores, decision: Decision, index: int,
                top: int) -> Sequence[Explanation]:
        """One explanation per action of ``decision``, decision ``index`` of the block that
        ``score`` made ``scores`` of (with no update in between), each with its ``top``
        largest contributions (an :class:`ExplanationTable` where the policy computes them
        as arrays); changes no learned state."""
        ...


@runtime_checkable
class Attributing(Protocol):
    """What a policy that keeps feature importance (a fold of its learned events) adds."""

    def importance(self, top: int) -> tuple[int, list[tuple[str, float]]]:
        """``(n, features)``: the learned events ``n`` it is averaged over and the ``top``
        ``(feature, mean |contribution|)`` by decreasing importance."""
        ...


class PolicyConfigError(ValueError):
    """A hyperparameter is unknown or out of range; the message names the field and the value."""


class SkippedUpdate(ValueError):
    """An update the policy refused to apply because it would make its learned state non-finite
    (a reward or feature value too large for its arithmetic). The state is exactly as before the
    call, so a server that logs and goes on folds the same model live and in every replay."""


class Policy(Protocol):
    """What the server needs of a policy. Adding one = one class + one line in ``registry``."""

    name: ClassVar[str]

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        """Probabilities over ``decision.action_ids``, shape ``(K,)``, summing to 1: always
        finite and non-negative, whatever the decision's (finite) feature values.

        ``rng`` is the only source of randomness (seeded by the server from the event id), so
        the same state + decision + seed gives the same distribution.
        """
        ...

    def update(self, decision: Decision, chosen: int, reward: float, probability: float) -> None:
        """Learn from the reward of ``decision.action_ids[chosen]`` drawn with ``probability``.

        Raises ``ValueError`` (:class:`SkippedUpdate` for values too large for the policy's
        arithmetic) and then leaves the learned state unchanged.
        """
        ...

    def to_bytes(self) -> bytes:
        """Serialize hyperparameters and learned state exactly."""
        ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of ``to_bytes``: the restored policy behaves identically."""
        ...

    def params(self) -> dict[str, Any]:
        """The hyperparameters, as given in ``experiments.toml`` (for logs and reports)."""
        ...
