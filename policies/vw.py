"""Vowpal Wabbit ``--cb_explore_adf`` through vowpal-wabbit-next.

A decision becomes one multi-line ADF example, built directly from feature indices (no text
parsing, which otherwise dominates VW's cost):

- a shared example whose feature group ``s`` holds every context feature;
- one example per action whose group ``a`` holds the action's features and the one-hot feature
  ``id=<action id>``, so actions without features are still told apart.

So ``args`` refer to the shared features as namespace ``s`` and to the action side as ``a``
(``-q sa`` crosses the context with the action id and features). A feature's index is
``stable_hash`` of its key (:mod:`policies.featurize`), identical in every process. VW learns
``cost = -reward`` with the logged probability; its pmf is the distribution (float32 in VW,
renormalised to sum to 1 in float64). Action examples are cached per action id and features and
reused; VW is not thread-safe, so every call into the workspace holds the policy's lock.

The state is a pure fold of the learned events (DESIGN.md): a prediction never changes what a
later update does or what :meth:`VowpalWabbit.to_bytes` returns. Learning itself never reads the
counters a prediction advances (VW's learning rate subtracts the unlabelled weight from ``t``), but
VW's serialized model holds them: ``t`` and ``weighted_unlabeled_examples`` grow by the shared
example's weight, ``example_number`` by one and ``total_features`` by the decision's feature count.
So predictions give the shared example weight 0 (``t`` and ``weighted_unlabeled_examples`` stay
put; the pmf does not depend on it) and a snapshot is VW's model reloaded once without
``--preserve_performance_counters``, which zeroes ``example_number``, ``total_features`` and VW's
other reporting counters (loss sums, labelled-example counts) and keeps all learning state.

VW computes in float32, so a finite double can overflow it (a reward of 1e39, a feature whose
square exceeds 3.4e38, or one so small that dividing by its square does). An update whose reward
or any feature value is outside :data:`_SAFE_MAGNITUDES` is applied to a copy-on-failure: the
workspace is serialized first, and if any weight (or the learned example's pmf) is then not
finite, it is reloaded from that copy and the update raises
:class:`~policies.base.SkippedUpdate`. The pmf goes through
:func:`~policies.explore.checked` like every policy's distribution.
"""

from __future__ import annotations

import math
import shlex
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, cast

import numpy as np
import vowpal_wabbit_next as vw
from numpy.typing import NDArray

from arbiter.policies import params as check
from arbiter.policies import serialize
from arbiter.policies.base import (
    Decision,
    Explanation,
    Namespace,
    PolicyConfigError,
    Scores,
    SkippedUpdate,
)
from arbiter.policies.explore import checked
from arbiter.policies.featurize import NamespaceEncoder, feature_items, feature_name, stable_hash
from arbiter.policies.linear import check_feedback
from arbiter.policies.params import Hyperparameters
from arbiter.policies.vw_explain import Group, Layout, layout, terms

DEFAULT_ARGS = "--cb_explore_adf --softmax --lambda 20 --epsilon 0.02 -q sa --ignore_linear s -l 10"
"""Chosen with ``python -m bench.quality --vw-search`` on the digits bandit (mean of 12 seeds).

Softmax exploration over VW's cost estimates (``lambda 20``) reached 0.73-0.74; it beat
``--squarecb`` (0.51 at VW's default learning rate, 0.61-0.65 with ``-l 5`` and
``--gamma_scale 100``), ε-greedy (0.67-0.68), bagging (0.63), ``--cover`` (0.40) and RegCB
(no learning). A large learning rate matters most (one pass, sparse per-action weights);
``--ignore_linear s`` drops shared-only weights, which cannot tell actions apart;
``--power_t``, ``--coin``, ``--cubic ssa`` and other losses did not help.
``--epsilon 0.02`` mixes a floor of ``0.02 / K`` into the pmf: without it softmax logs
propensities down to 1e-28, useless for offline evaluation.
"""

