"""Scoring never changes a policy: its state is a function of the learned events only.

Crash recovery rebuilds a model by replaying learned events; Choose calls (with features and
actions never learned from) interleave differently in every run, so they must not leave a trace.
"""

from __future__ import annotations

import numpy as np
import pytest

from arbiter.policies import POLICIES, Decision, Namespace, create

PARAMS = {"fixed": {"action": "a"}}


def decision(*actions: str, tier: str = "gold", price: float = 1.0) -> Decision:
    return Decision(
        context=(Namespace("user", numbers={"age": 0.3}, categories={"tier": tier}),),
        action_ids=actions,
        action_features=tuple((Namespace("item", numbers={"price": price}),) for _ in actions),
    )


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_distribution_on_unseen_features_and_actions_leaves_the_state_unchanged(name: str) -> None:
    policy = create(name, PARAMS.get(name, {}))
    policy.update(decision("a", "b"), 0, 1.0, 0.5)
    before = policy.to_bytes()

    policy.distribution(
        decision("a", "b", "new-action", tier="platinum", price=3.0), np.random.default_rng(0)
    )

    assert policy.to_bytes() == before
