"""Forgetting and drift: reward before and after a change in the world, alarm delay, false alarms.

The world: ``K = 10`` actions; each decision has a ``segment`` (one of 3, uniform) and 4 numeric
noise features. An action pays 1 with probability ``0.5`` (``--high``) if it is the segment's best action,
``0.05`` otherwise (a uniform policy earns ``0.095``). Three worlds:

- ``abrupt``: at the halfway decision every segment's best action moves to another action;
- ``gradual``: over the ``--ramp`` decisions after halfway the old best's 0.5 moves linearly to
  the new best;
- ``stationary``: no change.

Configurations (every one driven directly through ``registry.create``, ``distribution``, a
sampled action, ``update``): today's defaults (``reset_on_drift = false``, ``decay = 1``), the
new shipped defaults (Page-Hinkley reset on), and a tuned ``decay`` without the reset, for
``linucb`` and ``lints``. For each: mean reward per decision before and after the change (the
second half), the ratio, the decisions from the change to the first drift reset (alarm), and on
the stationary world the share of seeds with any alarm and the reward against today's defaults.

    python -m bench.drift [--decisions 3000] [--seeds 8] [--decay 0.95] [--high 0.5]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from arbiter.policies import Decision, Namespace, create
from arbiter.policies.drift import PageHinkley
from arbiter.policies.linear import DRIFT_DELTA, DRIFT_THRESHOLD, LinearPolicy

K, SEGMENTS, NOISE = 10, 3, 4
ACTIONS = tuple(f"a{k}" for k in range(K))
HIGH, LOW = 0.5, 0.05


@dataclass(frozen=True)
class Run:
    """One policy in one world with one seed: rewards per decision, the decisions where the
    drift monitor's Page-Hinkley test (server.drift, on the served rewards) raised its alarm,
    and those where the policy reset its models (``reset_on_drift``)."""

    rewards: np.ndarray
    alarms: list[int]
    resets: list[int]


def paying(world: str, t: int, n: int, ramp: int, segment: int,
           old: np.ndarray, new: np.ndarray, high: float) -> np.ndarray:
    """Probability of reward 1 of every action, shape ``(K,)``, at decision ``t`` of ``n``."""
    p = np.full(K, LOW)
    half = n // 2
    if world == "stationary" or t < half:
        share = 0.0
    elif world == "abrupt":
        share = 1.0
    else:
        share = min(1.0, (t - half) / ramp)
    p[old[segment]] += (high - LOW) * (1.0 - share)
    p[new[segment]] += (high - LOW) * share
    return p


def simulate(policy_name: str, params: dict[str, object], world: str, n: int, ramp: int,
             seed: int, high: float = HIGH) -> Run:
    """Drive one policy through ``n`` decisions of ``world`` (the world's draws depend only on
    ``seed``; the policy's on its own generator)."""
    world_rng = np.random.default_rng(seed)
    old = world_rng.permutation(K)[:SEGMENTS]
    new = (old + 1 + world_rng.integers(0, K - 1, size=SEGMENTS)) % K  # never the old best
    segments = world_rng.integers(0, SEGMENTS, size=n)
    noise = world_rng.random((n, NOISE))
    coins = world_rng.random(n)
    policy = create(policy_name, dict(params))
    assert isinstance(policy, LinearPolicy)
    rng = np.random.default_rng(seed + 1000)
    rewards = np.zeros(n)
    monitor = PageHinkley(DRIFT_DELTA, DRIFT_THRESHOLD)
    alarms: list[int] = []
    resets: list[int] = []
    for t in range(n):
        decision = Decision(
            context=(Namespace("user", numbers={f"n{i}": float(v) for i, v in enumerate(noise[t])},
                               categories={"segment": f"s{segments[t]}"}),),
            action_ids=ACTIONS, action_features=((),) * K)
        p = policy.distribution(decision, rng)
        chosen = int(rng.choice(K, p=p))
        reward = float(coins[t] < paying(world, t, n, ramp, int(segments[t]), old, new, high)[chosen])
        count = policy.resets
        policy.update(decision, chosen, reward, float(p[chosen]))
        if policy.resets > count:
            resets.append(t)
        if monitor.add(reward):
            monitor.restart()
            alarms.append(t)
        rewards[t] = reward
    return Run(rewards, alarms, resets)


def quiet_stream(seeds: int, n: int) -> tuple[int, int]:
    """(alarms, rewards) of the Page-Hinkley test alone on stationary Bernoulli(0.48) rewards."""
    alarms = 0
    for seed in range(seeds):
        test = PageHinkley(DRIFT_DELTA, DRIFT_THRESHOLD)
        for reward in (np.random.default_rng(seed).random(n) < 0.48).astype(float):
            if test.add(float(reward)):
                alarms += 1
                test.restart()
    return alarms, seeds * n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--ramp", type=int, default=500, help="length of the gradual change")
    parser.add_argument("--decay", type=float, default=0.95, help="the tuned decay (no reset)")
    parser.add_argument("--high", type=float, default=HIGH, help="what the best action pays")
    args = parser.parse_args()
    n, half = args.decisions, args.decisions // 2
    configs = {
        "today": {"reset_on_drift": False},
        "new defaults": {},
        f"decay {args.decay:g}": {"reset_on_drift": False, "decay": args.decay},
    }
    started = time.monotonic()
    print(f"{n} decisions per run, change at {half}, {args.seeds} seeds; uniform earns "
          f"{LOW + (args.high - LOW) / K:.3f}; reward per decision (mean over seeds)\n")
    print(f"{'policy':8} {'config':12} {'world':11} {'before':>7} {'after':>7} {'after/before':>12} "
          f"{'alarm delay (per seed)':>40} {'alarms':>7} {'resets':>7}")
    stationary: dict[tuple[str, str], float] = {}
    false_alarms = quiet_decisions = 0
    for policy_name in ("linucb", "lints"):
        for label, params in configs.items():
            for world in ("abrupt", "gradual", "stationary"):
                runs = [simulate(policy_name, params, world, n, args.ramp, seed, args.high)
                        for seed in range(args.seeds)]
                before = float(np.mean([r.rewards[:half].mean() for r in runs]))
                after = float(np.mean([r.rewards[half:].mean() for r in runs]))
                delays = [next((a - half for a in r.alarms if a >= half), None) for r in runs]
                alarms = sum(len(r.alarms) for r in runs)
                resets = sum(len(r.resets) for r in runs)
                shown = "-" if world == "stationary" else ",".join(
                    "none" if d is None else str(d) for d in delays)
                print(f"{policy_name:8} {label:12} {world:11} {before:7.3f} {after:7.3f} "
                      f"{after / before:12.2f} {shown:>40} {alarms:7d} {resets:7d}")
                if world == "stationary":
                    stationary[policy_name, label] = float(np.mean([r.rewards.mean() for r in runs]))
                    false_alarms += alarms
                    quiet_decisions += args.seeds * n
    print(f"\nfalse alarms on the stationary world: {false_alarms} in {quiet_decisions} decisions "
          f"({len(stationary) * args.seeds} runs)")
    alarms, rewards = quiet_stream(args.seeds * 10, 20_000)
    print(f"the test alone on stationary Bernoulli(0.48) rewards: {alarms} alarms in {rewards} "
          f"({args.seeds * 10} streams of 20000)")
    print("\nstationary world, whole-run reward against today's defaults:")
    for (policy_name, label), value in stationary.items():
        base = stationary[policy_name, "today"]
        print(f"  {policy_name:8} {label:12} {value:.4f}  ({(value / base - 1) * 100:+.2f}%)")
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
