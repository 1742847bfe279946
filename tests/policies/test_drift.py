"""Forgetting (``decay``) and the drift reset of the linear policies; the Page-Hinkley test.

The snapshot round trip and replay equality of ``decay < 1`` and of drift resets are in
test_pure_fold.py (the configurations of conftest.VARIANTS and DRIFT_VARIANTS there).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import decision

from arbiter.policies import PolicyConfigError, create, restore
from arbiter.policies.drift import PageHinkley
from arbiter.policies.linear import DRIFT_DELTA, DRIFT_THRESHOLD, LinearPolicy

ACTIONS = ("a", "b", "c")


def linear(name: str, params: dict[str, object]) -> LinearPolicy:
    policy = create(name, params)
    assert isinstance(policy, LinearPolicy)
    return policy


@pytest.mark.parametrize("name", ["linucb", "lints"])
@pytest.mark.parametrize("decay", [0.5, 0.9, 0.99])
def test_decay_is_the_discounted_ridge_regression(name: str, decay: float) -> None:
    """After the updates 1..n of an action: A = l2 I + sum g^(n-i) z_i z_i^T, b = sum g^(n-i) r_i z_i."""
    policy = linear(name, {"decay": decay, "reset_on_drift": False})
    rng = np.random.default_rng(4)
    rows: dict[str, list[tuple[np.ndarray, float]]] = {a: [] for a in ACTIONS}
    for _ in range(300):
        x = rng.random(3)
        chosen = int(rng.integers(3))
        reward = float(rng.normal(x[0] - chosen, 0.5))
        policy.update(decision(x, ACTIONS), chosen, reward, 1 / 3)
        rows[ACTIONS[chosen]].append((np.array([1.0, *x, 1.0]), reward))
    assert policy.vocabulary == ["\x00intercept", "s|user|x0", "s|user|x1", "s|user|x2",
                                 "s|meta|segment=web"]  # the columns of z above
    for action, seen in rows.items():
        n = len(seen)
        a, b = policy.l2 * np.eye(5), np.zeros(5)
        for i, (z, r) in enumerate(seen, 1):
            a += decay ** (n - i) * np.outer(z, z)
            b += decay ** (n - i) * r * z
        np.testing.assert_allclose(policy.inverse(action), np.linalg.inv(a), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(policy.estimate(action), np.linalg.solve(a, b), rtol=1e-8, atol=1e-12)


def test_decay_forgets_what_no_longer_holds_and_one_keeps_it() -> None:
    """An action paid 1 for 200 updates, then 0 for 50: with g = 0.9 the estimate is near 0
    (the old evidence weighs 0.9^50 = 0.5%), with g = 1 it is still 200/250 = 0.8."""
    x = decision(np.array([]), ("a",))
    estimates = {}
    for decay in (0.9, 1.0):
        policy = linear("linucb", {"decay": decay, "reset_on_drift": False})
        for t in range(250):
            policy.update(x, 0, 1.0 if t < 200 else 0.0, 1.0)
        z = np.ones(len(policy.vocabulary))
        estimates[decay] = float(z @ policy.estimate("a"))
    assert estimates[0.9] < 0.01
    assert estimates[1.0] == pytest.approx(200 / (250 + 0.5), rel=1e-9)  # 2 columns, l2 = 1: 2 z z^T + I


@pytest.mark.parametrize("params", [{"decay": 0.0}, {"decay": 1.5}, {"decay": -0.1},
                                    {"decay": 0.9, "hybrid": True}, {"drift_threshold": 0},
                                    {"drift_delta": -1}, {"reset_on_drift": 1}])
def test_bad_forgetting_parameters_are_refused_naming_the_field(params: dict[str, object]) -> None:
    field = next(k for k in params if k != "hybrid")
    with pytest.raises(PolicyConfigError, match=f"`{field}`"):
        create("linucb", params)


def shifted_stream(seed: int, before: int, after: int, drop: float) -> np.ndarray:
    """Unit-variance normal rewards whose mean drops by ``drop`` after ``before`` of them."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, 1.0, before), rng.normal(-drop, 1.0, after)])


def alarm_at(test: PageHinkley, rewards: np.ndarray) -> int | None:
    """Index of the reward that raises the alarm, or None."""
    return next((t for t, r in enumerate(rewards) if test.add(float(r))), None)


@pytest.mark.parametrize("seed", range(10))
def test_page_hinkley_fires_within_its_bound_after_an_abrupt_drop(seed: int) -> None:
    """A drop of D standard deviations: U falls by at least D/2 / sqrt(1 + D^2/4) - delta per
    reward in expectation (the running sd includes the mixture); its noise over n rewards has sd
    about sqrt(n), so the alarm comes by the least n with n * fall >= threshold + 4 sqrt(n)."""
    before, drop = 2000, 1.0
    fall = drop / 2 / math.sqrt(1 + drop**2 / 4) - DRIFT_DELTA
    bound = next(n for n in range(1, before) if n * fall >= DRIFT_THRESHOLD + 4 * math.sqrt(n))
    t = alarm_at(PageHinkley(DRIFT_DELTA, DRIFT_THRESHOLD), shifted_stream(seed, before, before, drop))
    assert t is not None and before <= t <= before + bound, (t, bound)


@pytest.mark.parametrize("seed", range(10))
def test_page_hinkley_stays_quiet_on_a_stationary_stream(seed: int) -> None:
    """Mean run length to a false alarm, for unit-variance rewards, is about
    (exp(2 delta threshold) - 2 delta threshold - 1) / (2 delta^2) = 1.1M rewards at the defaults;
    so 20k stationary Bernoulli rewards, standardized by the test, raise none (p ~ 2% each)."""
    rewards = (np.random.default_rng(seed).random(20_000) < 0.3).astype(float)
    assert alarm_at(PageHinkley(DRIFT_DELTA, DRIFT_THRESHOLD), rewards) is None


def test_page_hinkley_ignores_a_rise_and_survives_an_overflowing_reward() -> None:
    test = PageHinkley(DRIFT_DELTA, DRIFT_THRESHOLD)
    assert alarm_at(test, np.linspace(0.0, 100.0, 5000)) is None
    state = test.state()
    assert not test.add(1e308) and test.state() == state  # passed over, still finite
    assert PageHinkley.from_state(DRIFT_DELTA, DRIFT_THRESHOLD, state) == test


@pytest.mark.parametrize("name", ["linucb", "lints"])
def test_a_drop_in_rewards_resets_the_models_once_and_the_snapshot_keeps_it(name: str) -> None:
    """Action a pays 1 then 0: the shipped defaults reset every model to the prior (estimates 0)
    within the Page-Hinkley bound, once; without reset_on_drift nothing is reset."""
    x = decision(np.array([0.5]), ("a", "b"))
    for reset in (True, False):
        policy = linear(name, {"reset_on_drift": reset})
        for _ in range(500):
            policy.update(x, 0, float(np.random.default_rng(0).random() < 0.9), 1.0)
        resets_at = []
        for t in range(300):
            policy.update(x, 0, 0.0, 1.0)
            if policy.resets > len(resets_at):
                resets_at.append(t)
        if not reset:
            assert policy.resets == 0
            continue
        assert len(resets_at) == 1 and resets_at[0] < 150, resets_at
        copy = restore(name, policy.to_bytes())
        assert isinstance(copy, LinearPolicy) and copy.resets == 1
        assert copy.to_bytes() == policy.to_bytes()
        # after the reset it learned only the zeros since: estimate far below the old 0.9
        assert float(np.ones(len(policy.vocabulary)) @ policy.estimate("a")) < 0.05