_RESTORE_ARGS = ["--preserve_performance_counters"]
"""Keeps VW's counters on load (those of a snapshot are zero, see :func:`_without_counters`; an
older snapshot's are kept as they were, so a workspace restored from one learns as before)."""

_SHARED_TO_PREDICT = vw.CBLabel(shared=True, weight=0.0)
"""The shared example's label while predicting: weight 0 keeps ``t`` and
``weighted_unlabeled_examples`` (VW's ``shared_data::update`` adds the shared example's weight to
both) where the learned events left them."""

_SHARED_TO_LEARN = vw.CBLabel(shared=True)
"""The shared example's label while learning: VW's default weight 1, as before."""

_CACHE_LIMIT = 4096


def _load_feature_api() -> None:
    """Make vowpal-wabbit-next's first feature push once, at import: that first call loads
    NumPy's C API and gives up the GIL while it does, and two threads making it at once (the
    event loop scoring a first VW decision while the tail folds one) froze the whole process."""
    vw.Example()["s"].push_many_features(np.zeros(1, dtype=np.uint64),  # type: ignore[arg-type]
                                         np.zeros(1, dtype=np.float32))  # type: ignore[arg-type]


_load_feature_api()

_SAFE_MAGNITUDES = (1e-6, 1e6)
"""Rewards up to 1e6 in magnitude and feature values within these (or 0) cannot overflow VW's
float32 arithmetic in one update: squares stay below 1e12, and VW's normalisation divides by
squares of feature values no smaller than 1e-12. Anything else is learned on a copy-on-failure."""


def _risky(decision: Decision, reward: float) -> bool:
    """Whether ``reward`` or a feature value of ``decision`` is outside the safe magnitudes."""
    low, high = _SAFE_MAGNITUDES
    if abs(reward) > high:
        return True
    namespaces = [*decision.context, *(ns for features in decision.action_features for ns in features)]
    return any(v and not low <= abs(v) <= high for ns in namespaces for v in ns.numbers.values())


def _features_key(namespaces: tuple[Namespace, ...]) -> tuple[object, ...]:
    return tuple((ns.name, tuple(ns.numbers.items()), tuple(ns.categories.items())) for ns in namespaces)


def _without_counters(model: bytes) -> bytes:
    """VW's serialized ``model`` with the counters predictions advance zeroed: reloaded once.

    Loading without ``--preserve_performance_counters`` zeroes ``example_number``,
    ``total_features``, ``weighted_unlabeled_examples`` and VW's reporting counters, and keeps
    the weights, their adaptive and normalisation state, ``t``, the label range and every
    reduction's own state, so what is left is a function of the learned events only.
    """
    return vw.Workspace([], model_data=model).serialize()


