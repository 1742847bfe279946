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

Snapshots store each variant's accumulators (``snapshots.stats``, JSON) with the fold position
they reflect, ``position``: every learned event with ``seq <= position`` is in them. A restore
loads them and the fold's replay from the snapshot position adds only the events after it
(:meth:`ExperimentStats.apply` skips ``seq <= position``), so every process — live, restarted
or a replica — holds the same numbers, bit for bit: the same floating-point operations on the
same events in the same order, and JSON writes floats so they read back exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arbiter.log.store import LearnedEvent
    from arbiter.server.experiments import Experiment

FORMAT = 1  # the version of the JSON written to snapshots.stats


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
class VariantStats:
    """One variant's accumulators; every learned event with ``seq <= position`` is in them."""

    position: int = 0
    served: Moments = field(default_factory=Moments)
    scored: int = 0
    ips: Moments = field(default_factory=Moments)
    snips: Weighted = field(default_factory=Weighted)

    def add(self, weight: float, value: float, *, served: bool) -> None:
        if served:
            self.served.add(value)
        else:
            self.scored += 1
        self.ips.add(weight * value)
        self.snips.add(weight, value)

    def to_json(self, position: int) -> dict[str, Any]:
        """JSON for ``snapshots.stats``; ``position``: the fold's, at least ``self.position``."""
        s = self.snips
        return {"format": FORMAT, "position": max(position, self.position),
                "served": [self.served.n, self.served.mean, self.served.m2],
                "scored": self.scored,
                "ips": [self.ips.n, self.ips.mean, self.ips.m2],
                "snips": [s.w, s.q, s.value, s.b, s.s]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariantStats | None:
        """None for a format this release does not read (the caller rebuilds from the log)."""
        if data.get("format") != FORMAT:
            return None
        served, ips, snips = data["served"], data["ips"], data["snips"]
        return cls(position=int(data["position"]),
                   served=Moments(int(served[0]), float(served[1]), float(served[2])),
                   scored=int(data["scored"]),
                   ips=Moments(int(ips[0]), float(ips[1]), float(ips[2])),
                   snips=Weighted(*(float(x) for x in snips)))


@dataclass(slots=True)
class ExperimentStats:
    """The accumulators of one experiment's variants (those its configuration names).

    ``last_seq``: the newest learned event of the experiment handed to :meth:`apply` since this
    process started (kept in memory only; the report uses it to line the accumulators up with
    what it reads from the log)."""

    variants: dict[str, VariantStats] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, seq: int, served_by: str, chosen: int, probability: float,
              shadow: Mapping[str, Sequence[float]], value: float) -> None:
        """Add learned event ``seq`` (served by ``served_by``, logged shadow distributions
        ``shadow``, action ``chosen`` drawn with ``probability``, learned ``value``) to every
        variant it concerns whose accumulators do not have it yet."""
        self.last_seq = max(self.last_seq, seq)
        if not math.isfinite(value):
            return
        mine = self.variants.get(served_by)
        if mine is not None and seq > mine.position:
            mine.add(1.0, value, served=True)
            mine.position = seq
        if not shadow or not (probability > 0 and math.isfinite(probability)):
            return
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
                stats.add(weight, value, served=False)
                stats.position = seq


class Stats:
    """Every configured experiment's :class:`ExperimentStats`. Not thread-safe: the fold calls
    :meth:`on_apply` under its lock, and readers copy under the same lock."""

    def __init__(self, variants: Mapping[str, Iterable[str]]) -> None:
        """``variants``: experiment name → its configured variant names."""
        self.experiments: dict[str, ExperimentStats] = {
            name: ExperimentStats({v: VariantStats() for v in names})
            for name, names in variants.items()}

    @classmethod
    def of(cls, experiments: Mapping[str, Experiment]) -> Stats:
        return cls({name: list(e.variants) for name, e in experiments.items()})

    def on_apply(self, experiment: Experiment, event: LearnedEvent) -> None:
        """The fold's listener: one learned decision, in seq order."""
        stats = self.experiments.get(experiment.name)
        if stats is not None:
            stats.apply(event.seq, event.variant, event.chosen, event.probability,
                        event.shadow, event.value)

    def copy(self, experiment: str) -> ExperimentStats:
        """A deep copy of ``experiment``'s accumulators (take it under the fold's lock)."""
        return copy.deepcopy(self.experiments[experiment])

    def dump(self, experiment: str, variant: str, position: int) -> dict[str, Any] | None:
        """``variant``'s accumulators as JSON, at fold position ``position``."""
        stats = self.experiments.get(experiment, ExperimentStats()).variants.get(variant)
        return stats.to_json(position) if stats is not None else None

    def load(self, experiment: str, variant: str, data: Mapping[str, Any]) -> bool:
        """Restore ``variant``'s accumulators from a snapshot's JSON; False if unreadable."""
        stats = self.experiments.get(experiment)
        if stats is None or variant not in stats.variants:
            return False
        try:
            restored = VariantStats.from_json(data)
        except (KeyError, TypeError, ValueError, IndexError):
            restored = None
        if restored is None:
            return False
        stats.variants[variant] = restored
        return True
