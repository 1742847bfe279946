"""Scoring is exact and leaves no trace: unseen features and actions are scored at the prior."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import decision

from arbiter.policies import Decision, Namespace, create
from arbiter.policies.linear import LinearPolicy

LINEAR = [
    ("linucb", {}),
    ("linucb", {"hybrid": True}),
    ("lints", {}),
    ("epsilon_greedy", {"epsilon": 0.0}),
]


def with_unseen_parts(x: np.ndarray) -> Decision:
    """A decision with a new context feature, a new category, a new action and new features."""
    base = decision(x, ("a0", "a1", "brand-new"), segment="mobile", price={"a1": 4.0})
    extra = Namespace("device", numbers={"battery": 0.3}, categories={"os": "x"})
    return Decision((*base.context, extra), base.action_ids, base.action_features)


@pytest.mark.parametrize(("name", "params"), LINEAR, ids=lambda v: str(v))
def test_scoring_unseen_parts_equals_scoring_after_growing_them(name: str, params: dict[str, object]) -> None:
    policy = create(name, params)
    assert isinstance(policy, LinearPolicy)
    rng = np.random.default_rng(0)
    for _ in range(100):
        d = decision(rng.random(3), ("a0", "a1"))
        policy.update(d, int(rng.integers(2)), float(rng.random()), 0.5)
    d = with_unseen_parts(rng.random(3))
    grown = copy.deepcopy(policy)
    grown._design(d, learn=True)  # what learning would add: columns and a model for "brand-new"

    scored = policy.distribution(d, np.random.default_rng(1))

    np.testing.assert_allclose(scored, grown.distribution(d, np.random.default_rng(1)), rtol=0, atol=1e-12)
    assert len(policy.vocabulary) < len(grown.vocabulary)


def test_vw_scoring_does_not_change_what_it_learns() -> None:
    # The same learned events give the same distributions with or without extra scoring in
    # between (test_pure_fold checks the serialized state as well).
    quiet, chatty = create("vw", {}), create("vw", {})
    rng = np.random.default_rng(0)
    for _ in range(100):
        d = decision(rng.random(3), ("a0", "a1", "a2"))
        chatty.distribution(with_unseen_parts(rng.random(3)), np.random.default_rng(0))
        p = quiet.distribution(d, np.random.default_rng(0))
        np.testing.assert_array_equal(chatty.distribution(d, np.random.default_rng(0)), p)
        chosen, reward = int(rng.integers(3)), float(rng.random())
        for policy in (quiet, chatty):
            policy.update(d, chosen, reward, float(p[chosen]))
