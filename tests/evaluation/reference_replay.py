"""The replay as first written, one plain loop: the reference the optimized replay must match.

Every logged row is decoded into a fresh :class:`Decision`, featurized and predicted by the
progressive reward model, and every candidate (stateless or not) is asked for its distribution
and then updated — no caching, no sharing between candidates. ``evaluation.replay.replay`` must
give the same columns (the tests compare to 1e-12).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from arbiter.evaluation.logdata import LoggedRow
from arbiter.evaluation.progressive_model import ProgressiveRidge
from arbiter.evaluation.replay import (
    IMPORTANCE_TOP,
    MAX_SEGMENTS,
    OTHER_SEGMENT,
    CandidateSpec,
    ReplayLog,
    segment_of,
)
from arbiter.evaluation.verdict import NEAR_ZERO
from arbiter.log.codec import decision_from_json
from arbiter.policies import Attributing


def reference_replay(rows: Iterable[LoggedRow], candidates: Sequence[CandidateSpec], *, seed: int = 0,
                     segment_by: str | None = None) -> ReplayLog:
    live = [spec.create() for spec in candidates]
    rngs = [np.random.default_rng([seed, c]) for c in range(len(live))]
    model = ProgressiveRidge()
    reward, pscore, q_logged, variant, segment = [], [], [], [], []
    prob: list[list[float]] = [[] for _ in live]
    q_policy: list[list[float]] = [[] for _ in live]
    unsupported: list[list[float]] = [[] for _ in live]
    variants: dict[str, int] = {}
    segments: dict[str, int] = {}
    for row in rows:
        assert row.reward is not None
        decision = decision_from_json(row.context, row.actions)
        features = model.features(decision)
        q_hat = model.predict(features)
        near_zero = np.asarray(row.distribution) < NEAR_ZERO
        for c, policy in enumerate(live):
            dist = policy.distribution(decision, rngs[c])
            prob[c].append(float(dist[row.chosen_index]))
            q_policy[c].append(float(dist @ q_hat))
            unsupported[c].append(float(dist[near_zero].sum()))
            policy.update(decision, row.chosen_index, float(row.reward), row.probability)
        model.learn(features, row.chosen_index, float(row.reward))
        reward.append(float(row.reward))
        pscore.append(row.probability)
        q_logged.append(float(q_hat[row.chosen_index]))
        variant.append(variants.setdefault(row.variant, len(variants)))
        if segment_by is not None:
            value = segment_of(row.context, segment_by)
            assert isinstance(value, str), "the reference segments by categories only"
            if value not in segments and len(segments) >= MAX_SEGMENTS:
                value = OTHER_SEGMENT
            segment.append(segments.setdefault(value, len(segments)))

    importance: list[tuple[int, tuple[tuple[str, float], ...]]] = []
    for policy in live:  # each replayed model's own figures
        n, top = policy.importance(IMPORTANCE_TOP) if isinstance(policy, Attributing) else (0, [])
        importance.append((n, tuple(top)))

    def floats(values: list[float]) -> np.ndarray:
        return np.array(values, dtype=np.float64)

    return ReplayLog(
        names=tuple(c.name for c in candidates), reward=floats(reward), pscore=floats(pscore),
        q_logged=floats(q_logged), prob=tuple(floats(p) for p in prob),
        q_policy=tuple(floats(q) for q in q_policy), unsupported=tuple(floats(u) for u in unsupported),
        variant=np.array(variant, dtype=np.intp), variants=tuple(variants),
        segment=np.array(segment, dtype=np.intp), segments=tuple(segments),
        importance=tuple(importance),
    )
