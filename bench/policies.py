"""Per-decision cost of every policy at d = 64, K = 10, side by side with its baselines.

For each registered policy (default hyperparameters) we time, per decision, ``choose`` =
``distribution`` (sampling from it is the server's job, the same for every policy) and
``update`` on the same decision object, as the server's in-memory reward join does. In the
same run we time the baselines the issue names:

- raw vowpal-wabbit-next ``predict_one`` + ``learn_one`` on prebuilt examples with the same
  argument string as the ``vw`` policy (the ``vw`` policy also builds the examples);
- MABWiser's LinUCB ``partial_fit`` of one decision at the same d and K (a full ``inv`` per fit).

Goals (from the issue): linucb and lints choose + update <= 100 µs; vw <= 1.5x raw VW;
linucb update >= 20x faster than MABWiser's ``partial_fit``. Every decision is timed on its
own and we print the median over ``--repeats`` passes of ``--decisions`` decisions (after a
warm-up pass): the median is what a decision costs, robust to the machine being shared.

    python -m bench.policies [--decisions 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import vowpal_wabbit_next as vw
from mabwiser.mab import MAB, LearningPolicy
from numpy.typing import NDArray

from arbiter.policies import POLICIES, Decision, Namespace, create
from arbiter.policies.featurize import feature_items, stable_hash
from arbiter.policies.vw import DEFAULT_ARGS

D, K = 64, 10
ACTIONS = tuple(str(i) for i in range(K))
PARAMS: dict[str, dict[str, object]] = {"fixed": {"action": "3"}}
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "linucb hybrid": ("linucb", {"hybrid": True}),
    "linucb decay": ("linucb", {"decay": 0.99}),
    "lints decay": ("lints", {"decay": 0.99}),
}
"""Non-default configurations timed as well: label → (registry name, hyperparameters)."""


def workload(n: int, seed: int) -> tuple[list[Decision], NDArray[np.float64], NDArray[np.int64]]:
    """``n`` decisions with ``D`` numeric context features, contexts ``(n, D)``, best actions."""
    rng = np.random.default_rng(seed)
    contexts = rng.random((n, D))
    best = (contexts @ rng.normal(size=(D, K))).argmax(axis=1)
    names = [f"p{i}" for i in range(D)]
    decisions = [
        Decision(
            context=(Namespace("pixels", numbers=dict(zip(names, row, strict=True))),),
            action_ids=ACTIONS,
            action_features=((),) * K,
        )
        for row in contexts
    ]
    return decisions, contexts, best


def median_us(one_pass: Callable[[], NDArray[np.int64]], repeats: int) -> NDArray[np.float64]:
    """Median µs per decision over ``repeats`` passes after a warm-up pass.

    ``one_pass`` returns nanoseconds of shape ``(n, stages)``; the result has shape ``(stages,)``.
    """
    one_pass()  # warm-up: vocabulary, caches, first models
    samples = np.concatenate([one_pass() for _ in range(repeats)])
    median: NDArray[np.float64] = np.median(samples, axis=0) / 1e3
    return median


def time_policy(name: str, params: dict[str, object], n: int, repeats: int) -> tuple[float, float]:
    """(choose µs, update µs) per decision for the registered policy ``name`` with ``params``."""
    decisions, _, best = workload(n, seed=1)
    policy = create(name, params)
    rng = np.random.default_rng(0)

    def one_pass() -> NDArray[np.int64]:
        times = np.zeros((n, 2), dtype=np.int64)
        for i, (decision, label) in enumerate(zip(decisions, best, strict=True)):
            t0 = time.perf_counter_ns()
            p = policy.distribution(decision, rng)
            t1 = time.perf_counter_ns()
            chosen = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum()))
            t2 = time.perf_counter_ns()
            policy.update(decision, chosen, float(chosen == label), float(p[chosen]))
            times[i] = t1 - t0, time.perf_counter_ns() - t2
        return times

    choose, update = median_us(one_pass, repeats)
    return float(choose), float(update)


def prebuilt_examples(decision: Decision) -> list[vw.Example]:
    """The ``vw`` policy's ADF examples for ``decision``, built outside the timed region."""
    shared = vw.Example()
    shared.set_label(vw.CBLabel(shared=True))
    items = list(feature_items("s", decision.context[0]))
    indices = np.array([stable_hash(key) for key, _ in items], dtype=np.uint64)
    values = np.array([value for _, value in items], dtype=np.float32)
    shared["s"].push_many_features(indices, values)  # type: ignore[arg-type]  # the stub is wrong
    examples = [shared]
    for action_id in decision.action_ids:
        example = vw.Example()
        example.set_label(vw.CBLabel())
        key = next(feature_items("a", Namespace("", categories={"id": action_id})))[0]
        example["a"].push_feature(stable_hash(key), 1.0)
        examples.append(example)
    return examples


