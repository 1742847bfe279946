"""The live report's per-variant statistics, kept with the fold (pure: no I/O, no locks).

The report and auto-promotion used to re-read an experiment's whole log; they now read these
accumulators, which every process updates once per learned event, in the one learning order,
as the fold applies it (``Fold.on_apply``). The caller provides the lock (the fold's) and the
I/O (snapshots, the report's two bounded queries); this module only adds numbers.

What one learned event adds, to the variant that served it and to every variant whose
distribution the decision logged as a shadow (``decisions.shadow``: the shadows at decision
time, not at learn time, exactly what a scan of the log sees):

- ``served`` — count, mean and sum of squared deviations (Welford) of the learned values of the
  decisions the variant served: the ``rewards`` of a serving variant, its mean ± z·s/√n, and
  the Welch difference to the control (which needs only n, mean and s of both).
- ``scored`` — the number of learned decisions it scored as a shadow (a shadow's ``rewards``).
- ``ips`` — count, mean and sum of squared deviations of w·r over those decisions (w = 1 where
  it served, π_v(a|x)/p where it scored): IPS = mean(w·r) ± z·sd(w·r)/√n.
- ``snips`` — W = Σw, Q = Σw², the weighted mean V = Σw·r/Σw (SNIPS), and, centred on the
  current V, B = Σw²(r - V) and S = Σw²(r - V)²: the delta-method terms t = w(r - V)/mean(w)
  have Σt = 0 (V's definition) and Σt² = S/mean(w)², hence their sample variance, so the SNIPS
  interval needs no pass over the data. When V moves by d the centred sums move exactly:
  B ← B - d·Q, S ← S - 2d·B + d²·Q (B is kept for that).

- ``bounded``, ``ips_low``, ``ips_high`` (:class:`Bernstein`) — the anytime-valid bounds' sums
  (:mod:`server.anytime`), in [0, 1] units of the experiment's ``reward_range``
  (``x = (r - lo)/(hi - lo)``, a logged value outside clipped to its edge): n, Σ and
  Σ(value - predictable centre)² of the served ``x``, and of ``w·x`` and ``w·(1 - x)`` over the
  IPS terms. They depend on the order of the events (the centres do): the learning order.
- ``baseline``, ``agreed`` — apprentice mode (the variant served the caller's baseline with
  probability 1 and logged its own distribution beside it): the learned values of those
  decisions (what the baseline earns) and how many of them the policy's own most probable
  action was the baseline (first maximum).
- ``drift`` — the variant's drift alarms over the decisions it served (:mod:`server.drift`:
  a Page-Hinkley test on the learned values, the logged probabilities of its last 500).
- ``near_zero`` — Σw over the scored decisions whose logged probability was below
  ``NEAR_ZERO/k`` (k actions): divided by the IPS count it estimates, without bias, the
  variant's mass on actions the log gave near-zero probability (evaluability).

These are the sums behind every figure, in a numerically stable (centred) form rather than raw
Σr and Σr²: a scan computes the same figures, equal to ~1e-12 relative. Probability-best,
the control comparison and auto-promotion's bounds are functions of them (``server.report``).

What is not a learned event, and how the report gets it (documented in ``server.report``):

- ``decisions`` (served or scored) are the learned ones counted here, plus the decisions whose
  reward window is still open: one ``COUNT`` over the ``windows`` table joined to their
  decisions, i.e. bounded by the reward window, not by the log. A decision's window opens when
  it is made (or when a deferred decision is activated) and every window ends in exactly one
  learned event, in the same transaction that deletes it, so learned + open = every decision
  whose window opened. A deferred decision never activated was never shown and can never be
  learned: it is not counted (the scan reference counts the same way).
- ``units`` (distinct units) cannot be summed event by event: exact all-time counting needs
  per-unit state growing with the number of units, written on the Choose path (an index probe
  per decision, the hot path) — or a sketch, which is not exact. The report counts them exactly
  over a bounded horizon instead: the last ``UNITS_HORIZON`` decisions of the experiment (the
  ``(experiment, created_at)`` index), which is all of them for any experiment below that size.
  The sample-ratio check uses the same horizon (units since the current set-up took effect, and
  within the horizon), which is what a sample-ratio check is about: the current assignment.
- segments (``segment_by``) keep scanning the log, and only when asked for.

Snapshots store each variant's accumulators (``snapshots.stats``, JSON, :data:`FORMAT` 3 with
the ``range`` the bounded sums are scaled by) with the fold position they reflect,
``position``: every learned event with ``seq <= position`` is in them. A restore loads them
and the fold's replay from the snapshot position adds only the events after it
(:meth:`ExperimentStats.apply` skips ``seq <= position``), so every process — live, restarted
or a replica — holds the same numbers, bit for bit: the same floating-point operations on the
same events in the same order, and JSON writes floats so they read back exactly. A snapshot
in format 1 (before the bounded sums, which cannot be derived from its moments), 2 (before the
drift alarms) or scaled by
another ``reward_range`` is not loaded: the experiment's sums are rebuilt from the log once
(``server.snapshots.restore_stats``) — from what retention kept of it, if it deletes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arbiter.server.config import DEFAULT_REWARD_RANGE
from arbiter.server.drift import Alarm, DriftState, announce

if TYPE_CHECKING:
    from arbiter.log.store import LearnedEvent
    from arbiter.server.experiments import Experiment

FORMAT = 3  # the version of the JSON in snapshots.stats (1: before the bounded sums, 2: drift)
NEAR_ZERO = 0.1  # a logged probability below NEAR_ZERO/k (k actions) is "near zero"


@dataclass(slots=True)
class Moments:
    """Count, mean and sum of squared deviations of a stream of numbers (Welford)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def standard_error(self) -> float:
        """sd (n - 1 in the denominator) / √n; infinite below two values."""
        if self.n < 2:
            return math.inf
        return math.sqrt(max(self.m2, 0.0) / (self.n - 1) / self.n)


