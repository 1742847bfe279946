"""The exploration floor's trade-off: online reward against how evaluable the log it writes is.

On ``bench.quality``'s digits bandit (1797 images, 10 actions, reward 1 for the label), a
logging policy — LinUCB with exploration floor ``epsilon`` — serves one shuffled pass per seed,
exactly as ``bench.quality`` does (its mean reward is the online reward). The log it writes
(the chosen action and its probability, the full distribution) is then replayed offline for
each candidate the way ``arbiter evaluate`` does (each candidate scores a round, then learns
from it), and we report the candidates' Kish effective sample size (Σw)²/Σw² as a share of the
rounds and their mass on actions logged with probability below ``evaluation.verdict.NEAR_ZERO``::

    python -m bench.evaluability                               # floors 0.01 0.05 0.1 0.2, 3 seeds
    python -m bench.evaluability --epsilon 0.01 --epsilon 0.3 --seeds 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from arbiter.evaluation.estimators import effective_sample_size
from arbiter.evaluation.verdict import NEAR_ZERO
from arbiter.policies import create
from bench.quality import digits_decisions

CANDIDATES: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "uniform": ("uniform", {}),
    "lints": ("lints", {}),
    "linucb a=1": ("linucb", {"alpha": 1.0}),
}
"""Candidates evaluated on each log: far from the logging policy (uniform), and two learners."""


def run(epsilon: float, seed: int) -> tuple[float, dict[str, tuple[float, float]]]:
    """Online reward of LinUCB(epsilon) and, per candidate, (ESS / n, unsupported share)."""
    decisions, labels = digits_decisions()
    rng = np.random.default_rng(seed)
    logger = create("linucb", {"epsilon": epsilon})
    candidates = {name: create(policy, params) for name, (policy, params) in CANDIDATES.items()}
    candidate_rngs = {name: np.random.default_rng([seed, c]) for c, name in enumerate(candidates)}
    weights: dict[str, list[float]] = {name: [] for name in candidates}
    unsupported: dict[str, float] = dict.fromkeys(candidates, 0.0)
    total = 0.0
    order = rng.permutation(len(decisions))
    for i in order:
        decision = decisions[i]
        logged = logger.distribution(decision, rng)
        chosen = int(rng.choice(decision.size, p=logged))
        reward = float(chosen == labels[i])
        logger.update(decision, chosen, reward, float(logged[chosen]))
        total += reward
        near_zero = logged < NEAR_ZERO
        for name, policy in candidates.items():
            dist = policy.distribution(decision, candidate_rngs[name])
            weights[name].append(float(dist[chosen] / logged[chosen]))
            unsupported[name] += float(dist[near_zero].sum())
            policy.update(decision, chosen, reward, float(logged[chosen]))
    n = len(order)
    return total / n, {name: (effective_sample_size(np.array(w)) / n, unsupported[name] / n)
                       for name, w in weights.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epsilon", type=float, action="append", help="LinUCB floors (repeatable)")
    parser.add_argument("--seeds", type=int, default=3)
    options = parser.parse_args(argv)
    floors = options.epsilon or [0.01, 0.05, 0.1, 0.2]
    header = "".join(f"{name + ' ESS/n':>18}{'unsupp.':>9}" for name in CANDIDATES)
    print(f"LinUCB logging on digits (1797 rounds), mean over {options.seeds} seeds")
    print(f"{'epsilon':>8}{'online reward':>16}{header}{'seconds':>9}")
    for epsilon in floors:
        started = time.perf_counter()
        runs = [run(epsilon, seed) for seed in range(options.seeds)]
        reward = np.mean([r for r, _ in runs])
        cells = "".join(
            f"{np.mean([c[name][0] for _, c in runs]):>18.3f}{np.mean([c[name][1] for _, c in runs]):>9.3f}"
            for name in CANDIDATES)
        print(f"{epsilon:>8g}{reward:>16.4f}{cells}{time.perf_counter() - started:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
