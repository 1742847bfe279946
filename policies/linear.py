"""The common face of the ridge-backed policies (LinUCB, linear Thompson sampling, ε-greedy).

A subclass adds its hyperparameters as dataclass fields and implements one hook::

    _choose(x (K, D), slots (K,), rng) -> (K,) distribution

Everything else — featurization, learning, validation, snapshots — lives here. Learning is a
plain ridge regression of the observed reward on the chosen action's design row; the logged
probability is not needed for it (regression on the chosen action estimates that action's
conditional mean under any logging policy), so it is accepted and ignored.

An update the ridge core refuses (it would make the models non-finite) is undone completely —
the features and actions it would have added are forgotten too — and raises
:class:`~policies.base.SkippedUpdate`; every distribution passes :func:`~policies.explore.checked`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from arbiter.policies import params as check
from arbiter.policies import serialize
from arbiter.policies.base import Decision, SkippedUpdate
from arbiter.policies.drift import PageHinkley
from arbiter.policies.explore import checked
from arbiter.policies.featurize import DesignRows, Featurizer, Vocabulary
from arbiter.policies.params import Hyperparameters
from arbiter.policies.ridge import Design, RidgeModels

DRIFT_DELTA = 0.1
DRIFT_THRESHOLD = 50.0


@dataclass(kw_only=True)
class LinearPolicy(Hyperparameters, ABC):
    """Ridge models per action id over ``[context features ; action features ; 1]``.

    ``l2`` is the ridge penalty (the prior precision, default 1.0); ``max_features`` caps the
    vocabulary (default 256 columns per model), beyond which features are hashed into it.

    Forgetting and drift: ``decay`` (g, default 1: none) discounts older evidence of the updated
    model (:mod:`policies.ridge`). Every learned reward also feeds a Page-Hinkley test for a drop
    in the mean reward (:mod:`policies.drift`, ``drift_delta``, ``drift_threshold``); when it
    fires and ``reset_on_drift`` is on, every model returns to the prior (the vocabulary stays)
    and the test restarts. Both are part of the fold — in snapshots, at the same event in every
    replay.
    """

    name: ClassVar[str]

    l2: float = field(default=1.0, metadata=check.doc(
        "> 0", "ridge penalty (prior precision) of every model; larger shrinks the estimates more"))
    max_features: int = field(default=256, metadata=check.doc(
        "integer >= 2", "feature columns per model; features beyond share columns by hashing"))

    decay: float = field(default=1.0, metadata=check.doc(
        "(0, 1]", "weight older evidence keeps per update of a model (1: no forgetting)"))
    reset_on_drift: bool = field(default=True, metadata=check.doc(
        "true or false", "return every model to the prior when the learned rewards drop (Page-Hinkley)"))
    drift_delta: float = field(default=DRIFT_DELTA, metadata=check.doc(
        ">= 0", "drop in mean reward the drift test tolerates, in standard deviations of the reward"))
    drift_threshold: float = field(default=DRIFT_THRESHOLD, metadata=check.doc(
        "> 0", "Page-Hinkley alarm level: cumulative drop below its peak, in standard deviations"))

    _featurizer: Featurizer = field(init=False, repr=False)
    _ridge: RidgeModels = field(init=False, repr=False)
    _last: tuple[Decision, DesignRows] | None = field(init=False, repr=False, default=None)
    _drift: PageHinkley = field(init=False, repr=False)
    resets: int = field(init=False, default=0)
    """Models reset by a drift alarm so far."""

    def __post_init__(self) -> None:
        self.l2 = check.positive("l2", self.l2)
        self.max_features = check.count("max_features", self.max_features, low=2)
        self.decay = check.real("decay", check.positive("decay", self.decay), low=0.0, high=1.0)
        self.reset_on_drift = check.flag("reset_on_drift", self.reset_on_drift)
        self.drift_delta = check.real("drift_delta", self.drift_delta, low=0.0)
        self.drift_threshold = check.positive("drift_threshold", self.drift_threshold)
        self._drift = PageHinkley(self.drift_delta, self.drift_threshold)
        self._featurizer = Featurizer(Vocabulary(self.max_features))
        self._ridge = self._new_ridge()
        self._ridge.ensure_columns(len(self._featurizer.vocabulary))  # the intercept

    def _new_ridge(self) -> RidgeModels:
        """The ridge core this policy learns with (disjoint per-action models by default)."""
        return RidgeModels(self.l2, self.decay)

    def _design(self, decision: Decision, *, learn: bool, row: int | None = None) -> Design:
        """``decision`` for the ridge models; only ``learn=True`` may grow vocabulary and actions.
        ``row``: only that action's design row, shape ``(D,)`` (what learning needs)."""
        if self._last is not None and self._last[0] is decision:
            rows = self._last[1]
        else:
            rows = self._featurizer.encode(decision, grow=learn)
            if rows.unseen is None:  # complete: the same rows either way
                self._last = (decision, rows)
        if learn:
            self._ridge.ensure_columns(len(self._featurizer.vocabulary))
        slots = self._ridge.slots(decision.action_ids, learn=learn)
        width = self._ridge.width
        return Design(rows.matrix(width) if row is None else rows.row(row, width), slots,
                      rows.unseen)

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        """Probabilities over ``decision.action_ids``, shape ``(K,)``.

        Never changes the learned state: features and actions not learned from yet are scored
        at the prior without being recorded (:mod:`policies.ridge`), so the model, and its
        snapshot, are a function of the learned events alone — what crash recovery replays.
        """
        return checked(self._choose(self._design(decision, learn=False), rng))

    @abstractmethod
    def _choose(self, design: Design, rng: np.random.Generator) -> NDArray[np.float64]:
        """The distribution over the ``K`` actions of ``design``, shape ``(K,)``."""

    def update(self, decision: Decision, chosen: int, reward: float, probability: float) -> None:
        """Add ``(x_chosen, reward)`` to the chosen action's ridge model; all or nothing."""
        check_feedback(decision, chosen, reward)
        columns, models = len(self._featurizer.vocabulary), self._ridge.mark()
        design = self._design(decision, learn=True, row=chosen)
        try:
            self._ridge.update(design.x, int(design.slots[chosen]), float(reward))
        except SkippedUpdate:
            self._featurizer.truncate(columns)
            self._ridge.truncate(models)
            self._last = None
            raise
        if self._drift.add(float(reward)) and self.reset_on_drift:
            self._drift.restart()
            self._ridge = self._new_ridge()
            self._ridge.ensure_columns(columns)
            self._last = None
            self.resets += 1

    def to_bytes(self) -> bytes:
        """Snapshot: hyperparameters, vocabulary, action ids and the ridge arrays."""
        state, arrays = self._ridge.state()
        state["vocabulary"] = self._featurizer.vocabulary.keys
        state["drift"], state["resets"] = self._drift.state(), self.resets
        return serialize.dump(serialize.Snapshot(self.name, self.params(), state, arrays))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        snapshot = serialize.load(data, cls.name)
        policy = cls(**snapshot.params)
        policy._featurizer = Featurizer(Vocabulary(policy.max_features, snapshot.state["vocabulary"]))
        policy._ridge.restore(snapshot.state, snapshot.arrays)
        if "drift" in snapshot.state:  # snapshots before drift detection start it afresh
            policy._drift = PageHinkley.from_state(policy.drift_delta, policy.drift_threshold,
                                                   snapshot.state["drift"])
            policy.resets = int(snapshot.state["resets"])
        return policy

    def estimate(self, action_id: str) -> NDArray[np.float64]:
        """The ridge estimate ``theta`` of ``action_id``, shape ``(d,)`` in vocabulary order."""
        return self._ridge.estimate(action_id)

    def inverse(self, action_id: str) -> NDArray[np.float64]:
        """The maintained ``A^{-1}`` of ``action_id``, shape ``(d, d)`` in vocabulary order."""
        return self._ridge.inverse(action_id)

    @property
    def vocabulary(self) -> list[str]:
        """Feature keys in column order (see :mod:`policies.featurize`)."""
        return self._featurizer.vocabulary.keys


def check_feedback(decision: Decision, chosen: int, reward: float) -> None:
    """Reject feedback that would corrupt a model: ``chosen`` out of range, non-finite reward."""
    if not 0 <= chosen < decision.size:
        raise ValueError(f"`chosen` must be in [0, {decision.size}), got {chosen}")
    if not math.isfinite(reward):
        raise ValueError(f"`reward` must be finite, got {reward}")
