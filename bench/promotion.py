"""Auto-promotion under peeking: false promotions and decisions needed, anytime-valid vs fixed.

A champion and one challenger split the traffic 50/50 and earn 0/1 rewards; the promotion rule
looks every ``--every`` decisions up to ``--decisions``. The rule is the server's own pure
function (:func:`arbiter.server.promotion.promotes`) on the accumulators the fold would hold at
each look (:func:`accumulate`: the same sums as :class:`arbiter.server.stats.Bernstein` and
:class:`~arbiter.server.stats.Moments`, vectorized over seeds and decisions), for both interval
constructions (``empirical-bernstein`` with ``reward_range = [0, 1]``, and ``asymptotic``).
The baseline is the rule before anytime-valid bounds: fixed-sample normal 95% intervals
(mean ± 1.96·s/√n) checked at every look.

Prints, per scenario and rule: the share of seeds with a promotion (with equal rates: the false
promotion rate), and the median number of decisions at the first promotion; and the single-look
fixed-horizon sample size of a two-sided 5% Welch test with 80% power for the same difference.
Then a shadow scored on a uniform champion's decisions (IPS), as good and better.

    make bench-promotion                     # 400 seeds, looks every 100 up to 20,000
    .venv/bin/python -m bench.promotion --seeds 200 --decisions 20000 --every 100
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from arbiter.server import report as reports
from arbiter.server.promotion import promotes

Array = npt.NDArray[np.float64]
CHUNK = 50  # seeds simulated at once (memory: a few (CHUNK, decisions) arrays)
SHADOW_POLICY = (0.1 / 3 + 0.9, 0.1 / 3, 0.1 / 3)  # fixed on action 0, floor 0.1


@dataclass(frozen=True)
class Arm:
    """One variant's accumulators at each look, arrays of shape (seeds, looks)."""

    n: Array
    total: Array
    v: Array
    total_sq: Array

    def sums(self) -> reports.Sums:
        """The :class:`~arbiter.server.report.Sums` of its mean reward (x = the reward in [0, 1])."""
        n = self.n
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, self.total / n, 0.0)
            variance = np.where(n > 1, (self.total_sq - n * mean * mean) / (n - 1), np.inf)
        return reports.Sums(n=n, low_total=self.total, low_v=self.v, high_total=n - self.total,
                            high_v=self.v, mean=mean, sd=np.sqrt(np.maximum(variance, 0.0)))


def accumulate(mask: npt.NDArray[np.bool_], x: Array, looks: npt.NDArray[np.int64]) -> Arm:
    """The sums of the values ``x`` (seeds, decisions) of the decisions in ``mask`` (served by
    the arm), as after each decision in ``looks`` (0-based indices). The centre of each value is
    the arm's running mean before it, clipped to [0, 1] (1/2 for its first), as
    :class:`arbiter.server.stats.Bernstein` keeps it."""
    mine = np.where(mask, x, 0.0)
    n: npt.NDArray[np.int64] = np.cumsum(mask, axis=1, dtype=np.int64)
    total = np.cumsum(mine, axis=1)
    before_n: npt.NDArray[np.int64] = n - mask.astype(np.int64)
    before_total = total - mine
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.where(before_n > 0, np.clip(before_total / before_n, 0.0, 1.0), 0.5)
    v = np.cumsum(np.where(mask, (x - centre) ** 2, 0.0), axis=1)
    total_sq = np.cumsum(mine * mine, axis=1)
    return Arm(n[:, looks].astype(float), total[:, looks], v[:, looks], total_sq[:, looks])


def fixed_rule(champion: reports.Sums, candidate: reports.Sums, min_decisions: int,
               z: float = 1.96) -> npt.NDArray[np.bool_]:
    """The rule before anytime-valid bounds: candidate mean - z·se > champion mean + z·se."""
    def se(s: reports.Sums) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(s.sd / np.sqrt(s.n))
    enough = (champion.n >= min_decisions) & (candidate.n >= min_decisions)
    return np.asarray(enough & (candidate.mean - z * se(candidate)
                                > champion.mean + z * se(champion)))


def first_promotions(rates: tuple[float, float], seeds: range, decisions: int, every: int, *,
                     min_decisions: int = 100, confidence: float = 0.95
                     ) -> Iterator[dict[str, Array]]:
    """Per chunk of seeds, per rule: the decisions at the first promotion (inf: none)."""
    looks = np.arange(every, decisions + 1, every) - 1
    rules = {"empirical-bernstein": reports.Intervals(reports.BOUNDED, (0.0, 1.0), 1000.0),
             "asymptotic": reports.Intervals(reports.ASYMPTOTIC, (0.0, 1.0),
                                             float(min_decisions))}
    for start in range(seeds.start, seeds.stop, CHUNK):
        chunk = range(start, min(start + CHUNK, seeds.stop))
        draws = [np.random.default_rng(seed) for seed in chunk]
        challenger = np.stack([rng.random(decisions) < 0.5 for rng in draws])
        p = np.where(challenger, rates[1], rates[0])
        x = (np.stack([rng.random(decisions) for rng in draws]) < p).astype(float)
        champion = accumulate(~challenger, x, looks).sums()
        candidate = accumulate(challenger, x, looks).sums()
        promoted = {name: promotes(champion, candidate, intervals, confidence=confidence,
                                   candidates=1, min_decisions=min_decisions)
                    for name, intervals in rules.items()}
        promoted["fixed 95% at every look"] = fixed_rule(champion, candidate, min_decisions)
        yield {name: np.where(hit.any(axis=1), (looks[hit.argmax(axis=1)] + 1).astype(float),
                              np.inf)
               for name, hit in promoted.items()}


