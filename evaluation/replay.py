"""Counterfactual replay: candidate policies scored and trained progressively on the logged rounds.

For each logged round i, in log order, every candidate π

1. gives its distribution π(·|x_i) over the K_i actions that were offered (``distribution``);
2. learns from the logged ``(x_i, a_i, r_i, π_0(a_i|x_i))`` (``update``), as it would have live.

Only what the estimators need is kept, O(n) floats however large the contexts are (the log is
streamed): r_i, π_0(a_i|x_i), q̂(x_i, a_i), and per candidate π(a_i|x_i) and
q̂(x_i, π) = Σ_a π(a|x_i) q̂(x_i, a), with q̂ from :class:`ProgressiveRidge`.

Variable K. The estimators take ``(n, K)`` arrays; rounds here offer different numbers of
actions. Every estimator is a function of w_i, q̂(x_i, π) and q̂(x_i, a_i) only, so
:meth:`ReplayLog.estimator_inputs` feeds them an exactly equivalent two-column log: column 0 is
the logged action (probability π(a_i|x_i), prediction q̂(x_i, a_i)), column 1 all the other
actions lumped together (probability 1 - π(a_i|x_i), prediction chosen so that the row's
π-weighted mean is q̂(x_i, π)). Nothing is padded and memory stays O(n).
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from arbiter import policies
from arbiter.evaluation._checks import FloatArray
from arbiter.evaluation.logdata import Round
from arbiter.evaluation.progressive_model import ProgressiveRidge, SparseRows
from arbiter.evaluation.report_html import fmt
from arbiter.evaluation.verdict import NEAR_ZERO
from arbiter.log.codec import decision_from_json
from arbiter.policies import Decision, PolicyConfigError
from arbiter.policies.baselines import StatelessPolicy

__all__ = [
    "MAX_SEGMENTS",
    "CandidateError",
    "CandidateSpec",
    "ReplayLog",
    "number_buckets",
    "parse_candidate",
    "replay",
    "segment_of",
]

MAX_SEGMENTS = 20
"""Distinct segment values kept by name; rounds with any later value go to ``(other)``."""

DECISION_CACHE = 100_000
"""Distinct decoded decisions (and logged distributions) kept at once; a memory bound only."""
NUMBER_QUANTILES = (0.25, 0.5, 0.75)
"""Where a number feature of ``--segment-by`` is cut: its quartiles over the evaluated rounds."""
OTHER_SEGMENT = "(other)"
MISSING_SEGMENT = "(missing)"
_LUMP_EPSILON = 1e-12
IMPORTANCE_TOP = 10
"""Features kept of each candidate's importance (the largest)."""
Importance = tuple[int, tuple[tuple[str, float], ...]]
"""A replayed model's feature importance: rounds averaged over, ``(feature, mean |contribution|)``."""
"""Below this 1 - π(a_i|x_i), the lumped column carries no weight and is set to q̂(x_i, a_i)."""


class CandidateError(ValueError):
    """A ``--candidate`` spec is malformed or names an unknown policy or parameter."""


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate policy to replay: its display ``name``, registry ``policy`` and ``params``."""

    name: str
    policy: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def create(self) -> policies.Policy:
        """A fresh policy; :class:`CandidateError` names the candidate if the config is bad."""
        try:
            return policies.create(self.policy, self.params)
        except PolicyConfigError as error:
            raise CandidateError(f"candidate `{self.name}`: {error}") from None

    def configuration(self) -> tuple[str, dict[str, Any]]:
        """``(policy, every hyperparameter with defaults filled in)``: two specs configure the
        same policy iff these are equal (``linucb`` and ``linucb:{"alpha": 0.3}`` do)."""
        return self.policy, self.create().params()

    def describe(self) -> str:
        """``policy {json params}`` as a person types it, e.g. ``linucb {"alpha": 0.5}``."""
        if not self.params:
            return self.policy
        return f"{self.policy} {json.dumps(dict(self.params), sort_keys=True)}"


def parse_candidate(text: str) -> CandidateSpec:
    """``name=policy`` or ``name=policy:{"param": value}`` as a checked :class:`CandidateSpec`."""
    name, sep, rest = text.partition("=")
    policy, _, params_json = rest.partition(":")
    name, policy = name.strip(), policy.strip()
    if not sep or not name or not policy:
        raise CandidateError(f"candidate {text!r} must look like 'name=policy' or 'name=policy:{{json}}'")
    try:
        params = json.loads(params_json) if params_json.strip() else {}
    except json.JSONDecodeError as error:
        raise CandidateError(f"candidate `{name}`: parameters are not valid JSON: {error}") from None
    if not isinstance(params, dict):
        raise CandidateError(f"candidate `{name}`: parameters must be a JSON object, got {params_json}")
    spec = CandidateSpec(name=name, policy=policy, params=params)
    spec.create()
    return spec


def segment_of(context: Sequence[Mapping[str, Any]], segment_by: str) -> str | float:
    """The value of context feature ``"namespace.feature"`` in a logged context: a category's
    text, a number's float (bucketed later, see :func:`number_buckets`), or ``(missing)``."""
    namespace, _, feature = segment_by.partition(".")
    for item in context:
        if item.get("name") != namespace:
            continue
        categories, numbers = item.get("categories", {}), item.get("numbers", {})
        if feature in categories:
            return str(categories[feature])
        if feature in numbers:
            return float(numbers[feature])
    return MISSING_SEGMENT


