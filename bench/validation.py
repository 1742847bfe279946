"""Validation cost: ``convert.choose_input`` per Choose (and the distribution of a LinUCB policy,
which every Choose computes), on the load bench's request shape (10 actions, a context of 10
numbers and 5 categories, 3 numbers and 2 categories per action). Run it from two checkouts to
compare builds side by side: ``python -m bench.validation`` (prints microseconds per call)."""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from arbiter.policies import create
from arbiter.server import convert
from arbiter.v1 import decision_pb2 as pb

ACTIONS, CONTEXT_NUMBERS, CONTEXT_CATEGORIES, ACTION_NUMBERS, ACTION_CATEGORIES = 10, 10, 5, 3, 2
POOL = 2000


def requests(seed: int = 0) -> list[pb.ChooseRequest]:
    rng = np.random.default_rng(seed)

    def namespace(name: str, numbers: int, categories: int) -> pb.Namespace:
        return pb.Namespace(
            name=name, numbers={f"n{i}": float(v) for i, v in enumerate(rng.normal(size=numbers))},
            categories={f"c{i}": f"v{v}" for i, v in enumerate(rng.integers(4, size=categories))})

    return [pb.ChooseRequest(
        experiment="homepage", unit_id=f"unit-{rng.integers(1_000_000)}",
        context=[namespace("user", CONTEXT_NUMBERS, CONTEXT_CATEGORIES)],
        actions=[pb.Action(id=f"action-{k}", features=[namespace("item", ACTION_NUMBERS,
                                                                 ACTION_CATEGORIES)])
                 for k in range(ACTIONS)]) for _ in range(POOL)]


def per_call(run: object, items: list[object], rounds: int = 15) -> tuple[float, float]:
    """Median and minimum over ``rounds`` of CPU microseconds per call (process time: other
    processes on a busy machine do not inflate it)."""
    timings = []
    for _ in range(rounds):
        started = time.process_time()
        for item in items:
            run(item)  # type: ignore[operator]
        timings.append((time.process_time() - started) / len(items) * 1e6)
    return statistics.median(timings), min(timings)


def main() -> int:
    pool = requests()
    inputs = [convert.choose_input(r) for r in pool]
    median, best = per_call(convert.choose_input, pool)  # type: ignore[arg-type]
    print(f"convert.choose_input   median {median:6.2f} us   min {best:6.2f} us")
    policy = create("linucb", {})
    rng = np.random.default_rng(0)
    for i, choose in enumerate(inputs[:500]):
        policy.update(choose.decision, i % ACTIONS, float(i % 2), 0.1)
    median, best = per_call(lambda c: policy.distribution(c.decision, rng), inputs)
    print(f"linucb distribution    median {median:6.2f} us   min {best:6.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