def time_raw_vw(n: int, repeats: int) -> float:
    """µs per decision of raw ``predict_one`` + ``learn_one`` on prebuilt examples."""
    decisions, _, best = workload(n, seed=1)
    examples = [prebuilt_examples(d) for d in decisions]
    workspace = vw.Workspace(DEFAULT_ARGS.split())

    def one_pass() -> NDArray[np.int64]:
        times = np.zeros((n, 1), dtype=np.int64)
        for i, (multi, label) in enumerate(zip(examples, best, strict=True)):
            start = time.perf_counter_ns()
            pmf = cast(list[tuple[int, float]], workspace.predict_one(multi))
            chosen, probability = pmf[0]
            action = multi[1 + chosen]
            action.set_label(vw.CBLabel(label=(-float(chosen == label), probability)))
            workspace.learn_one(multi)
            action.set_label(vw.CBLabel())
            times[i] = time.perf_counter_ns() - start
        return times

    return float(median_us(one_pass, repeats)[0])


def time_mabwiser_update(n: int, repeats: int) -> float:
    """µs per ``partial_fit`` of one decision with MABWiser's LinUCB at the same d and K."""
    _, contexts, best = workload(n, seed=1)
    mab = MAB(arms=list(range(K)), learning_policy=LearningPolicy.LinUCB(alpha=0.3), seed=0)
    mab.fit(decisions=list(range(K)), rewards=[0.0] * K, contexts=contexts[:K])
    rows = [contexts[i : i + 1] for i in range(n)]

    def one_pass() -> NDArray[np.int64]:
        times = np.zeros((n, 1), dtype=np.int64)
        for i, (row, label) in enumerate(zip(rows, best, strict=True)):
            start = time.perf_counter_ns()
            mab.partial_fit(decisions=[int(label)], rewards=[1.0], contexts=row)
            times[i] = time.perf_counter_ns() - start
        return times

    return float(median_us(one_pass, repeats)[0])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args(argv)
    n, repeats = options.decisions, options.repeats

    print(f"d = {D}, K = {K}: µs per decision, median of {repeats} x {n} decisions")
    print(f"{'policy':<16}{'choose':>10}{'update':>10}{'total':>10}")
    totals: dict[str, tuple[float, float]] = {}
    configs = {name: (name, PARAMS.get(name, {})) for name in sorted(POLICIES)} | VARIANTS
    for label, (name, params) in configs.items():
        choose, update = time_policy(name, params, n, repeats)
        totals[label] = (choose, update)
        print(f"{label:<16}{choose:>10.1f}{update:>10.1f}{choose + update:>10.1f}", flush=True)

    raw_vw = time_raw_vw(n, repeats)
    mabwiser = time_mabwiser_update(max(n // 4, 100), repeats)
    vw_total = sum(totals["vw"])
    print(f"\nraw VW predict_one + learn_one (prebuilt, {DEFAULT_ARGS!r}): {raw_vw:.1f} µs")
    print(f"MABWiser LinUCB partial_fit (one decision): {mabwiser:.1f} µs")
    print("\nratios (goal in brackets)")
    for name in ("linucb", "lints"):
        total = sum(totals[name])
        print(f"  {name} choose + update: {total:.1f} µs  [<= 100 µs]")
    print(f"  vw / raw VW: {vw_total / raw_vw:.2f}x  [<= 1.5x]")
    for name in ("linucb", "lints", "epsilon_greedy"):
        print(f"  MABWiser partial_fit / {name} update: {mabwiser / totals[name][1]:.1f}x  [>= 20x]")


if __name__ == "__main__":
    main()