def number_buckets(values: FloatArray) -> tuple[NDArray[np.intp], list[str]]:
    """Quantile buckets of a number feature's values ``(m,)`` (all finite): ``(bucket of each
    value, labels)``. The edges are the values' quartiles (:data:`NUMBER_QUANTILES`), repeated
    ones merged, so there are at most 4 buckets; bucket j holds ``edge_j <= v < edge_{j+1}``,
    the last one up to the largest value, and is labelled ``[low, high)`` (``]`` for the last)
    with the smallest and largest value as the outer bounds. Empty buckets are dropped."""
    edges = np.unique(np.quantile(values, NUMBER_QUANTILES))
    raw = np.searchsorted(edges, values, side="right")  # 0 .. len(edges)
    bounds = [float(values.min()), *(float(e) for e in edges), float(values.max())]
    used = np.unique(raw)
    labels = []
    for j in used:
        last = j == used[-1]  # the top bucket: it holds the largest value
        labels.append(f"[{fmt(bounds[j])}, {fmt(bounds[j + 1])}{']' if last else ')'}")
    return np.searchsorted(used, raw).astype(np.intp), labels


@dataclass(frozen=True, kw_only=True)
class ReplayLog:
    """The replay's per-round columns, each ``(n,)``, in log order, plus per-candidate columns.

    ``prob[c]`` is π_c(a_i|x_i) and ``q_policy[c]`` is q̂(x_i, π_c) for candidate ``names[c]``;
    ``unsupported[c]`` is Σ_a π_c(a|x_i) 1{π_0(a|x_i) < NEAR_ZERO}, the candidate's mass on
    actions the log (nearly) never takes; ``variant[i]`` indexes ``variants`` and ``segment[i]``
    indexes ``segments`` (empty when no segmentation was asked for). ``importance[c]``: the
    replayed model's feature importance (:class:`~policies.base.Attributing`, ``(0, ())`` for
    a candidate that keeps none): mean absolute contribution to the chosen action's score over
    the replayed rounds, each under the model before it learned that round.
    """

    names: tuple[str, ...]
    reward: FloatArray
    pscore: FloatArray
    q_logged: FloatArray
    prob: tuple[FloatArray, ...]
    q_policy: tuple[FloatArray, ...]
    unsupported: tuple[FloatArray, ...]
    variant: NDArray[np.intp]
    variants: tuple[str, ...]
    segment: NDArray[np.intp]
    segments: tuple[str, ...]
    importance: tuple[Importance, ...] = ()

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    def weights(self, c: int) -> FloatArray:
        """Importance weights w_i = π_c(a_i|x_i) / π_0(a_i|x_i), shape ``(n,)``."""
        weights: FloatArray = self.prob[c] / self.pscore
        return weights

    def estimator_inputs(self, c: int, rows: NDArray[np.bool_] | None = None) -> dict[str, Any]:
        """Keyword arguments for the estimators: the exact two-column log of candidate ``c``.

        ``action_dist`` and ``estimated_rewards`` are ``(m, 2)`` and ``action`` is all zeros
        (the logged action is column 0); ``rows`` (a boolean ``(n,)`` mask) selects rounds.
        """
        pick = slice(None) if rows is None else rows
        reward, pscore = self.reward[pick], self.pscore[pick]
        prob = np.clip(self.prob[c][pick], 0.0, 1.0)
        q_logged, q_policy = self.q_logged[pick], self.q_policy[c][pick]
        rest = 1.0 - prob
        lumped = np.where(rest > _LUMP_EPSILON,
                          (q_policy - prob * q_logged) / np.maximum(rest, _LUMP_EPSILON), q_logged)
        return {
            "reward": reward,
            "action": np.zeros(reward.shape[0], dtype=np.intp),
            "pscore": pscore,
            "action_dist": np.column_stack([prob, rest]),
            "estimated_rewards": np.column_stack([q_logged, lumped]),
        }


