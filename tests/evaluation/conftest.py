"""Synthetic bandit logs whose true policy values are exactly computable.

A context x is one of C discrete values with known probabilities; rewards are Bernoulli with a
known mean table mu[x, a]; the logging policy pi_0[x, :] and the evaluated policy pi[x, :] are
fixed tables. So V(pi) = sum_x p(x) sum_a pi[x, a] mu[x, a] exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

CONTEXT_PROBS = np.array([0.4, 0.3, 0.2, 0.1])
MEAN_REWARD = np.array(  # mu[x, a]
    [
        [0.10, 0.50, 0.30],
        [0.60, 0.20, 0.40],
        [0.30, 0.30, 0.80],
        [0.90, 0.10, 0.50],
    ]
)
LOGGING_POLICY = np.array(  # pi_0[x, a]: explores every action
    [
        [0.50, 0.25, 0.25],
        [0.20, 0.60, 0.20],
        [0.40, 0.40, 0.20],
        [0.10, 0.30, 0.60],
    ]
)
TARGET_POLICY = np.array(  # pi[x, a]: mostly the best action
    [
        [0.05, 0.90, 0.05],
        [0.80, 0.10, 0.10],
        [0.10, 0.10, 0.80],
        [0.70, 0.00, 0.30],
    ]
)


def policy_value(policy: NDArray[np.float64]) -> float:
    """The exact expected reward per round of ``policy`` (C, K) in this environment."""
    return float(CONTEXT_PROBS @ np.sum(policy * MEAN_REWARD, axis=1))


@dataclass(frozen=True)
class SyntheticLog:
    context: NDArray[np.float64]  # (n, C) one-hot of the context
    reward: NDArray[np.float64]  # (n,)
    action: NDArray[np.int64]  # (n,)
    pscore: NDArray[np.float64]  # (n,)
    action_dist: NDArray[np.float64]  # (n, K): the target policy's distribution
    true_rewards: NDArray[np.float64]  # (n, K): mu[x_i, :], a perfect reward model
    truth: float  # V(target policy)

    def inputs(self) -> dict[str, NDArray[np.float64] | NDArray[np.int64]]:
        return {
            "reward": self.reward,
            "action": self.action,
            "pscore": self.pscore,
            "action_dist": self.action_dist,
        }


def simulate(seed: int, n: int) -> SyntheticLog:
    rng = np.random.default_rng(seed)
    x = rng.choice(len(CONTEXT_PROBS), size=n, p=CONTEXT_PROBS)
    cumulative = LOGGING_POLICY[x].cumsum(axis=1)
    action = (rng.random((n, 1)) > cumulative).sum(axis=1).astype(np.int64)
    reward = (rng.random(n) < MEAN_REWARD[x, action]).astype(np.float64)
    return SyntheticLog(
        context=np.eye(len(CONTEXT_PROBS))[x],
        reward=reward,
        action=action,
        pscore=LOGGING_POLICY[x, action],
        action_dist=TARGET_POLICY[x],
        true_rewards=MEAN_REWARD[x],
        truth=policy_value(TARGET_POLICY),
    )


@pytest.fixture
def make_log() -> Callable[[int, int], SyntheticLog]:
    """``make_log(seed, n)``: n logged rounds of the synthetic environment."""
    return simulate
