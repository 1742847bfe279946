"""Progressive reward of every policy on scikit-learn's digits set turned into bandit feedback.

One pass over the 1797 images in a shuffled order per seed: the context is the 64 pixel values
divided by 16 in one namespace, the 10 actions are ``"0"``..``"9"`` with no features, and the
reward is 1 when the chosen action is the label, else 0. The action is sampled from the policy's
distribution with the run's generator, exactly as the server does. Progressive reward = the mean
reward over the pass; we print its mean ± standard deviation over the seeds.

    python -m bench.quality                      # every registered policy with its defaults
    python -m bench.quality --vw-search          # also the VW argument strings we compared
    python -m bench.quality --policy vw --params '{"args": "--cb_explore_adf -q sa"}'
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits

from arbiter.policies import POLICIES, Decision, Namespace, create

SEEDS = (0, 1, 2, 3, 4)
ACTIONS = tuple(str(i) for i in range(10))

TARGETS = {"linucb": 0.84, "lints": 0.84, "vw": 0.62}
"""Minimum mean progressive reward with the shipped defaults (from the issue)."""

VW_CANDIDATES = (
    "--cb_explore_adf --squarecb -q sa",
    "--cb_explore_adf --squarecb -q sa -l 5",
    "--cb_explore_adf --squarecb --gamma_scale 100 -q sa -l 5",
    "--cb_explore_adf --squarecb --gamma_scale 300 -q sa --ignore_linear s -l 10",
    "--cb_explore_adf --epsilon 0.02 -q sa -l 5",
    "--cb_explore_adf --epsilon 0.02 -q sa --ignore_linear s -l 10",
    "--cb_explore_adf --bag 5 --greedify -q sa -l 5",
    "--cb_explore_adf --cover 3 -q sa -l 1",
    "--cb_explore_adf --softmax --lambda 20 -q sa -l 5",
    "--cb_explore_adf --softmax --lambda 20 -q sa --ignore_linear s -l 10",
    "--cb_explore_adf --softmax --lambda 20 --epsilon 0.02 -q sa --ignore_linear s -l 10",
)
"""VW argument strings compared by ``--vw-search``: the stock reference points first, the
shipped default (``policies.vw.DEFAULT_ARGS``) last. See that constant for what we learned."""


Data = tuple[list[Decision], NDArray[np.int64]]
"""The digits decisions and their labels, shape ``(n,)``."""


def digits_decisions() -> Data:
    """One :class:`Decision` per digit image (in dataset order) and the labels, shape ``(n,)``."""
    data = load_digits()
    names = [f"p{i}" for i in range(data.data.shape[1])]
    decisions = [
        Decision(
            context=(Namespace("pixels", numbers=dict(zip(names, row / 16.0, strict=True))),),
            action_ids=ACTIONS,
            action_features=((),) * len(ACTIONS),
        )
        for row in data.data
    ]
    return decisions, data.target.astype(np.int64)


def progressive_reward(
    name: str,
    params: Mapping[str, Any],
    decisions: Sequence[Decision],
    labels: NDArray[np.int64],
    seed: int,
) -> float:
    """Mean reward of one pass over ``decisions`` in an order shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    policy = create(name, params)
    total = 0.0
    for i in rng.permutation(len(decisions)):
        decision = decisions[i]
        probabilities = policy.distribution(decision, rng)
        chosen = int(rng.choice(decision.size, p=probabilities))
        reward = float(chosen == labels[i])
        policy.update(decision, chosen, reward, float(probabilities[chosen]))
        total += reward
    return total / len(decisions)


def report(label: str, name: str, params: Mapping[str, Any], data: Data) -> float:
    """Run every seed, print one line ``label  mean ± std  (seconds)`` and return the mean."""
    start = time.perf_counter()
    decisions, labels = data
    rewards = [progressive_reward(name, params, decisions, labels, seed) for seed in SEEDS]
    mean, std = float(np.mean(rewards)), float(np.std(rewards, ddof=1))
    target = TARGETS.get(name) if not params else None
    verdict = "" if target is None else ("  ok" if mean >= target else f"  BELOW {target}")
    seconds = time.perf_counter() - start
    print(f"{label:<72} {mean:.4f} ± {std:.4f}  ({seconds:.1f} s){verdict}", flush=True)
    return mean


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", action="append", help="registry name (repeatable)")
    parser.add_argument("--params", default="{}", help="JSON hyperparameters for --policy")
    parser.add_argument("--vw-search", action="store_true", help="also run VW_CANDIDATES")
    options = parser.parse_args(argv)
    data = digits_decisions()
    params = json.loads(options.params)
    labels = data[1]
    best_single = np.bincount(labels).max() / len(labels)
    print(f"digits bandit: {len(labels)} decisions, 10 actions, seeds {SEEDS}")
    print(f"best single action's rate (the target of context-free `thompson`): {best_single:.4f}")
    for name in options.policy or sorted(POLICIES):
        policy_params = dict(params) if options.policy else {}
        if name == "fixed" and "action" not in policy_params:
            policy_params["action"] = "1"
        shown = f"{name} {json.dumps(policy_params)}" if policy_params else f"{name} (defaults)"
        report(shown, name, policy_params, data)
    if options.vw_search:
        for args in VW_CANDIDATES:
            report(f"vw {args}", "vw", {"args": args}, data)


if __name__ == "__main__":
    main()