class _Builder:
    """Growable ``array('d')`` columns (8 bytes a value) turned into numpy arrays at the end."""

    def __init__(self, n_candidates: int) -> None:
        self.reward, self.pscore, self.q_logged = array("d"), array("d"), array("d")
        self.prob = [array("d") for _ in range(n_candidates)]
        self.q_policy = [array("d") for _ in range(n_candidates)]
        self.unsupported = [array("d") for _ in range(n_candidates)]
        self.variant, self.segment = array("q"), array("q")
        self.number = array("d")  # a number feature's value per round; NaN where it is a category
        self.variants: dict[str, int] = {}
        self.segments: dict[str, int] = {}

    def add_segment(self, value: str | float) -> None:
        """A round's segment: a category's code now; a number's bucket when built."""
        if isinstance(value, float):
            self.segment.append(-1)
            self.number.append(value)
        else:
            self.segment.append(self.code(self.segments, value, MAX_SEGMENTS))
            self.number.append(math.nan)

    def code(self, table: dict[str, int], value: str, limit: int | None = None) -> int:
        if value not in table:
            if limit is not None and len(table) >= limit:
                value = OTHER_SEGMENT
            table.setdefault(value, len(table))
        return table[value]

    def build(self, names: tuple[str, ...], same_as: Mapping[int, int]) -> ReplayLog:
        """The columns as numpy arrays over the builders' memory (no copy); candidate ``c`` in
        ``same_as`` gets the columns of candidate ``same_as[c]`` (it was not appended to)."""

        def floats(column: array[float]) -> FloatArray:
            return np.frombuffer(column, dtype=np.float64)

        def codes(column: array[int]) -> NDArray[np.intp]:
            return np.frombuffer(column, dtype=np.int64).astype(np.intp, copy=False)

        def per_candidate(columns: list[array[float]]) -> tuple[FloatArray, ...]:
            arrays = [floats(column) for column in columns]
            return tuple(arrays[same_as.get(c, c)] for c in range(len(arrays)))

        segment, segments = codes(self.segment), list(self.segments)
        numbers = floats(self.number)
        is_number = ~np.isnan(numbers)
        if np.any(is_number):
            buckets, labels = number_buckets(numbers[is_number])
            segment[is_number] = buckets + len(segments)
            segments += labels
        return ReplayLog(
            names=names, reward=floats(self.reward), pscore=floats(self.pscore),
            q_logged=floats(self.q_logged), prob=per_candidate(self.prob),
            q_policy=per_candidate(self.q_policy), unsupported=per_candidate(self.unsupported),
            variant=codes(self.variant),
            variants=tuple(self.variants), segment=segment, segments=tuple(segments),
        )


@dataclass(slots=True)
class _Seen:
    """A distinct (context, actions) pair of the log, decoded once: the :class:`Decision` (the
    same object every time it recurs, so the policies' own per-decision caches hit), its
    reward-model features, its segment, q̂ for the model's current fit, and for each stateless
    candidate group its :class:`_Fixed` answer."""

    decision: Decision
    features: SparseRows
    segment: str | float | None
    q_hat: FloatArray | None = None
    q_fit: int | None = None
    fixed: dict[int, _Fixed] = field(default_factory=dict)


@dataclass(slots=True)
class _Fixed:
    """A stateless group's distribution π(·|x) for one decision, and q̂(x, π) = π · q̂ for the
    ``q_hat`` array it was computed with (recomputed only when the reward model's q̂ changes)."""

    dist: FloatArray
    q_hat: FloatArray | None = None
    q_policy: float = 0.0