@dataclass(slots=True)
class Weighted:
    """SNIPS accumulators: W = Σw, Q = Σw², V = Σw·r/Σw, B = Σw²(r - V), S = Σw²(r - V)²."""

    w: float = 0.0
    q: float = 0.0
    value: float = 0.0
    b: float = 0.0
    s: float = 0.0

    def add(self, weight: float, reward: float) -> None:
        total = self.w + weight
        if total > 0 and weight != 0:
            value = self.value + weight / total * (reward - self.value)
            d = value - self.value
            self.s += d * d * self.q - 2 * d * self.b
            self.b -= d * self.q
            self.value = value
        self.w = total
        w2 = weight * weight
        deviation = reward - self.value
        self.b += w2 * deviation
        self.s += w2 * deviation * deviation
        self.q += w2

    def standard_error(self, n: int) -> float:
        """Of the delta-method terms w(r - V)/mean(w) (their sd / √n); infinite below two."""
        if n < 2 or self.w <= 0:
            return math.inf
        mean_w = self.w / n
        squares = self.s / (mean_w * mean_w)  # Σt²; Σt = Σw(r - V)/mean(w) = 0 by V's definition
        return math.sqrt(max(squares, 0.0) / (n - 1) / n)


@dataclass(slots=True)
class Bernstein:
    """The sums of :mod:`server.anytime`'s empirical-Bernstein bound over values ``x`` in
    [0, 1] units: ``n``, ``total = Σx`` and ``v = Σ(x_i - c_i)²``, the centre ``c_i`` the mean
    of the values before clipped to [0, 1] (1/2 for the first)."""

    n: int = 0
    total: float = 0.0
    v: float = 0.0

    def add(self, x: float) -> None:
        centre = min(max(self.total / self.n, 0.0), 1.0) if self.n else 0.5
        self.n += 1
        self.total += x
        self.v += (x - centre) * (x - centre)


