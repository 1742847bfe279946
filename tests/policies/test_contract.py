"""The contract every registered policy honours, run over the whole registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from conftest import BASELINES, PARAMS, VARIANTS, Round, decision

from arbiter.policies import POLICIES, Policy, create, restore

CONFIGS = [(name, PARAMS.get(name, {})) for name in sorted(POLICIES)] + VARIANTS
IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in CONFIGS]
LEARNERS = [pytest.param(*c, id=i) for c, i in zip(CONFIGS, IDS, strict=True) if c[0] not in BASELINES]

Rounds = Callable[..., Iterator[Round]]


def play(policy: Policy, rounds: Iterator[Round], rng: np.random.Generator) -> list[float]:
    """Run the server's loop: distribution → sample → Bernoulli reward → update. Rewards."""
    rewards = []
    for r in rounds:
        p = policy.distribution(r.decision, rng)
        chosen = int(rng.choice(len(p), p=p))
        reward = float(rng.random() < r.success[chosen])
        policy.update(r.decision, chosen, reward, float(p[chosen]))
        rewards.append(reward)
    return rewards


def assert_valid(p: np.ndarray, k: int) -> None:
    assert p.shape == (k,)
    assert p.dtype == np.float64
    assert (p >= 0).all()
    assert abs(p.sum() - 1.0) <= 1e-9


def test_registry_names_are_the_contract() -> None:
    assert set(POLICIES) == {
        "linucb", "lints", "thompson", "vw", "epsilon_greedy", "uniform", "fixed"
    }  # fmt: skip


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_distribution_is_valid_over_exactly_the_offered_actions(name: str, params: dict[str, object]) -> None:
    policy, rng = create(name, params), np.random.default_rng(0)
    feature_rng = np.random.default_rng(1)
    for k in (1, 2, 5, 9):
        ids = tuple(f"a{j}" for j in range(k))
        d = decision(feature_rng.random(3), ids, price={ids[0]: 9.5})
        p = policy.distribution(d, rng)
        assert_valid(p, k)
        policy.update(d, k - 1, 1.0, float(p[k - 1]))
        assert_valid(policy.distribution(d, rng), k)


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_same_seed_gives_same_decisions(name: str, params: dict[str, object], rounds: Rounds) -> None:
    first = play(create(name, params), rounds(3, 200), np.random.default_rng(7))
    second = play(create(name, params), rounds(3, 200), np.random.default_rng(7))
    assert first == second


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_snapshot_restores_identical_behaviour(name: str, params: dict[str, object], rounds: Rounds) -> None:
    original = create(name, params)
    play(original, rounds(4, 150), np.random.default_rng(1))
    data = original.to_bytes()

    restored = restore(name, data)

    assert original.to_bytes() == data, "to_bytes must be deterministic"
    assert restored.to_bytes() == data
    for r in rounds(5, 20):
        np.testing.assert_array_equal(
            restored.distribution(r.decision, np.random.default_rng(2)),
            original.distribution(r.decision, np.random.default_rng(2)),
        )
    play(original, rounds(6, 100), np.random.default_rng(3))
    play(restored, rounds(6, 100), np.random.default_rng(3))
    assert restored.to_bytes() == original.to_bytes()


@pytest.mark.parametrize(("name", "params"), LEARNERS)
def test_beats_uniform_on_a_linear_problem(name: str, params: dict[str, object], rounds: Rounds) -> None:
    steps = 1500
    uniform_value = float(np.mean([r.success.mean() for r in rounds(11, steps)]))

    rewards = np.array(play(create(name, params), rounds(11, steps), np.random.default_rng(12)))

    # Under H0 "no better than uniform" the mean reward exceeds uniform's expected value by
    # more than 3 standard errors with probability ~0.1%.
    standard_error = rewards.std(ddof=1) / np.sqrt(steps)
    assert rewards.mean() - uniform_value > 3 * standard_error


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_new_and_vanished_actions(name: str, params: dict[str, object], rounds: Rounds) -> None:
    policy, rng = create(name, params), np.random.default_rng(0)
    play(policy, rounds(8, 600), rng)  # a0..a3; a3 is best on average
    x = np.full(4, 0.5)

    # a1 and a2 vanish, a brand-new action appears, the order changes.
    offered = ("new", "a0", "a3")
    p = policy.distribution(decision(x, offered), rng)
    assert_valid(p, 3)
    policy.update(decision(x, offered), 0, 0.0, float(p[0]))
    assert_valid(policy.distribution(decision(x, ("a1",)), rng), 1)
    p = policy.distribution(decision(x, ("a3", "a0")), rng)

    if name not in BASELINES:  # learners remember a3 (the better one here) across requests
        assert p[0] > p[1]
