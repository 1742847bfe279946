"""Defence in depth, over every registered policy: finite but extreme rewards and feature values
never make a policy's state non-finite, an update it refuses changes nothing, and every
distribution stays finite, non-negative and summing to 1."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import BASELINES, PARAMS, VARIANTS, Round, decision
from test_contract import assert_valid, play

from arbiter.policies import POLICIES, Decision, Namespace, Policy, create, restore
from arbiter.policies.serialize import load
from arbiter.policies.vw import VowpalWabbit

CONFIGS = [(name, PARAMS.get(name, {})) for name in sorted(POLICIES)] + VARIANTS
IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in CONFIGS]
LEARNERS = [pytest.param(*c, id=i) for c, i in zip(CONFIGS, IDS, strict=True) if c[0] not in BASELINES]

EXTREMES = [  # (reward, feature value): finite, each enough to overflow something
    (1e308, 1.0), (-1e308, 0.5), (1.7e308, 1.0), (1e300, 1.0), (1e155, 1.0), (1e39, 1.0),
    (1e20, 1.0), (1.0, 1e308), (1.0, -1e308), (1.0, 1e160), (1.0, 1e30), (1.0, 1e20),
    (1e155, 1e155), (-1e200, 1e200), (0.5, 5e-324), (1e-300, 1e-300),
]

Rounds = Callable[..., Iterator[Round]]


def extreme_decision(value: float, ids: tuple[str, ...] = ("a0", "a1", "a2")) -> Decision:
    """Every number of the context and of each action's features is ``value``; new names too."""
    return Decision(
        context=(Namespace("user", numbers={"x0": value, "huge": value},
                           categories={"segment": "web"}),),
        action_ids=ids,
        action_features=tuple((Namespace("item", numbers={"price": value}),) for _ in ids))


def assert_finite_state(policy: Policy) -> None:
    """Every number of the policy's snapshot is finite (VW: every weight and its state)."""
    snapshot = load(policy.to_bytes(), policy.name)
    for name, array in snapshot.arrays.items():
        if array.dtype.kind == "f":
            assert np.isfinite(array).all(), name
    assert _finite_json(snapshot.state)
    if isinstance(policy, VowpalWabbit):
        assert np.isfinite(policy._workspace.weights()).all()


def _finite_json(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_json(v) for v in value)
    return True


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_extreme_values_never_make_the_state_non_finite_and_a_skipped_update_changes_nothing(
        name: str, params: dict[str, object], rounds: Rounds) -> None:
    policy, rng = create(name, params), np.random.default_rng(0)
    play(policy, rounds(1, 50), rng)
    skipped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float32 casts of huge values
        for reward, value in EXTREMES:
            poisoned = extreme_decision(value)
            p = policy.distribution(poisoned, rng)
            assert_valid(p, 3)
            before = policy.to_bytes()
            try:
                policy.update(poisoned, 1, reward, float(p[1]))
            except ValueError:
                skipped += 1
                assert policy.to_bytes() == before, "a skipped update changed the state"
            assert_finite_state(policy)
            assert_valid(policy.distribution(poisoned, rng), 3)
            assert_valid(policy.distribution(decision(np.full(4, 0.5), ("a0", "a1", "new")), rng), 3)
    # ... and it goes on learning from ordinary events, restorable from its snapshot.
    play(policy, rounds(2, 50), rng)
    assert_finite_state(policy)
    restored = restore(name, policy.to_bytes())
    for r in rounds(3, 5):
        assert_valid(restored.distribution(r.decision, rng), 4)
    if name not in BASELINES:
        assert skipped > 0  # some of these cannot be learned by any float arithmetic


@pytest.mark.parametrize(("name", "params"), LEARNERS)
def test_a_skipped_update_is_the_same_as_no_update(
        name: str, params: dict[str, object], rounds: Rounds) -> None:
    """What a replay relies on: skipping leaves exactly the model that never saw the event,
    including the features and actions the event would have added."""
    clean, poisoned = create(name, params), create(name, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for step, r in enumerate(rounds(4, 60)):
            p = clean.distribution(r.decision, np.random.default_rng(step))
            clean.update(r.decision, 0, 1.0, float(p[0]))
            poisoned.update(r.decision, 0, 1.0, float(p[0]))
            if step % 10 == 0:
                with pytest.raises(ValueError):
                    poisoned.update(extreme_decision(1e200, (f"new{step}", "a1", "a2")), 0,
                                    1e200, 0.5)
    assert poisoned.to_bytes() == clean.to_bytes()
