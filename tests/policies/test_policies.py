"""Behaviour specific to single policies and the exploration helpers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import decision

from arbiter.policies import create
from arbiter.policies.explore import argmax_frequencies, greedy_with_floor
from arbiter.policies.thompson import BetaThompson

X = np.array([0.3, 0.7])


def test_greedy_with_floor_splits_ties_evenly() -> None:
    p = greedy_with_floor(np.array([1.0, 3.0, 3.0, 0.0]), 0.2)
    np.testing.assert_allclose(p, [0.05, 0.45, 0.45, 0.05], rtol=0, atol=1e-15)


def test_argmax_frequencies_count_winners_and_split_tied_rows() -> None:
    draws = np.array([[0.0, 1.0, 0.5], [2.0, 1.0, 2.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(argmax_frequencies(draws), [0.375, 0.25, 0.375])
    np.testing.assert_allclose(argmax_frequencies(draws[[0, 2, 3]]), [1 / 3, 1 / 3, 1 / 3])


def test_linucb_with_no_history_splits_evenly_and_epsilon_zero_is_allowed() -> None:
    policy = create("linucb", {"epsilon": 0})
    p = policy.distribution(decision(X, ("a", "b", "c")), np.random.default_rng(0))
    np.testing.assert_allclose(p, [1 / 3] * 3)


def test_lints_probabilities_are_multiples_of_one_over_m() -> None:
    policy = create("lints", {"samples": 8})
    d = decision(X, ("a", "b", "c"))
    policy.update(d, 0, 1.0, 0.5)
    p = policy.distribution(d, np.random.default_rng(0))
    np.testing.assert_allclose(p * 8, np.round(p * 8), rtol=0, atol=1e-12)


def test_fixed_puts_the_floor_on_every_action_and_the_rest_on_its_action() -> None:
    policy = create("fixed", {"action": "b", "floor": 0.3})
    p = policy.distribution(decision(X, ("a", "b", "c")), np.random.default_rng(0))
    np.testing.assert_allclose(p, [0.1, 0.8, 0.1])


def test_fixed_falls_back_to_uniform_when_its_action_is_not_offered() -> None:
    policy = create("fixed", {"action": "z", "floor": 0.3})
    p = policy.distribution(decision(X, ("a", "b")), np.random.default_rng(0))
    np.testing.assert_allclose(p, [0.5, 0.5])


def test_thompson_learns_fractional_rewards_as_partial_successes() -> None:
    policy = create("thompson", {})
    assert isinstance(policy, BetaThompson)
    d = decision(X, ("a", "b"))
    for reward in (0.25, 0.75, 1.0):
        policy.update(d, 0, reward, 0.5)
    # Beta(1 + 2.0, 1 + 1.0)
    assert policy.mean("a") == pytest.approx(3.0 / 5.0)
    assert policy.mean("b") == pytest.approx(0.5)


def test_thompson_rejects_rewards_outside_0_1() -> None:
    policy = create("thompson", {})
    with pytest.raises(ValueError, match=r"`reward` must be in \[0, 1\]"):
        policy.update(decision(X, ("a",)), 0, 1.5, 1.0)


def test_thompson_propensity_matches_the_argmax_probability() -> None:
    # Two arms, Beta(2, 1) vs Beta(1, 1): P(first wins) = 2/3 exactly.
    samples = 20_000
    policy = create("thompson", {"samples": samples})
    d = decision(X, ("a", "b"))
    policy.update(d, 0, 1.0, 0.5)

    p = policy.distribution(d, np.random.default_rng(0))

    standard_error = np.sqrt((2 / 3) * (1 / 3) / samples)
    assert abs(p[0] - 2 / 3) < 4 * standard_error


def test_vw_learns_with_cost_minus_reward() -> None:
    policy = create("vw", {"args": "--cb_explore_adf --epsilon 0.1 -q sa"})
    d = decision(X, ("a", "b"))
    for _ in range(50):
        policy.update(d, 1, 1.0, 0.5)
        policy.update(d, 0, 0.0, 0.5)
    p = policy.distribution(d, np.random.default_rng(0))
    np.testing.assert_allclose(p, [0.05, 0.95], rtol=0, atol=1e-6)


def test_vw_rejects_an_invalid_logged_probability() -> None:
    policy = create("vw", {})
    with pytest.raises(ValueError, match="`probability` must be in"):
        policy.update(decision(X, ("a",)), 0, 1.0, 0.0)