def replay(
    rounds: Iterable[Round],
    candidates: Sequence[CandidateSpec],
    *,
    seed: int = 0,
    segment_by: str | None = None,
    reward_model: ProgressiveRidge | None = None,
    on_row: Callable[[], None] | None = None,
) -> ReplayLog:
    """Replay ``candidates`` over learned ``rounds`` in the given order; see the module docstring.

    Each candidate starts untrained with its own ``np.random.default_rng([seed, c])``.
    ``on_row`` is called after each round (a progress bar).

    Cost: each distinct (context, actions) text is decoded and featurized once (up to
    :data:`DECISION_CACHE` at a time); a stateless candidate (``uniform``, ``fixed``: its
    distribution depends on the decision alone, it neither learns nor draws) is asked once per
    distinct decision, and candidates with the same stateless configuration share the answer,
    its q̂(x_i, π) recomputed only when q̂ changes (at a refit). The log is read with only the
    columns a round needs (:func:`~evaluation.logdata.read_rounds`). The result is the same,
    to the last bit, as asking every candidate every round.
    """
    if len({c.name for c in candidates}) != len(candidates):
        raise CandidateError("candidate names must be distinct")
    live = [spec.create() for spec in candidates]
    rngs = [np.random.default_rng([seed, c]) for c in range(len(live))]
    learners = [c for c, policy in enumerate(live) if not isinstance(policy, StatelessPolicy)]
    groups: dict[tuple[str, str], int] = {}  # stateless configuration -> its group
    group_of = {c: groups.setdefault(_config_key(candidates[c]), len(groups))
                for c in range(len(live)) if c not in learners}
    first_of: dict[int, int] = {}  # group -> its first candidate, whose columns the others share
    same_as: dict[int, int] = {}
    for c, g in group_of.items():
        first = first_of.setdefault(g, c)
        if first != c:
            same_as[c] = first
    model = reward_model if reward_model is not None else ProgressiveRidge()
    out = _Builder(len(live))
    seen: dict[tuple[str, str], _Seen] = {}
    near_zero: dict[str, NDArray[np.bool_] | None] = {}
    # Per candidate asked (not sharing another's columns): (c, policy, stateless group or None,
    # the appends of its three columns).
    plan = [(c, policy, group_of.get(c), out.prob[c].append, out.q_policy[c].append,
             out.unsupported[c].append) for c, policy in enumerate(live) if c not in same_as]
    for context_text, actions_text, distribution, chosen, probability, logged_reward, variant in rounds:
        key = (context_text, actions_text)
        entry = seen.get(key)
        if entry is None:
            if len(seen) >= DECISION_CACHE:
                seen.clear()
            context = _decoded(context_text)
            decision = decision_from_json(context, _decoded(actions_text))
            segment = None if segment_by is None else segment_of(context, segment_by)
            entry = seen[key] = _Seen(decision, model.features(decision), segment)
        decision, reward = entry.decision, float(logged_reward)
        fit = model.fits
        if fit is None or entry.q_fit != fit:
            entry.q_hat, entry.q_fit = model.predict(entry.features), fit
        q_hat = entry.q_hat
        assert q_hat is not None
        mask = near_zero.get(distribution, False)
        if mask is False:
            if len(near_zero) >= DECISION_CACHE:
                near_zero.clear()
            below = np.asarray(_decoded(distribution)) < NEAR_ZERO
            mask = near_zero[distribution] = below if below.any() else None
        for c, policy, group, add_prob, add_q_policy, add_unsupported in plan:
            if group is None:
                dist = policy.distribution(decision, rngs[c])
                policy.update(decision, chosen, reward, probability)
                q_policy = float(dist @ q_hat)
            else:
                fixed = entry.fixed.get(group)
                if fixed is None:
                    fixed = entry.fixed[group] = _Fixed(policy.distribution(decision, rngs[c]))
                dist = fixed.dist
                if fixed.q_hat is not q_hat:
                    fixed.q_hat, fixed.q_policy = q_hat, float(dist @ q_hat)
                q_policy = fixed.q_policy
            add_prob(float(dist[chosen]))
            add_q_policy(q_policy)
            add_unsupported(0.0 if mask is None else float(dist[mask].sum()))
        model.learn(entry.features, chosen, reward)
        out.reward.append(reward)
        out.pscore.append(probability)
        out.q_logged.append(float(q_hat[chosen]))
        out.variant.append(out.code(out.variants, variant))
        if entry.segment is not None:
            out.add_segment(entry.segment)
        if on_row is not None:
            on_row()
    importance = tuple((0, ()) if not isinstance(policy, policies.Attributing)
                       else _importance(policy.importance(IMPORTANCE_TOP)) for policy in live)
    return replace(out.build(tuple(c.name for c in candidates), same_as), importance=importance)


def _importance(found: tuple[int, list[tuple[str, float]]]) -> Importance:
    return found[0], tuple(found[1])


def _config_key(spec: CandidateSpec) -> tuple[str, str]:
    policy, params = spec.configuration()
    return policy, json.dumps(params, sort_keys=True)


def _decoded(text: str) -> Any:
    return json.loads(text)
