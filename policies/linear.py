"""The common face of the ridge-backed policies (LinUCB, linear Thompson sampling, ε-greedy).

A subclass adds its hyperparameters as dataclass fields and implements one hook, from the
ridge estimates ``mean_k = x_k . theta_k`` and (when :meth:`_needs_variance`) their variances
``x_k^T A_k^{-1} x_k`` to the distribution::

    _from_scores(mean (K,), variance (K,) or None, rng) -> (K,) distribution

:meth:`score` does the same for many decisions at once: their design rows stacked into one
``(sum K, D)`` block, the means and variances computed for the whole block, and each
decision's distribution finished from its slice with its own RNG.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from arbiter.policies import params as check
from arbiter.policies import serialize
from arbiter.policies.base import Decision, ExplanationTable, Scores, SkippedUpdate
from arbiter.policies.drift import PageHinkley
from arbiter.policies.explore import checked, checked_blocks
from arbiter.policies.featurize import (
    DesignRows,
    Featurizer,
    Vocabulary,
    feature_name,
)
from arbiter.policies.params import Hyperparameters
from arbiter.policies.ridge import Design, RidgeModels

DRIFT_DELTA = 0.1
DRIFT_THRESHOLD = 50.0
DESIGN_CACHE = 64
"""Decisions whose rows and design matrix :meth:`LinearPolicy._design` keeps (a memory bound
only)."""
DESIGN_CACHE_BYTES = 1 << 20
"""The most bytes of design matrices it keeps among them (1 MiB: a wide decision — up to 1,000
actions by ``max_features`` columns — is built again rather than kept)."""


@dataclass(slots=True)
class _Encoded:
    """A decision as :meth:`LinearPolicy._design` remembers it: its rows and, once built at
    ``width``, its design matrix (``(K, width)`` or the shared ``(width,)`` row). The decision is
    kept so that its ``id`` is not reused while it is remembered."""

    decision: Decision
    rows: DesignRows
    width: int = -1
    matrix: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


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
    _designs: dict[int, _Encoded] = field(init=False, repr=False, default_factory=dict)
    _design_bytes: int = field(init=False, repr=False, default=0)  # of the matrices kept
    _drift: PageHinkley = field(init=False, repr=False)
    resets: int = field(init=False, default=0)
    """Models reset by a drift alarm so far."""
    _importance: NDArray[np.float64] = field(init=False, repr=False,
                                             default_factory=lambda: np.zeros(0))
    _importance_n: int = field(init=False, repr=False, default=0)

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

    def _design(self, decision: Decision, *, learn: bool,
                row: int | None = None) -> tuple[Design, DesignRows]:
        """``decision`` for the ridge models, and its rows (its features' columns, values and
        names); only ``learn=True`` may grow vocabulary and actions. ``row``: only that
        action's design row, shape ``(D,)`` (what learning needs; learning encodes that action
        alone, see :meth:`~policies.featurize.Featurizer.encode`).

        A decision scored whose features all have a column is remembered (by identity, up to
        :data:`DESIGN_CACHE` of them) with its rows and, once :meth:`distribution` built it,
        its design matrix, read-only: learning from a decision just scored (the replay), or
        scoring one again, neither encodes nor builds anything again. A decision first seen
        by learning is not remembered (a server learns from decisions read back from its cache
        or the log, never the object it scored). A cached matrix's row is
        :meth:`~policies.featurize.DesignRows.row` bit for bit."""
        cached = self._designs.get(id(decision))
        if cached is not None and cached.decision is decision:
            rows = cached.rows
        else:
            cached = None
            rows = self._featurizer.encode(decision, grow=learn, only=row if learn else None)
            if rows.unseen is None and not learn:  # complete: the same rows either way
                if len(self._designs) >= DESIGN_CACHE:
                    self._forget_designs()
                cached = self._designs[id(decision)] = _Encoded(decision, rows)
        if learn:
            self._ridge.ensure_columns(len(self._featurizer.vocabulary))
        slots = self._ridge.slots(decision.action_ids, learn=learn)
        width = self._ridge.width
        if cached is not None and cached.width == width:
            x = cached.matrix if row is None or cached.matrix.ndim == 1 else cached.matrix[row]
        elif row is not None:
            x = rows.row(row, width)
        else:
            x = rows.matrix(width)
            if cached is not None and self._design_bytes + x.nbytes <= DESIGN_CACHE_BYTES:
                x.flags.writeable = False
                self._design_bytes += x.nbytes
                cached.matrix, cached.width = x, width
        return Design(x, slots, rows.unseen), rows

    def _forget_designs(self) -> None:
        """Drop every remembered decision and matrix."""
        self._designs.clear()
        self._design_bytes = 0

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        """Probabilities over ``decision.action_ids``, shape ``(K,)``.

        Never changes the learned state: features and actions not learned from yet are scored
        at the prior without being recorded (:mod:`policies.ridge`), so the model, and its
        snapshot, are a function of the learned events alone — what crash recovery replays.
        """
        design, _ = self._design(decision, learn=False)
        variance = self._ridge.variance(design) if self._needs_variance() else None
        return checked(self._from_scores(self._ridge.mean(design), variance, rng))

    def score(self, decisions: Sequence[Decision]) -> LinearScores:
        """The distributions of ``decisions`` as one block (:class:`LinearScores`); like
        :meth:`distribution`, never changes the learned state.

        Shapes: the block's design matrix is ``(N, D)`` with ``N = sum K`` (one bincount for
        all of it, :meth:`~policies.featurize.Block.matrix`), ``mean`` and ``variance`` are
        ``(N,)``, computed once; :meth:`_finish_block` may turn them into every decision's
        distribution at once too. One decision (a Choose asking for explanations) takes
        :meth:`distribution`'s own path: its cached design rows, and its models' inverses read
        in place rather than gathered into a ``(K, D, D)`` copy."""
        if len(decisions) == 1:
            design, one = self._design(decisions[0], learn=False)
            mean = self._ridge.mean(design)
            variance = self._ridge.variance(design) if self._needs_variance() else None
            # and its distribution made as distribution() makes it (no block to finish)
            return LinearScores(self, decisions, np.array([0, decisions[0].size]), design.slots,
                                mean, variance, rows=[one])
        block = self._featurizer.block(decisions)
        sizes = [decision.size for decision in decisions]
        slots = self._ridge.slots
        design = Design(block.matrix(sizes, self._ridge.width),
                        np.concatenate([slots(decision.action_ids, learn=False)
                                        for decision in decisions]), block.unseen)
        mean = self._ridge.mean(design)
        variance = self._ridge.block_variance(design) if self._needs_variance() else None
        offsets = np.cumsum([0, *sizes])
        return LinearScores(self, decisions, offsets, design.slots, mean, variance,
                            self._finish_block(mean, variance, offsets))

    def _finish_block(self, mean: NDArray[np.float64], variance: NDArray[np.float64] | None,
                      offsets: NDArray[np.intp]) -> NDArray[np.float64] | None:
        """Every decision's :meth:`_from_scores` at once, concatenated, shape ``(N,)`` — for a
        policy whose distribution draws nothing from its RNG; None: one at a time."""
        return None

    def _needs_variance(self) -> bool:
        """Whether :meth:`_from_scores` uses the variances (else they are not computed)."""
        return True

    def _exploration(self, variance: NDArray[np.float64]) -> tuple[NDArray[np.float64], bool] | None:
        """The exploration part of each action's score from its variance, and whether it is
        added to the score (:meth:`explain`); None: the policy has none."""
        return None

    def explain(self, scores: Scores, decision: Decision, index: int,
                top: int) -> ExplanationTable:
        """Per action ``k``: ``score_k = sum_f theta_k[col(f)] v_f`` over its features ``f``
        (the intercept, the context's, then its own; a feature without a column adds 0), each
        term one contribution — exact, also where features share a hashed column — the
        ``top`` largest by magnitude kept (ties in that order), then the exploration part
        (:meth:`_exploration`), added to the score where the policy adds it (LinUCB's bonus).
        The features, estimates and variances are the ones ``scores`` holds, the
        distribution's own.

        Shapes: the terms of all ``K`` actions are one ``(K, n)`` matrix, ``n`` = 1 + the
        context's features + the most any action has of its own, each row padded with 0s (a
        pad sorts after its row's real terms and is dropped); the top of every row by one
        argsort, picked as the table's ``(K, min(top, n))`` values; each row's names picked
        by the same indices from its list of names (the shared ones, then its own)."""
        assert isinstance(scores, LinearScores)
        start, end = scores.offsets[index], scores.offsets[index + 1]
        rows = scores.rows(index)
        columns, values, names = rows.shared or ([], [], [])
        own = [features or ([], [], []) for features in rows.actions]
        k, shared = len(own), 1 + len(columns)
        lengths = [len(features[0]) for features in own]
        longest = max(lengths)
        cols = np.zeros((k, shared + longest), dtype=np.intp)  # column 0: the intercept's
        vals = np.zeros((k, shared + longest))
        vals[:, 0] = 1.0
        cols[:, 1:shared], vals[:, 1:shared] = columns, values
        if min(lengths) == longest:  # the usual case: every action has as many features
            if longest:
                cols[:, shared:] = [features[0] for features in own]
                vals[:, shared:] = [features[1] for features in own]
        else:
            for a, (own_columns, own_values, _) in enumerate(own):
                stop = shared + lengths[a]
                cols[a, shared:stop], vals[a, shared:stop] = own_columns, own_values
        at = np.arange(k)[:, None]
        terms = self._ridge.coefficients(scores.slots[start:end])[at, cols] * vals
        key = np.abs(terms)
        order = np.negative(key, out=key).argsort(axis=1, kind="stable")[:, :top]
        labels = ["intercept", *names]
        features = [list(map((labels + own_names).__getitem__, indices[:shared + length]))
                    for indices, (_, _, own_names), length in zip(order.tolist(), own, lengths,
                                                                  strict=True)]
        mean = scores.mean[start:end]
        explore = self._exploration(scores.variance[start:end]) \
            if scores.variance is not None else None
        if explore is None:
            return ExplanationTable(decision.action_ids, mean, features, terms[at, order])
        bonus, added = explore
        return ExplanationTable(decision.action_ids, mean + bonus if added else mean, features,
                                terms[at, order], bonus)

    @abstractmethod
    def _from_scores(self, mean: NDArray[np.float64], variance: NDArray[np.float64] | None,
                     rng: np.random.Generator) -> NDArray[np.float64]:
        """The distribution over ``K`` actions from their estimates ``mean`` and variances
        ``variance`` (each of shape ``(K,)``; ``None`` unless :meth:`_needs_variance`)."""

    def update(self, decision: Decision, chosen: int, reward: float, probability: float) -> None:
        """Add ``(x_chosen, reward)`` to the chosen action's ridge model; all or nothing."""
        check_feedback(decision, chosen, reward)
        columns, models = len(self._featurizer.vocabulary), self._ridge.mark()
        design, _ = self._design(decision, learn=True, row=chosen)
        slot = int(design.slots[chosen])
        with np.errstate(over="ignore", invalid="ignore"):  # a skipped update adds nothing
            terms = self._ridge.coefficients(slot) * design.x
            np.abs(terms, out=terms)
        try:
            self._ridge.update(design.x, slot, float(reward))
        except SkippedUpdate:
            self._featurizer.truncate(columns)
            self._ridge.truncate(models)
            self._forget_designs()
            raise
        self._attribute(terms)
        if self._drift.add(float(reward)) and self.reset_on_drift:
            self._drift.restart()
            self._ridge = self._new_ridge()
            self._ridge.ensure_columns(columns)
            self._forget_designs()
            self.resets += 1

    def _attribute(self, terms: NDArray[np.float64]) -> None:
        """Add one learned event's ``|theta_chosen[c] x[c]|`` per column ``c`` (``terms``, under
        the model before the update) to the importance sums — unless a sum would not be finite
        (extreme feature values): then the event is left out of them."""
        if len(terms) > len(self._importance):
            self._importance = np.pad(self._importance, (0, len(terms) - len(self._importance)))
        sums = self._importance[:len(terms)]
        # Every number here is >= 0 (or nan): each new sum is at most the largest sum plus the
        # largest term, so that bound being finite settles it (the usual case: two reductions
        # that cannot overflow); otherwise each is checked.
        bound = float(np.maximum.reduce(sums, initial=0.0)) + float(
            np.maximum.reduce(terms, initial=0.0))
        if not math.isfinite(bound):
            with np.errstate(over="ignore", invalid="ignore"):
                if not np.isfinite(sums + terms).all():
                    return
        sums += terms
        self._importance_n += 1

    def importance(self, top: int) -> tuple[int, list[tuple[str, float]]]:
        """Feature importance: the number ``n`` of learned events and the ``top`` features by
        mean absolute contribution to the chosen action's score over them,
        ``(1/n) sum_events |theta_chosen[col(f)] x[col(f)]|``, each under the model before
        that event's update (what it would have explained at the time). Kept per column, so
        memory is bounded by ``max_features``: a column features share by hashing counts
        under the feature that owns it. Part of the fold (in snapshots; a snapshot from before
        it starts the sums afresh)."""
        n = self._importance_n
        if n == 0:
            return 0, []
        keys = self._featurizer.vocabulary.keys
        sums = self._importance[:len(keys)]
        order = np.argsort(-sums, kind="stable")[:top]
        return n, [(feature_name(keys[c]), float(sums[c]) / n) for c in order.tolist()
                   if sums[c] > 0]

    def to_bytes(self) -> bytes:
        """Snapshot: hyperparameters, vocabulary, action ids, the ridge arrays and the
        importance sums (:meth:`importance`)."""
        state, arrays = self._ridge.state()
        state["vocabulary"] = keys = self._featurizer.vocabulary.keys
        state["drift"], state["resets"] = self._drift.state(), self.resets
        state["importance_n"] = self._importance_n
        importance = np.zeros(len(keys))
        used = min(len(keys), len(self._importance))
        importance[:used] = self._importance[:used]
        arrays = {**arrays, "importance": importance}
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
        if "importance" in snapshot.arrays:  # snapshots before importance start it afresh
            policy._importance = snapshot.arrays["importance"].copy()
            policy._importance_n = int(snapshot.state["importance_n"])
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


class LinearScores:
    """A block of decisions scored by a linear policy: decision ``i`` is rows
    ``offsets[i]:offsets[i + 1]`` of ``slots`` (its actions' models), ``mean`` and ``variance``
    (shape ``(N,)``), and of ``finished``, their distributions if the policy made them all at
    once. ``rows``: each decision's :class:`DesignRows` if made while scoring; else
    :meth:`rows` encodes the one asked for (explanations: the vocabulary has not moved since,
    both happen under the variant's lock)."""

    def __init__(self, policy: LinearPolicy, decisions: Sequence[Decision],
                 offsets: NDArray[np.intp], slots: NDArray[np.intp],
                 mean: NDArray[np.float64], variance: NDArray[np.float64] | None,
                 finished: NDArray[np.float64] | None = None,
                 rows: Sequence[DesignRows] | None = None) -> None:
        self._policy, self._decisions, self.offsets, self.slots = policy, decisions, offsets, slots
        self.mean, self.variance, self._finished, self._rows = mean, variance, finished, rows
        # which finished distributions need no check (one pass over the block, not K each)
        self._fine = checked_blocks(finished, offsets) if finished is not None else None

    def rows(self, index: int) -> DesignRows:
        """Decision ``index``'s features as columns (what it was scored with)."""
        if self._rows is not None:
            return self._rows[index]
        return self._policy._featurizer.encode(self._decisions[index], grow=False)

    def distribution(self, index: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """Decision ``index``'s distribution, shape ``(K,)``, drawing from ``rng`` as
        :meth:`LinearPolicy.distribution` does."""
        rows = slice(self.offsets[index], self.offsets[index + 1])
        if self._finished is not None:
            finished = self._finished[rows]
            return finished if self._fine[index] else checked(finished)  # type: ignore[index]
        variance = self.variance[rows] if self.variance is not None else None
        return checked(self._policy._from_scores(self.mean[rows], variance, rng))