@dataclass(kw_only=True)
class VowpalWabbit(Hyperparameters):
    """``args``: the VW argument string; it must contain ``--cb_explore_adf``."""

    name: ClassVar[str] = "vw"
    summary: ClassVar[str] = "Vowpal Wabbit contextual bandit (--cb_explore_adf) with its own exploration"

    args: str = field(default=DEFAULT_ARGS, metadata=check.doc(
        "VW arguments with --cb_explore_adf",
        "the Vowpal Wabbit command line; context features are namespace s, action features a"))

    _workspace: vw.Workspace[Any] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _encoder: NamespaceEncoder = field(init=False, repr=False)
    _actions: dict[tuple[object, ...], vw.Example] = field(init=False, repr=False)
    _last: tuple[Decision, list[vw.Example], vw.CBLabel] | None = field(init=False, repr=False, default=None)
    _layout: Layout | None = field(init=False, repr=False, default=None)
    _names: dict[tuple[object, ...], list[str]] = field(init=False, repr=False,
                                                        default_factory=dict)

    def __post_init__(self) -> None:
        self.args = check.text("args", self.args)
        argv = shlex.split(self.args)
        if "--cb_explore_adf" not in argv:
            raise PolicyConfigError(f"`args` must contain --cb_explore_adf, got {self.args!r}")
        self._layout = layout(self.args)
        self._encoder = NamespaceEncoder(stable_hash, stable_hash)
        self._actions = {}
        self._workspace = self._open(argv)

    def _open(self, argv: list[str], model: bytes | None = None) -> vw.Workspace[Any]:
        try:
            return vw.Workspace(argv, model_data=model)
        except RuntimeError as error:
            raise PolicyConfigError(f"`args` rejected by VW ({error}), got {self.args!r}") from None

    def _push(self, example: vw.Example, role: str, namespaces: tuple[Namespace, ...]) -> None:
        """Push every feature of ``namespaces`` into feature group ``role`` of ``example``."""
        group = example[role]
        for namespace in namespaces:
            features = self._encoder.encode(role, namespace)
            # the package's stub spells the array types as ndarray[scalar, dtype]; mypy rejects it
            group.push_many_features(np.array(features.indices, dtype=np.uint64),  # type: ignore[arg-type]
                                     np.array(features.values, dtype=np.float32))  # type: ignore[arg-type]

    def _action_example(self, action_id: str, features: tuple[Namespace, ...]) -> vw.Example:
        key = (action_id, _features_key(features))
        example = self._actions.get(key)
        if example is None:
            if len(self._actions) >= _CACHE_LIMIT:
                self._actions.clear()
            example = vw.Example()
            example.set_label(vw.CBLabel())
            self._push(example, "a", (Namespace("", categories={"id": action_id}), *features))
            self._actions[key] = example
        return example

    def _examples(self, decision: Decision, shared_label: vw.CBLabel) -> list[vw.Example]:
        """The ADF example list ``[shared, action_0, ..., action_{K-1}]`` of ``decision``.

        The shared example carries ``shared_label`` (:data:`_SHARED_TO_PREDICT` or
        :data:`_SHARED_TO_LEARN`); the list of the last decision is reused, relabelled if need be.
        """
        if self._last is not None and self._last[0] is decision:
            examples = self._last[1]
            if self._last[2] is not shared_label:
                examples[0].set_label(shared_label)
                self._last = (decision, examples, shared_label)
            return examples
        shared = vw.Example()
        shared.set_label(shared_label)
        self._push(shared, "s", decision.context)
        examples = [shared] + [
            self._action_example(action_id, features)
            for action_id, features in zip(decision.action_ids, decision.action_features, strict=True)
        ]
        self._last = (decision, examples, shared_label)
        return examples

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        """VW's pmf over ``decision.action_ids``, shape ``(K,)`` (``rng`` is not used: VW
        draws nothing while predicting)."""
        return self._pmf(decision)

    def score(self, decisions: Sequence[Decision]) -> VWScores:
        """Every decision's pmf, predicted now (so an explanation and the distribution it
        explains come from the same model)."""
        return VWScores([self._pmf(decision) for decision in decisions])

    def explain(self, scores: Scores, decision: Decision, index: int,
                top: int) -> list[Explanation]:
        """Per action: VW's cost estimate as ``weight x value`` terms (:mod:`policies.vw_explain`)
        in reward units (``-cost``), the ``top`` largest by magnitude; the score is the sum of
        all of them. Nothing (an empty list) if ``args`` use options whose layout is not known
        or the weights are not a dense single model. Reads the weights only: VW's state does
        not change."""
        plan = self._layout
        if plan is None:
            return []
        shared = self._group("s", decision.context)
        out = []
        with self._lock:
            weights = self._workspace.weights()
            if weights.shape[1] != 1:  # several interleaved models (bagging, cover)
                return []
            for action_id, features in zip(decision.action_ids, decision.action_features,
                                           strict=True):
                own = self._group("a", (Namespace("", categories={"id": action_id}), *features))
                name, costs = terms(plan, {"s": shared, "a": own}, weights)
                contributions = -costs
                order = np.argsort(-np.abs(contributions), kind="stable")[:top].tolist()
                out.append(Explanation(action_id, float(contributions.sum()),
                                       tuple((name(i), float(contributions[i])) for i in order)))
        return out

    def _group(self, role: str, namespaces: tuple[Namespace, ...]) -> Group:
        """The features of ``namespaces`` in feature group ``role`` as VW holds them: names,
        hashes, float32 values."""
        names: list[str] = []
        hashes: list[int] = []
        values: list[float] = []
        for namespace in namespaces:
            features = self._encoder.encode(role, namespace)
            names += self._names_of(role, namespace)
            hashes += features.indices
            values += features.values
        return (names, np.array(hashes, dtype=np.uint64),
                np.array(values, dtype=np.float32).astype(np.float64))

    def _names_of(self, role: str, namespace: Namespace) -> list[str]:
        """The feature names of ``namespace`` (``namespace.name``, ``id=<action>`` for the
        action id), looked up once per namespace shape (a bounded cache)."""
        shape = (role, namespace.name, tuple(namespace.numbers), tuple(namespace.categories.items()))
        names = self._names.get(shape)
        if names is None:
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            names = self._names[shape] = [feature_name(key).removeprefix(".")
                                          for key, _ in feature_items(role, namespace)]
        return names

    def _pmf(self, decision: Decision) -> NDArray[np.float64]:
        examples = self._examples(decision, _SHARED_TO_PREDICT)
        with self._lock:
            pmf = cast(list[tuple[int, float]], self._workspace.predict_one(examples))
        probabilities = np.zeros(decision.size)
        for index, probability in pmf:
            probabilities[index] = probability
        total = probabilities.sum()
        return checked(probabilities / total if total > 0 else probabilities)

    def update(self, decision: Decision, chosen: int, reward: float, probability: float) -> None:
        """Learn ``cost = -reward`` for the chosen action logged with ``probability``."""
        check_feedback(decision, chosen, reward)
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"`probability` must be in (0, 1], got {probability}")
        risky = _risky(decision, reward)
        examples = self._examples(decision, _SHARED_TO_LEARN)
        action = examples[1 + chosen]
        with self._lock:
            before = self._workspace.serialize() if risky else None
            action.set_label(vw.CBLabel(label=(-float(reward), float(probability))))
            try:
                self._workspace.learn_one(examples)
            finally:
                action.set_label(vw.CBLabel())
            if before is not None and not self._finite(examples):
                self._workspace = self._open(_RESTORE_ARGS, before)
                self._actions.clear()
                self._last = None
                raise SkippedUpdate(f"the update with reward {reward:g} and these feature values "
                                    "would make VW's model non-finite")

    def _finite(self, examples: list[vw.Example]) -> bool:
        """Every weight (and its adaptive and normalisation state) and the pmf of ``examples``
        are finite (under the lock)."""
        try:
            weights = self._workspace.weights()
        except (RuntimeError, ValueError):  # sparse weights: the pmf has to do
            weights = np.zeros(1, dtype=np.float32)
        examples[0].set_label(_SHARED_TO_PREDICT)
        try:
            pmf = cast(list[tuple[int, float]], self._workspace.predict_one(examples))
        finally:
            examples[0].set_label(_SHARED_TO_LEARN)
        return bool(np.isfinite(weights).all()) and all(math.isfinite(p) for _, p in pmf)

    def to_bytes(self) -> bytes:
        """Snapshot: ``args`` and VW's own serialized model, without the counters predictions advance."""
        with self._lock:
            model = self._workspace.serialize()
        canonical = np.frombuffer(_without_counters(model), dtype=np.uint8)
        return serialize.dump(serialize.Snapshot(self.name, self.params(), {}, {"model": canonical}))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        snapshot = serialize.load(data, cls.name)
        policy = cls(**snapshot.params)
        policy._workspace = policy._open(_RESTORE_ARGS, snapshot.arrays["model"].tobytes())
        return policy


class VWScores:
    """A block of decisions' pmfs, predicted by :meth:`VowpalWabbit.score`."""

    def __init__(self, pmfs: list[NDArray[np.float64]]) -> None:
        self._pmfs = pmfs

    def distribution(self, index: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """Decision ``index``'s pmf, shape ``(K,)``."""
        return self._pmfs[index]
