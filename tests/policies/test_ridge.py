"""Closed-form checks of the ridge core against direct linear algebra."""

from __future__ import annotations

import numpy as np
from conftest import decision

from arbiter.policies import Namespace, create
from arbiter.policies.base import Decision
from arbiter.policies.hybrid import HybridRidge
from arbiter.policies.linucb import LinUCB
from arbiter.policies.ridge import Design, RidgeModels

TOLERANCE = 1e-8


def dense_rows(policy: LinUCB, decisions: list[Decision]) -> list[np.ndarray]:
    """Each decision's design row for action 0, in the policy's final vocabulary order."""
    column = {key: i for i, key in enumerate(policy.vocabulary)}
    rows = []
    for d in decisions:
        row = np.zeros(len(column))
        row[0] = 1.0
        for ns in d.context:
            for name, value in ns.numbers.items():
                row[column[f"s|{ns.name}|{name}"]] += value
            for name, category in ns.categories.items():
                row[column[f"s|{ns.name}|{name}={category}"]] += 1.0
        for ns in d.action_features[0]:
            for name, value in ns.numbers.items():
                row[column[f"a|{ns.name}|{name}"]] += value
        rows.append(row)
    return rows


def direct_solve(rows: list[np.ndarray], rewards: list[float], l2: float) -> np.ndarray:
    x = np.array(rows)
    return np.linalg.solve(l2 * np.eye(x.shape[1]) + x.T @ x, x.T @ np.array(rewards))


def test_linucb_estimate_equals_direct_ridge_solve() -> None:
    rng = np.random.default_rng(0)
    policy = create("linucb", {"l2": 0.7})
    assert isinstance(policy, LinUCB)
    decisions = [
        decision(rng.random(5), ("a", "b"), segment=str(rng.integers(3)), price={"a": rng.random()})
        for _ in range(300)
    ]
    rewards = [float(rng.normal()) for _ in decisions]

    for d, r in zip(decisions, rewards, strict=True):
        policy.update(d, 0, r, 0.5)

    expected = direct_solve(dense_rows(policy, decisions), rewards, 0.7)
    np.testing.assert_allclose(policy.estimate("a"), expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(policy.estimate("b"), np.zeros_like(expected))


def test_sherman_morrison_inverse_matches_numpy_inverse_after_1000_updates() -> None:
    rng = np.random.default_rng(1)
    dim, l2 = 12, 1.5
    ridge = RidgeModels(l2)
    ridge.ensure_columns(dim)
    slot = int(ridge.slots(("a",))[0])
    a = l2 * np.eye(dim)

    for _ in range(1000):
        x = np.zeros(ridge.width)
        x[:dim] = rng.normal(size=dim)
        ridge.update(x, slot, float(rng.normal()))
        a += np.outer(x[:dim], x[:dim])

    np.testing.assert_allclose(ridge.inverse("a"), np.linalg.inv(a), rtol=0, atol=TOLERANCE)


def test_lazily_grown_vocabulary_gives_the_estimates_of_a_model_with_all_features() -> None:
    # Features appear over time: x0 from the start, x1 after 100 rounds, x2 after 200,
    # plus a category whose values keep appearing.
    rng = np.random.default_rng(2)
    decisions, rewards = [], []
    for t in range(300):
        numbers = {f"x{i}": float(rng.random()) for i in range(1 + t // 100)}
        context = (
            Namespace("user", numbers=numbers),
            Namespace("meta", categories={"city": f"c{rng.integers(1 + t // 30)}"}),
        )
        decisions.append(Decision(context, ("a",), ((),)))
        rewards.append(float(rng.normal()))
    lazy = create("linucb", {})
    assert isinstance(lazy, LinUCB)

    for d, r in zip(decisions, rewards, strict=True):
        lazy.update(d, 0, r, 1.0)

    rows = dense_rows(lazy, decisions)
    upfront = RidgeModels(lazy.l2)
    upfront.ensure_columns(len(rows[0]))  # every column exists before the first update
    slot = int(upfront.slots(("a",))[0])
    for row, r in zip(rows, rewards, strict=True):
        padded = np.zeros(upfront.width)
        padded[: len(row)] = row
        upfront.update(padded, slot, r)
    np.testing.assert_allclose(lazy.estimate("a"), upfront.estimate("a"), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(lazy.inverse("a"), upfront.inverse("a"), rtol=0, atol=TOLERANCE)


def test_linucb_distribution_is_the_floored_argmax_of_the_upper_confidence_bounds() -> None:
    rng = np.random.default_rng(3)
    policy = create("linucb", {"alpha": 0.5, "epsilon": 0.1})
    assert isinstance(policy, LinUCB)
    ids = ("a", "b", "c")
    for _ in range(50):
        d = decision(rng.random(2), ids)
        chosen = int(rng.integers(2))  # c is never played
        policy.update(d, chosen, float(rng.normal(loc=chosen)), 0.5)
    d = decision(rng.random(2), ids)
    x = dense_rows(policy, [d])[0]

    ucb = [x @ policy.estimate(a) + 0.5 * np.sqrt(x @ policy.inverse(a) @ x) for a in ids]
    p = policy.distribution(d, rng)

    expected = np.full(3, 0.1 / 3)
    expected[int(np.argmax(ucb))] += 0.9
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-12)


def test_hybrid_model_equals_one_joint_ridge_regression() -> None:
    # Hybrid LinUCB with z = x is ridge regression on phi = [x ; e_a (x) x].
    rng = np.random.default_rng(4)
    dim, l2, ids = 6, 0.8, ("a", "b", "c")
    ridge = HybridRidge(l2)
    ridge.ensure_columns(dim)
    slots = ridge.slots(ids)
    joint = l2 * np.eye(dim * (1 + len(ids)))
    target = np.zeros(len(joint))

    def phi(x: np.ndarray, j: int) -> np.ndarray:
        out = np.zeros(len(joint))
        out[:dim] = x
        out[dim * (1 + j) : dim * (2 + j)] = x
        return out

    for _ in range(400):
        j = int(rng.integers(len(ids)))
        x = np.zeros(ridge.width)
        x[:dim] = rng.normal(size=dim)
        reward = float(rng.normal(loc=x[0] * (j - 1)))
        ridge.update(x, int(slots[j]), reward)
        joint += np.outer(phi(x[:dim], j), phi(x[:dim], j))
        target += reward * phi(x[:dim], j)

    w = np.linalg.solve(joint, target)
    x = np.zeros(ridge.width)
    x[:dim] = rng.normal(size=dim)
    design = Design(x, slots)
    for j, action_id in enumerate(ids):
        coefficient = w[:dim] + w[dim * (1 + j) : dim * (2 + j)]
        np.testing.assert_allclose(ridge.estimate(action_id), coefficient, rtol=0, atol=TOLERANCE)
    expected_variance = [phi(x[:dim], j) @ np.linalg.solve(joint, phi(x[:dim], j)) for j in range(3)]
    np.testing.assert_allclose(ridge.variance(design), expected_variance, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(
        ridge.mean(design), [x[:dim] @ ridge.estimate(a) for a in ids], rtol=0, atol=TOLERANCE
    )