@dataclass(slots=True)
class VariantStats:
    """One variant's accumulators; every learned event with ``seq <= position`` is in them."""

    position: int = 0
    served: Moments = field(default_factory=Moments)
    scored: int = 0
    ips: Moments = field(default_factory=Moments)
    snips: Weighted = field(default_factory=Weighted)
    # the anytime-valid bounds' sums, in [0, 1] units of the reward range: the served values x;
    # w·x and w·(1 - x) over the IPS terms (lower bounds of E[w·x] and of E[w·(1 - x)])
    bounded: Bernstein = field(default_factory=Bernstein)
    ips_low: Bernstein = field(default_factory=Bernstein)
    ips_high: Bernstein = field(default_factory=Bernstein)
    # Σ w over the IPS terms whose logged probability was near zero (below NEAR_ZERO/k): its
    # mean estimates the variant's probability mass on actions the log (almost) never takes
    near_zero: float = 0.0
    # apprentice mode: the learned values of the decisions it served the caller's baseline
    # for (what the baseline earns), and how many of them its policy would have chosen too
    baseline: Moments = field(default_factory=Moments)
    agreed: int = 0
    drift: DriftState = field(default_factory=DriftState)  # its drift alarms (server.drift)

    def add(self, weight: float, value: float, x: float, *, served: bool,
            near_zero: bool = False) -> None:
        """One learned event: its weight, learned value and that value in [0, 1] units."""
        if served:
            self.served.add(value)
            self.bounded.add(x)
        else:
            self.scored += 1
        self.ips.add(weight * value)
        self.snips.add(weight, value)
        self.ips_low.add(weight * x)
        self.ips_high.add(weight * (1.0 - x))
        if near_zero:
            self.near_zero += weight

    def to_json(self, position: int, reward_range: tuple[float, float]) -> dict[str, Any]:
        """JSON for ``snapshots.stats``; ``position``: the fold's, at least ``self.position``;
        ``reward_range``: the range the bounded sums are scaled by."""
        s = self.snips
        return {"format": FORMAT, "position": max(position, self.position),
                "served": [self.served.n, self.served.mean, self.served.m2],
                "scored": self.scored,
                "ips": [self.ips.n, self.ips.mean, self.ips.m2],
                "snips": [s.w, s.q, s.value, s.b, s.s],
                "range": list(reward_range),
                "bounded": [self.bounded.n, self.bounded.total, self.bounded.v],
                "ips_low": [self.ips_low.n, self.ips_low.total, self.ips_low.v],
                "ips_high": [self.ips_high.n, self.ips_high.total, self.ips_high.v],
                "near_zero": self.near_zero,
                "baseline": [self.baseline.n, self.baseline.mean, self.baseline.m2],
                "agreed": self.agreed, "drift": self.drift.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any],
                  reward_range: tuple[float, float]) -> VariantStats | None:
        """None for a format this release does not read, or sums scaled by another reward
        range than ``reward_range`` (the caller rebuilds them from the log). Format 1 (before
        the bounded sums, which cannot be derived from the others) and 2 (before the drift
        alarms, which need the served events in order) are rebuilt that way too."""
        if data.get("format") != FORMAT or tuple(data["range"]) != tuple(reward_range):
            return None
        served, ips, snips = data["served"], data["ips"], data["snips"]
        bounded, low, high = data["bounded"], data["ips_low"], data["ips_high"]
        baseline = data["baseline"]
        return cls(position=int(data["position"]),
                   served=Moments(int(served[0]), float(served[1]), float(served[2])),
                   scored=int(data["scored"]),
                   ips=Moments(int(ips[0]), float(ips[1]), float(ips[2])),
                   snips=Weighted(*(float(x) for x in snips)),
                   bounded=Bernstein(int(bounded[0]), float(bounded[1]), float(bounded[2])),
                   ips_low=Bernstein(int(low[0]), float(low[1]), float(low[2])),
                   ips_high=Bernstein(int(high[0]), float(high[1]), float(high[2])),
                   near_zero=float(data["near_zero"]),
                   baseline=Moments(int(baseline[0]), float(baseline[1]), float(baseline[2])),
                   agreed=int(data["agreed"]), drift=DriftState.from_json(data["drift"]))