def shadow_first_promotions(rates: Sequence[float], policy: Sequence[float], seeds: range,
                            decisions: int, every: int, *, min_decisions: int = 100,
                            confidence: float = 0.95) -> dict[str, Array]:
    """A uniform champion serving every decision (action a earns ``rates[a]``) against a shadow
    scored on all of them with the distribution ``policy`` (IPS terms w·x, w = π(a)/p(a)):
    decisions at the first promotion per seed (inf: never), per construction."""
    looks = np.arange(every, decisions + 1, every) - 1
    k = len(rates)
    parts: dict[str, list[Array]] = {}
    for start in range(seeds.start, seeds.stop, CHUNK):
        draws = [np.random.default_rng(seed) for seed in range(start, min(start + CHUNK,
                                                                          seeds.stop))]
        action = np.stack([rng.integers(k, size=decisions) for rng in draws])
        x = (np.stack([rng.random(decisions) for rng in draws])
             < np.asarray(rates)[action]).astype(float)
        everything = np.ones_like(x, dtype=bool)
        champion = accumulate(everything, x, looks).sums()
        w = np.asarray(policy)[action] * k
        low, high = accumulate(everything, w * x, looks), accumulate(everything, w * (1 - x), looks)
        with np.errstate(invalid="ignore"):
            sd = np.sqrt(np.maximum((low.total_sq - low.total ** 2 / low.n) / (low.n - 1), 0.0))
        shadow = reports.Sums(n=low.n, low_total=low.total, low_v=low.v, high_total=high.total,
                              high_v=high.v, mean=low.total / low.n, sd=sd, shared=True)
        for name, intervals in (("empirical-bernstein", reports.Intervals(
                reports.BOUNDED, (0.0, 1.0), 1000.0)), ("asymptotic", reports.Intervals(
                reports.ASYMPTOTIC, (0.0, 1.0), float(min_decisions)))):
            hit = promotes(champion, shadow, intervals, confidence=confidence, candidates=1,
                           min_decisions=min_decisions)
            parts.setdefault(name, []).append(
                np.where(hit.any(axis=1), (looks[hit.argmax(axis=1)] + 1).astype(float), np.inf))
    return {name: np.concatenate(values) for name, values in parts.items()}


def simulate(rates: tuple[float, float], seeds: range, decisions: int, every: int,
             **settings: float) -> dict[str, Array]:
    """Decisions at the first promotion per seed (inf: never), per rule."""
    parts: dict[str, list[Array]] = {}
    for chunk in first_promotions(rates, seeds, decisions, every, **settings):  # type: ignore[arg-type]
        for name, first in chunk.items():
            parts.setdefault(name, []).append(first)
    return {name: np.concatenate(values) for name, values in parts.items()}


def fixed_horizon(rates: tuple[float, float], power: float = 0.8, alpha: float = 0.05) -> float:
    """Total decisions (both arms, 50/50) of a single-look two-sided Welch test at ``alpha``
    with ``power`` for the difference of ``rates``."""
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    variance = sum(p * (1 - p) for p in rates)
    return 2 * z * z * variance / (rates[1] - rates[0]) ** 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args(argv)
    seeds = range(args.seeds)
    print(f"{args.seeds} seeds, a look every {args.every} decisions up to {args.decisions:,}, "
          "50/50 traffic, 0/1 rewards, min_decisions 100, confidence 0.95")
    for rates in ((0.10, 0.10), (0.50, 0.50), (0.10, 0.13), (0.50, 0.53)):
        first = simulate(rates, seeds, args.decisions, args.every)
        equal = rates[0] == rates[1]
        title = (f"equal rates {rates[0]:.2f}" if equal else
                 f"champion {rates[0]:.2f}, challenger {rates[1]:.2f} (fixed-horizon test, 80% "
                 f"power: {math.ceil(fixed_horizon(rates)):,} decisions)")
        print(f"\n{title}")
        for name, values in first.items():
            hit = np.isfinite(values)
            median = f"{np.median(values):,.0f}" if hit.mean() >= 0.5 else f"> {args.decisions:,}"
            label = "false promotions" if equal else "promoted"
            print(f"  {name:<24} {label} {hit.mean():6.1%} ({hit.sum()}/{len(values)})"
                  + ("" if equal else f", median decisions to promotion {median}"))
    for action_rates, title in (((0.3, 0.3, 0.3), "a shadow (fixed on one action, floor 0.1) as good "
                          "as a uniform champion (every action 0.30)"),
                         ((0.4, 0.3, 0.3), "a shadow (fixed on the 0.40 action, floor 0.1) "
                          "against a uniform champion (0.33)")):
        first = shadow_first_promotions(action_rates, SHADOW_POLICY, seeds, args.decisions,
                                        args.every)
        print(f"\n{title}")
        for name, values in first.items():
            hit = np.isfinite(values)
            median = f"{np.median(values):,.0f}" if hit.mean() >= 0.5 else f"> {args.decisions:,}"
            print(f"  {name:<24} promoted {hit.mean():6.1%} ({hit.sum()}/{len(values)}), "
                  f"median decisions to promotion {median}")


if __name__ == "__main__":
    main()