@dataclass(slots=True)
class ExperimentStats:
    """The accumulators of one experiment's variants (those its configuration names).

    ``last_seq``: the newest learned event of the experiment handed to :meth:`apply` since this
    process started (kept in memory only; the report uses it to line the accumulators up with
    what it reads from the log)."""

    variants: dict[str, VariantStats] = field(default_factory=dict)
    last_seq: int = 0
    reward_range: tuple[float, float] = DEFAULT_REWARD_RANGE  # scales the bounded sums

    def apply(self, seq: int, served_by: str, chosen: int, probability: float,
              shadow: Mapping[str, Sequence[float]], value: float) -> list[str]:
        """Add learned event ``seq`` (served by ``served_by``, logged shadow distributions
        ``shadow``, action ``chosen`` drawn with ``probability``, learned ``value``) to every
        variant it concerns whose accumulators do not have it yet. Returns the drift alarms it
        raised for ``served_by`` (``DriftState.observe``)."""
        self.last_seq = max(self.last_seq, seq)
        raised: list[str] = []
        if not math.isfinite(value):
            return raised
        low, high = self.reward_range
        x = min(max((value - low) / (high - low), 0.0), 1.0)  # a logged value outside: its edge
        mine = self.variants.get(served_by)
        if mine is not None and seq > mine.position:
            mine.add(1.0, value, x, served=True)
            mine.position = seq
            raised = mine.drift.observe(seq, value, probability)
            own = shadow.get(served_by) if shadow else None
            if own is not None and probability == 1.0 and 0 <= chosen < len(own):
                # apprentice: the baseline was served for sure; its own choice was logged
                mine.baseline.add(value)
                mine.agreed += int(list(own).index(max(own)) == chosen)
        if not shadow or not (probability > 0 and math.isfinite(probability)):
            return raised
        for name, distribution in shadow.items():
            if name == served_by:
                continue
            stats = self.variants.get(name)
            if stats is None or seq <= stats.position:
                continue
            if not 0 <= chosen < len(distribution):
                continue
            weight = float(distribution[chosen]) / probability
            if math.isfinite(weight) and weight >= 0:
                stats.add(weight, value, x, served=False,
                          near_zero=probability < NEAR_ZERO / len(distribution))
                stats.position = seq
        return raised


class Stats:
    """Every configured experiment's :class:`ExperimentStats`. Not thread-safe: the fold calls
    :meth:`on_apply` under its lock, and readers copy under the same lock."""

    def __init__(self, variants: Mapping[str, Iterable[str]],
                 ranges: Mapping[str, tuple[float, float]] | None = None) -> None:
        """``variants``: experiment name → its configured variant names; ``ranges``: its
        ``reward_range`` (default: the configuration's default)."""
        ranges = ranges or {}
        self.experiments: dict[str, ExperimentStats] = {
            name: ExperimentStats({v: VariantStats() for v in names},
                                  reward_range=ranges.get(name, DEFAULT_REWARD_RANGE))
            for name, names in variants.items()}

    @classmethod
    def of(cls, experiments: Mapping[str, Experiment]) -> Stats:
        return cls({name: list(e.variants) for name, e in experiments.items()},
                   {name: e.config.reward_range for name, e in experiments.items()})

    def on_apply(self, experiment: Experiment, event: LearnedEvent) -> None:
        """The fold's listener: one learned decision, in seq order (drift alarms it raises are
        logged)."""
        stats = self.experiments.get(experiment.name)
        if stats is not None:
            for kind in stats.apply(event.seq, event.variant, event.chosen, event.probability,
                                    event.shadow, event.value):
                announce(experiment.name, event.variant, kind, event.seq,
                         stats.variants[event.variant].drift)

    def alarms(self, experiment: str) -> dict[str, Alarm]:
        """``{variant: Alarm}`` of ``experiment``'s variants that served learned decisions
        (call it under the fold's lock)."""
        found = self.experiments.get(experiment)
        if found is None:
            return {}
        return {name: stats.drift.alarm for name, stats in found.variants.items()
                if stats.drift.served}

    def copy(self, experiment: str) -> ExperimentStats:
        """A deep copy of ``experiment``'s accumulators (take it under the fold's lock)."""
        return copy.deepcopy(self.experiments[experiment])

    def dump(self, experiment: str, variant: str, position: int) -> dict[str, Any] | None:
        """``variant``'s accumulators as JSON, at fold position ``position``."""
        found = self.experiments.get(experiment, ExperimentStats())
        stats = found.variants.get(variant)
        return stats.to_json(position, found.reward_range) if stats is not None else None

    def load(self, experiment: str, variant: str, data: Mapping[str, Any]) -> bool:
        """Restore ``variant``'s accumulators from a snapshot's JSON; False if unreadable."""
        stats = self.experiments.get(experiment)
        if stats is None or variant not in stats.variants:
            return False
        try:
            restored = VariantStats.from_json(data, stats.reward_range)
        except (KeyError, TypeError, ValueError, IndexError):
            restored = None
        if restored is None:
            return False
        stats.variants[variant] = restored
        return True
