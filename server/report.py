"""The live report: per-variant figures, the sample-ratio check, segments.

Where the figures come from (the cost of a report does not grow with the log):

- ``rewards``, ``mean_reward``, ``difference_to_control``, ``p_value``, ``ips``, ``snips`` and
  ``probability_best`` come from the accumulators the fold keeps (:mod:`server.stats`), updated
  once per learned event and stored with snapshots: no read of the log at all. They are exact
  (equal to a scan of the log up to floating-point rounding, ~1e-12 relative). Auto-promotion
  reads nothing else.
- ``decisions``: the learned ones (accumulators) plus those whose reward window is open, one
  ``COUNT`` over the ``windows`` table joined to their decisions — bounded by the reward window.
  The count and the accumulators are lined up on the same point of the learning order (the
  count's statement also reads the experiment's newest seq; the fold catches up to it), so the
  figure is exact; under a continuous stream of learned events it may, after a few attempts, be
  off by the events learned while it was read. Deferred decisions count from their activation
  (when their window opens): one never activated was never shown and is never learned.
- ``units`` and the sample-ratio check: distinct units among the experiment's last
  ``UNITS_HORIZON`` decisions (newest first on the ``(experiment, created_at)`` index), exact
  within that horizon and bounded by it — which is every decision for an experiment below that
  size. ``Report.units_since`` says where the horizon starts (None: every decision counted).
- segments (``segment_by``, from the request or the experiment's configuration) scan the log:
  only when asked for, never for auto-promotion or a promotion's evidence.

:func:`build_by_scan` computes the same report from one scan of the log (``decisions``
left-joined to ``learnings``, the learned ones folded into accumulators in learning order) and
is kept as the reference the incremental one is tested against; :func:`segments` still uses
it. The learned value of an event is the reward the server learned for it, including the
default reward of a window that closed without one, so every figure describes exactly what the
models learned from.

Every interval is an anytime-valid confidence sequence at the report's confidence (95%): it
holds at every look at once (:mod:`server.anytime`; ``Report.intervals`` names the
construction: ``empirical-bernstein`` on the experiment's ``reward_range``, else
``asymptotic``). Per variant, by variant whatever its role now or then (a champion promoted
away keeps what it served; a promoted shadow keeps what it scored):

- ``decisions``: decisions it served, in any role; ``units``: distinct pseudonymised units
  among them (a decision without a unit counts as one unit); ``rewards``: learned events among
  them (the ``n`` behind ``mean_reward``).
- ``scored``/``scored_units``: decisions it scored as a shadow, in any role, and their units.
- ``mean_reward``: mean of the learned values of the decisions it served, with its CS.
- ``ips`` / ``snips`` (its *value*): off-policy estimates over every learned decision whose
  distribution of this variant is known — as a shadow, w = π_v(a|x)/p from the logged shadow
  distribution and the logged probability p; where it served, w = 1. IPS = mean(w·r) with the
  CS of :mod:`server.anytime`; SNIPS = Σw·r/Σw with the asymptotic CS of the delta-method terms
  w·(r - V̂)/mean(w).
- ``difference_to_control``: value minus the champion's, ``[low - champion's high,
  high - champion's low]`` with the champion's bounds at alpha/2 and each of the K candidates'
  at alpha/(2K) (:func:`levels`); ``verdict`` "better" when it is above 0, "worse" below,
  "no difference yet" across — auto-promotion's rule (:mod:`server.promotion`); ``p_value``:
  1 - the highest confidence at which it excludes 0 (anytime-valid like the bounds; 1 for the
  champion).
- ``effective_sample_size``, ``unsupported_mass``, ``not_evaluable``: :func:`evaluability`; a
  variant below the thresholds gets the verdict "not evaluable" and is never auto-promoted.
- ``probability_best``: share of 20,000 seeded draws in which the variant is highest, each
  variant ~ Normal(value, its standard error) (variants without data have 0). A Bayesian
  summary under a normal approximation, not an anytime-valid statement.

Sample-ratio mismatch, era by era: each traffic version (``experiment_states``: the seeded
set-up, every SetTraffic and promotion) is an era from its ``created_at`` to the next one's;
the units of the decisions made in an era (within the units horizon) are counted per serving
variant and compared with that era's weights (chi-square, k - 1 degrees of freedom, p from the
regularized upper incomplete gamma Q(df/2, χ²/2)). The eras combine by adding chi-squares and
degrees of freedom; units of a variant its era gave no weight make the check fail (p = 0).
Mismatch when p < 0.001.

Segments: the decisions are grouped by the category of one context feature ``namespace.feature``
(``(missing)`` when absent); a segment where some serving variant with traffic has fewer than
``MIN_SEGMENT_UNITS`` units is marked ``too_few_units`` and shows no figures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import sqlalchemy as sa

from arbiter.log.schema import activations, decisions, experiment_states, learnings, windows
from arbiter.log.store import as_utc
from arbiter.server import anytime
from arbiter.server.config import DEFAULT_REWARD_RANGE, ExperimentConfig
from arbiter.server.drift import Alarm
from arbiter.server.fold import Fold
from arbiter.server.stats import ExperimentStats, Stats, VariantStats

BOUNDED = "empirical-bernstein"
ASYMPTOTIC = "asymptotic"
P_GRID = 241  # levels, log-spaced from 1e-6 to 1, of the anytime-valid p-value
MIN_EFFECTIVE_SAMPLE = 100  # ESS below which no verdict: wait for more decisions
MIN_EFFECTIVE_SHARE = 0.05  # ESS/n below which no verdict: the log rarely does what it would
MAX_UNSUPPORTED = 0.05  # estimated mass on near-zero-probability actions above which no verdict
SRM_THRESHOLD = 0.001
MIN_SEGMENT_UNITS = 30  # per serving variant with traffic
BEST_DRAWS = 20_000
MISSING = "(missing)"
UNITS_HORIZON = 250_000  # decisions (newest first) among which distinct units are counted
ALIGN_ATTEMPTS = 5  # reads of the open windows to line them up with the accumulators


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass
class VariantFigures:
    variant: str
    shadow: bool
    traffic: float
    decisions: int = 0
    units: int = 0
    rewards: int = 0
    mean_reward: Interval | None = None
    difference_to_control: Interval | None = None
    p_value: float = math.nan
    probability_best: float = 0.0
    ips: Interval | None = None
    snips: Interval | None = None
    scored: int = 0
    scored_units: int = 0
    effective_sample_size: float = 0.0
    unsupported_mass: float = 0.0
    not_evaluable: str = ""
    verdict: str = ""
    ips_se: float = math.nan  # the normal standard error of ips (for the posterior draws)
    # apprentice mode: learned decisions it served the baseline for, the share its policy
    # would have chosen the baseline too, and the baseline's mean learned reward (NaN: none)
    apprentice_decisions: int = 0
    agreement: float = math.nan
    baseline_reward: float = math.nan
    drift: Alarm | None = None  # its drift alarms (None: it served no learned decision)
    # its policy's feature importance (set by the controller, from the live policy): learned
    # events averaged over, (feature, mean |contribution|) largest first
    importance_events: int = 0
    importance: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Era:
    """A traffic version: in force from ``since`` (None: from the start) until the next."""

    version: int
    since: datetime | None
    shares: Mapping[str, float]


@dataclass(frozen=True)
class SampleRatioEra:
    version: int
    since: datetime | None
    chi_square: float
    p_value: float
    observed_units: dict[str, int]
    expected_share: dict[str, float]


@dataclass(frozen=True)
class SampleRatio:
    chi_square: float
    p_value: float
    mismatch: bool
    observed_units: dict[str, int]
    expected_share: dict[str, float]
    eras: list[SampleRatioEra] = field(default_factory=list)


@dataclass
class Segment:
    segment: str
    units: int
    too_few_units: bool
    variants: list[VariantFigures] = field(default_factory=list)


@dataclass
class Report:
    """``units_since``: when the units horizon starts (None: every decision is counted);
    ``segments`` are computed by a scan of the log, and only when ``segment_by`` asks."""

    experiment: str
    control: str
    variants: list[VariantFigures]
    sample_ratio: SampleRatio
    segment_by: str = ""
    segments: list[Segment] = field(default_factory=list)
    units_since: datetime | None = None
    intervals: str = ASYMPTOTIC
    min_effect: float = 0.0  # the smallest difference the verdicts call better or worse


@dataclass(frozen=True)
class Pending:
    """The open reward windows of an experiment's decisions, counted per variant (served, and
    scored by each shadow), and the experiment's newest seq in the learning order then."""

    served: Mapping[str, int]
    scored: Mapping[str, int]
    newest: int


@dataclass(frozen=True)
class Units:
    """Distinct units per variant among the decisions it served (``units``) and those it scored
    as a shadow (``scored``), and per (era version, serving variant) (``eras``), among the last
    decisions; ``since``: the oldest of them when the horizon was reached, else None (every
    decision counted)."""

    units: Mapping[str, int]
    scored: Mapping[str, int]
    since: datetime | None
    eras: Mapping[tuple[int, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Row:
    """One logged decision as the report needs it."""

    variant: str
    unit: str  # the unit hash, or "event:<event_id>" for a decision without unit
    chosen: int
    probability: float
    shadow: Mapping[str, Sequence[float]]
    created_at: datetime
    value: float | None  # the learned value, None while its window is open
    segment: str = MISSING
    seq: int = 0  # its place in the learning order (0 while its window is open)


# ------------------------------------------------------------------------------ loading
def load_rows(engine: sa.Engine, experiment: str, segment_by: str = "") -> list[Row]:
    columns = [decisions.c.event_id, decisions.c.variant, decisions.c.unit_hash,
               decisions.c.chosen_index, decisions.c.probability, decisions.c.shadow,
               decisions.c.created_at, learnings.c.value, learnings.c.seq]
    if segment_by:
        columns.append(decisions.c.context)
    query = (sa.select(*columns)
             .outerjoin(learnings, learnings.c.event_id == decisions.c.event_id)
             .outerjoin(activations, activations.c.event_id == decisions.c.event_id)
             .where(decisions.c.experiment == experiment,
                    sa.or_(sa.not_(decisions.c.deferred), activations.c.event_id.is_not(None)))
             .order_by(decisions.c.id))
    rows: list[Row] = []
    with engine.connect() as connection:
        for r in connection.execute(query).mappings():
            rows.append(Row(variant=r["variant"],
                            unit=r["unit_hash"] or f"event:{r['event_id']}",
                            chosen=int(r["chosen_index"]), probability=float(r["probability"]),
                            shadow=r["shadow"] or {}, created_at=as_utc(r["created_at"]),
                            value=None if r["value"] is None else float(r["value"]),
                            seq=int(r["seq"] or 0),
                            segment=segment_of(r["context"], segment_by) if segment_by
                            else MISSING))
    return rows


def segment_of(context: Iterable[Mapping[str, Any]], segment_by: str) -> str:
    """The category of ``namespace.feature`` in a logged context, or ``(missing)``."""
    namespace, _, feature = segment_by.partition(".")
    for item in context or ():
        if item.get("name") == namespace:
            value = (item.get("categories") or {}).get(feature)
            if value is not None:
                return str(value)
    return MISSING


# ------------------------------------------------------------------------------ statistics
def regularized_upper_gamma(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x)/Γ(a): series for x < a + 1, else Lentz's continued fraction."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def chi_square_p(chi_square: float, df: int) -> float:
    return regularized_upper_gamma(df / 2, chi_square / 2) if df > 0 else 1.0


@dataclass(frozen=True)
class Intervals:
    """How an experiment's intervals are made (:mod:`server.anytime`): ``method`` is
    ``empirical-bernstein`` on ``reward_range`` when the experiment configures one, else
    ``asymptotic`` (tightest near ``optimum`` terms: ``auto_promote.min_decisions`` or
    :data:`~server.anytime.ASYMPTOTIC_OPTIMUM`)."""

    method: str
    reward_range: tuple[float, float]
    optimum: float

    @classmethod
    def of(cls, config: ExperimentConfig) -> Intervals:
        optimum = (config.auto_promote.min_decisions if config.auto_promote is not None
                   else anytime.ASYMPTOTIC_OPTIMUM)
        method = BOUNDED if config.reward_range != DEFAULT_REWARD_RANGE else ASYMPTOTIC
        return cls(method, config.reward_range, float(optimum))


@dataclass(frozen=True)
class Sums:
    """What one estimate's bounds need (floats, or numpy arrays of them: every function on
    it is vectorized). ``n`` terms; the empirical-Bernstein sums of the lower bound
    (``low_total``, ``low_v``) and of the mirrored lower bound that gives the upper one
    (``high_total``, ``high_v``), in [0, 1] units; ``mean`` and ``sd`` of the terms in reward
    units (the estimate, and the asymptotic bound's scale)."""

    n: Any
    low_total: Any
    low_v: Any
    high_total: Any
    high_v: Any
    mean: Any
    sd: Any
    shared: bool = False  # some terms come from decisions another variant served (scored ones)

    @classmethod
    def served(cls, stats: VariantStats) -> Sums:
        """The mean reward of the decisions the variant served: values x, mirrored 1 - x."""
        b, m = stats.bounded, stats.served
        return cls(b.n, b.total, b.v, b.n - b.total, b.v, m.mean, _sd(m.n, m.m2))

    @classmethod
    def value(cls, stats: VariantStats) -> Sums:
        """IPS: terms w·x (lower bound) and w·(1 - x) (upper bound: 1 - its lower bound)."""
        low, high, m = stats.ips_low, stats.ips_high, stats.ips
        return cls(m.n, low.total, low.v, high.total, high.v, m.mean, _sd(m.n, m.m2),
                   shared=stats.scored > 0)


def _sd(n: int, m2: float) -> float:
    return math.sqrt(max(m2, 0.0) / (n - 1)) if n >= 2 else math.inf


def bounds(sums: Sums, beta: Any, intervals: Intervals) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of ``sums``' estimand, each holding at every look with probability
    ≥ 1 - ``beta``, in reward units (bounded ones clipped to the reward range); ±inf without
    data."""
    if intervals.method == BOUNDED:
        low = np.clip(anytime.bernstein_lower(sums.n, sums.low_total, sums.low_v, beta), 0, 1)
        high = 1 - np.clip(anytime.bernstein_lower(sums.n, sums.high_total, sums.high_v, beta),
                           0, 1)
        n = np.asarray(sums.n)
        return (np.where(n > 0, anytime.unscaled(low, intervals.reward_range), -np.inf),
                np.where(n > 0, anytime.unscaled(high, intervals.reward_range), np.inf))
    radius = anytime.asymptotic_radius(sums.n, sums.sd, beta, intervals.optimum)
    return np.asarray(sums.mean - radius), np.asarray(sums.mean + radius)


def interval(sums: Sums, confidence: float, intervals: Intervals) -> Interval | None:
    """The two-sided confidence sequence at ``confidence`` (each side at (1 - confidence)/2)."""
    if not sums.n:
        return None
    low, high = bounds(sums, (1 - confidence) / 2, intervals)
    return Interval(float(sums.mean), float(low), float(high))


def levels(confidence: Any, candidates: int) -> tuple[Any, Any]:
    """(β of the champion's upper bound, β of each candidate's lower bound) of a comparison by
    two bounds: alpha/2 and alpha/(2K) for K candidates (Bonferroni); a :func:`paired` one tests
    the difference itself, at alpha/K (:func:`difference`). Either way,
    with every candidate equal to the champion none is called better, at any look, with
    probability ≥ ``confidence``."""
    alpha = 1 - np.asarray(confidence, dtype=float)
    return alpha / 2, alpha / (2 * max(candidates, 1))


def _up(sums: Sums) -> tuple[Any, Any, Any]:
    return sums.n, sums.low_total, sums.low_v


def _down(sums: Sums) -> tuple[Any, Any, Any]:
    return sums.n, sums.high_total, sums.high_v


def evidence(candidate: Sums, champion: Sums) -> tuple[np.ndarray, np.ndarray]:
    """Bounded construction: log of the evidence that the candidate's value is above the
    champion's, and below it (:func:`server.anytime.difference_evidence` at δ = 0)."""
    return (anytime.difference_evidence(_up(candidate), _down(champion)),
            anytime.difference_evidence(_up(champion), _down(candidate)))


def paired(candidate: Sums, champion: Sums, intervals: Intervals) -> bool:
    """Whether the difference gets its own confidence sequence: bounded construction, and
    neither variant has terms from decisions another served (a shadow's terms and the
    champion's would move on the same decision: the product of their supermartingales needs
    each decision to move one of them)."""
    return intervals.method == BOUNDED and not (candidate.shared or champion.shared)


def difference(candidate: Sums, champion: Sums, intervals: Intervals, confidence: Any,
               candidates: int) -> tuple[Any, Any]:
    """Bounds of value(candidate) - value(champion), in reward units (vectorized). When
    :func:`paired`: the confidence sequence of the difference itself
    (:func:`server.anytime.difference_lower`, each side at alpha/K); otherwise
    ``[low - champion's high, high - champion's low]`` at :func:`levels`."""
    if paired(candidate, champion, intervals):
        beta = (1 - np.asarray(confidence, dtype=float)) / max(candidates, 1)
        width = intervals.reward_range[1] - intervals.reward_range[0]
        # both bounds in one vectorized search: [lower of B - A, lower of A - B]
        pairs = [np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in pair))
                 for pair in zip(_up(candidate), _up(champion), _down(champion),
                                 _down(candidate), strict=True)]
        up = tuple(np.stack([pair[0], pair[1]]) for pair in pairs)
        down = tuple(np.stack([pair[2], pair[3]]) for pair in pairs)
        both = anytime.difference_lower(up, down, beta)
        return both[0] * width, -both[1] * width
    champion_beta, candidate_beta = levels(confidence, candidates)
    low, high = bounds(candidate, candidate_beta, intervals)
    champion_low, champion_high = bounds(champion, champion_beta, intervals)
    return low - champion_high, high - champion_low


def better(candidate: Sums, champion: Sums, intervals: Intervals, confidence: Any,
           candidates: int) -> Any:
    """Whether :func:`difference`'s lower bound is above 0 (:func:`paired`: the evidence
    against "not better" reaches K/alpha, without computing the bound) — vectorized."""
    if paired(candidate, champion, intervals):
        beta = (1 - np.asarray(confidence, dtype=float)) / max(candidates, 1)
        return evidence(candidate, champion)[0] >= -np.log(beta)
    return difference(candidate, champion, intervals, confidence, candidates)[0] > 0


def anytime_p(candidate: Sums, champion: Sums, intervals: Intervals, candidates: int) -> float:
    """1 - the highest confidence at which :func:`difference` excludes 0: valid at any look,
    like the bounds; 1 if it never does. :func:`paired`: ``min(1, K·exp(-evidence))``, the
    larger evidence of the two directions; otherwise on a grid of :data:`P_GRID` levels,
    rounded up."""
    if paired(candidate, champion, intervals):
        up, down = evidence(candidate, champion)
        return float(min(1.0, max(candidates, 1) * math.exp(-max(float(up), float(down)))))
    alphas = np.geomspace(1e-6, 1.0, P_GRID)
    low, high = difference(candidate, champion, intervals, 1 - alphas, candidates)
    excluded = (low > 0) | (high < 0)
    return float(alphas[np.argmax(excluded)]) if excluded.any() else 1.0


def evaluability(stats: VariantStats) -> tuple[float, float, str]:
    """(effective sample size, unsupported mass, why no verdict — empty when there may be one).

    ESS = (Σw)²/Σw² over the IPS terms (w = 1 where the variant served); the unsupported mass
    is the mean of w·1[p < NEAR_ZERO/k], unbiased for the share of the variant's probability on
    actions the log gave near-zero probability. Thresholds (documented in the README):
    ESS ≥ :data:`MIN_EFFECTIVE_SHARE` of the terms, unsupported mass ≤ :data:`MAX_UNSUPPORTED`,
    ESS ≥ :data:`MIN_EFFECTIVE_SAMPLE`."""
    n, w, q = stats.ips.n, stats.snips.w, stats.snips.q
    if n == 0 or q <= 0:
        return 0.0, 0.0, "no learned decision yet"
    ess = w * w / q
    unsupported = stats.near_zero / n
    if unsupported > MAX_UNSUPPORTED:
        return ess, unsupported, (
            f"an estimated {unsupported:.1%} of its choices fall on actions the log gave "
            f"near-zero probability (over {MAX_UNSUPPORTED:.0%}): the log cannot tell how "
            "they pay; raise the serving policies' exploration (`epsilon`, or `floor`) or "
            "give this variant traffic")
    if ess < MIN_EFFECTIVE_SHARE * n:
        return ess, unsupported, (
            f"effective sample size {ess:.0f} of {n} decisions ({ess / n:.1%}, under "
            f"{MIN_EFFECTIVE_SHARE:.0%}): its choices rarely match the logged ones; raise the "
            "serving policies' exploration (`epsilon`, or `floor`) or give this variant traffic")
    if ess < MIN_EFFECTIVE_SAMPLE:
        return ess, unsupported, (f"effective sample size {ess:.0f} < {MIN_EFFECTIVE_SAMPLE}: "
                                  "wait for more decisions")
    return ess, unsupported, ""


# ------------------------------------------------------------------------------ figures
def shares(config: ExperimentConfig) -> dict[str, float]:
    serving = {v.name: v.traffic for v in config.variants if not v.shadow}
    total = sum(serving.values())
    return {name: (w / total if total > 0 else 0.0) for name, w in serving.items()}


def figures(rows: Sequence[Row], config: ExperimentConfig, *, confidence: float = 0.95,
            min_effect: float = 0.0) -> list[VariantFigures]:
    """The figures from the rows of a scan (the reference; segments): the accumulators of the
    learned rows folded in learning order, the open windows and the units counted from the
    rows, then :func:`figures_of` as for the live report."""
    stats = ExperimentStats({v.name: VariantStats() for v in config.variants},
                            reward_range=config.reward_range)
    for r in sorted((r for r in rows if r.value is not None), key=lambda r: r.seq):
        assert r.value is not None
        stats.apply(r.seq, r.variant, r.chosen, r.probability, r.shadow, r.value)
    waiting = [r for r in rows if r.value is None]
    names = [v.name for v in config.variants]
    pending = Pending(served={n: sum(r.variant == n for r in waiting) for n in names},
                      scored={n: sum(r.variant != n and n in r.shadow for r in waiting)
                              for n in names}, newest=0)
    units = Units(units={n: len({r.unit for r in rows if r.variant == n}) for n in names},
                  scored={n: len({r.unit for r in rows if r.variant != n and n in r.shadow})
                          for n in names}, since=None)
    return figures_of(stats, config, confidence=confidence, pending=pending, units=units,
                      min_effect=min_effect)


def figures_of(stats: ExperimentStats, config: ExperimentConfig, *, confidence: float = 0.95,
               pending: Pending | None = None, units: Units | None = None,
               min_effect: float = 0.0) -> list[VariantFigures]:
    """The figures from the fold's accumulators, by variant whatever its role now or then
    (``decisions`` adds ``pending``'s open windows; ``units`` from ``units``: without them both
    count only what the accumulators know). ``min_effect``: the verdicts' threshold."""
    intervals = Intervals.of(config)
    share = shares(config)
    candidates = len(config.variants) - 1
    champion = Sums.value(stats.variants.get(config.control) or VariantStats())
    result: list[VariantFigures] = []
    for variant in config.variants:
        name = variant.name
        mine = stats.variants.get(name) or VariantStats()
        served = pending.served.get(name, 0) if pending is not None else 0
        scored = pending.scored.get(name, 0) if pending is not None else 0
        ess, unsupported, why = evaluability(mine)
        fig = VariantFigures(variant=name, shadow=variant.shadow, traffic=share.get(name, 0.0),
                             decisions=mine.served.n + served, rewards=mine.served.n,
                             scored=mine.scored + scored,
                             units=units.units.get(name, 0) if units is not None else 0,
                             scored_units=units.scored.get(name, 0) if units is not None else 0,
                             effective_sample_size=ess, unsupported_mass=unsupported,
                             not_evaluable=why)
        if mine.drift.served:
            fig.drift = mine.drift.alarm
        if mine.baseline.n:
            fig.apprentice_decisions = mine.baseline.n
            fig.agreement = mine.agreed / mine.baseline.n
            fig.baseline_reward = mine.baseline.mean
        fig.mean_reward = interval(Sums.served(mine), confidence, intervals)
        value = Sums.value(mine)
        fig.ips = interval(value, confidence, intervals)
        fig.ips_se = value.sd / math.sqrt(mine.ips.n) if mine.ips.n else math.nan
        if mine.ips.n and mine.snips.w > 0:
            se = mine.snips.standard_error(mine.ips.n)
            radius = float(anytime.asymptotic_radius(mine.ips.n, se * math.sqrt(mine.ips.n),
                                                     (1 - confidence) / 2, intervals.optimum))
            fig.snips = Interval(mine.snips.value, mine.snips.value - radius,
                                 mine.snips.value + radius)
        if name == config.control:
            fig.p_value = 1.0
            if mine.ips.n:
                fig.difference_to_control = Interval(0.0, 0.0, 0.0)
        elif mine.ips.n and champion.n:
            low, high = difference(value, champion, intervals, confidence, candidates)
            fig.difference_to_control = Interval(float(value.mean - champion.mean), float(low),
                                                 float(high))
            fig.p_value = anytime_p(value, champion, intervals, candidates)
            fig.verdict = ("not evaluable" if why else "better" if low > min_effect
                           else "worse" if high < -min_effect else "no difference yet")
        elif name != config.control:
            fig.verdict = "no difference yet"
        result.append(fig)
    _probability_best(result)
    return result


def _probability_best(result: list[VariantFigures]) -> None:
    candidates = [(fig, fig.ips.estimate, fig.ips_se) for fig in result
                  if fig.ips is not None and math.isfinite(fig.ips_se)]
    if not candidates:
        return
    rng = np.random.default_rng(0)
    draws = np.stack([rng.normal(mean, se, BEST_DRAWS) for _, mean, se in candidates])
    wins = np.bincount(draws.argmax(axis=0), minlength=len(candidates))
    for (fig, _, _), count in zip(candidates, wins, strict=True):
        fig.probability_best = float(count / BEST_DRAWS)


# ------------------------------------------------------------------------------ sample ratio
def eras_of(connection: sa.Connection, config: ExperimentConfig) -> list[Era]:
    """The experiment's traffic versions, oldest first (one small table: a row per change);
    without any, one era of the configured weights."""
    rows = connection.execute(
        sa.select(experiment_states.c.version, experiment_states.c.created_at,
                  experiment_states.c.variants)
        .where(experiment_states.c.experiment == config.name)
        .order_by(experiment_states.c.version)).all()
    if not rows:
        return [Era(0, None, shares(config))]
    eras = []
    for version, created_at, variants in rows:
        weights = {v["name"]: float(v["traffic"]) for v in variants if not v["shadow"]}
        total = sum(weights.values())
        eras.append(Era(int(version), created_at,
                        {n: (w / total if total > 0 else 0.0) for n, w in weights.items()}))
    return eras


def era_of(created_at: datetime, eras: Sequence[Era]) -> int:
    """The version in force at ``created_at`` (the first era for anything before it)."""
    version = eras[0].version
    for era in eras[1:]:
        if era.since is not None and as_utc(created_at) >= as_utc(era.since):
            version = era.version
    return version


def sample_ratio(rows: Sequence[Row], eras: Sequence[Era]) -> SampleRatio:
    """The check from the rows of a scan: distinct units per (era, variant)."""
    units: dict[tuple[int, str], set[str]] = defaultdict(set)
    for r in rows:
        units[(era_of(r.created_at, eras), r.variant)].add(r.unit)
    return sample_ratio_of({key: len(found) for key, found in units.items()}, eras)


def sample_ratio_of(units: Mapping[tuple[int, str], int], eras: Sequence[Era]) -> SampleRatio:
    """Chi-square of the units per serving variant of each era against that era's weights,
    the eras combined (chi-squares and degrees of freedom add). Units of a variant its era gave
    no weight make that era (and the whole) a mismatch (p = 0)."""
    checks: list[SampleRatioEra] = []
    total_chi, total_df, stray_any = 0.0, 0, False
    observed_all: dict[str, int] = defaultdict(int)
    expected_all: dict[str, float] = defaultdict(float)
    for era in eras:
        observed = {name: int(count) for (version, name), count in units.items()
                    if version == era.version}
        total = sum(observed.values())
        if total == 0:
            continue
        chi_square, df, stray = 0.0, -1, False
        stray = any(era.shares.get(name, 0.0) <= 0 for name in observed)
        for name, p in era.shares.items():
            if p > 0:
                expected = total * p
                chi_square += (observed.get(name, 0) - expected) ** 2 / expected
                df += 1
            observed_all[name] += observed.get(name, 0)
            expected_all[name] += total * p
        for name, count in observed.items():
            if name not in era.shares:
                observed_all[name] += count
        p_value = 0.0 if stray else chi_square_p(chi_square, max(df, 0))
        checks.append(SampleRatioEra(era.version, as_utc(era.since) if era.since else None,
                                     chi_square, p_value,
                                     observed, dict(era.shares)))
        total_chi += chi_square
        total_df += max(df, 0)
        stray_any = stray_any or stray
    p_value = 0.0 if stray_any else chi_square_p(total_chi, total_df)
    grand = sum(expected_all.values())
    expected_share = ({n: e / grand for n, e in expected_all.items()} if grand > 0
                      else dict(eras[-1].shares))
    observed_units = {n: observed_all.get(n, 0) for n in {*expected_share, *observed_all}}
    return SampleRatio(chi_square=total_chi, p_value=p_value, mismatch=p_value < SRM_THRESHOLD,
                       observed_units=observed_units, expected_share=expected_share,
                       eras=checks)


def segments(rows: Sequence[Row], config: ExperimentConfig,
             min_effect: float = 0.0) -> list[Segment]:
    by_segment: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_segment[r.segment].append(r)
    share = shares(config)
    result = []
    for name in sorted(by_segment):
        subset = by_segment[name]
        per_variant: dict[str, set[str]] = defaultdict(set)
        for r in subset:
            per_variant[r.variant].add(r.unit)
        too_few = any(len(per_variant.get(v, ())) < MIN_SEGMENT_UNITS
                      for v, p in share.items() if p > 0)
        segment = Segment(segment=name, units=len({r.unit for r in subset}),
                          too_few_units=too_few)
        if not too_few:
            segment.variants = figures(subset, config, min_effect=min_effect)
        result.append(segment)
    return result


def build_by_scan(engine: sa.Engine, config: ExperimentConfig, *, segment_by: str = "",
                  min_effect: float = 0.0) -> Report:
    """The report of ``config``'s experiment from one scan of its whole log (the reference)."""
    rows = load_rows(engine, config.name, segment_by)
    with engine.connect() as connection:
        eras = eras_of(connection, config)
    report = Report(experiment=config.name, control=config.control,
                    variants=figures(rows, config, min_effect=min_effect),
                    sample_ratio=sample_ratio(rows, eras), segment_by=segment_by,
                    intervals=Intervals.of(config).method, min_effect=min_effect)
    if segment_by:
        report.segments = segments(rows, config, min_effect)
    return report


# ------------------------------------------------------------------------------ incremental
def _has_shadow(connection: sa.Connection, shadow: sa.ColumnElement[Any],
                name: str) -> sa.ColumnElement[bool]:
    """Whether a decision's logged ``shadow`` map has the key ``name``."""
    if connection.dialect.name == "postgresql":
        return shadow.op("->")(sa.literal(name, sa.String)).is_not(None)
    if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name:
        # a path lookup (3x cheaper than json_each); such keys are never escaped in the JSON
        return sa.func.json_type(shadow, f'$."{name}"').is_not(None)
    keys = sa.func.json_each(shadow).table_valued("key")
    return sa.exists(sa.select(sa.literal(1)).select_from(keys).where(keys.c.key == name))


def open_windows(connection: sa.Connection, config: ExperimentConfig) -> Pending:
    """One statement (one consistent view): the open windows per variant (served, and scored as
    a shadow), joined to their decisions, and the experiment's newest seq. Bounded by the open
    windows, not the log."""
    names = [v.name for v in config.variants]
    newest = (sa.select(learnings.c.seq).where(learnings.c.experiment == config.name)
              .order_by(learnings.c.seq.desc()).limit(1).scalar_subquery())
    columns: list[sa.ColumnElement[Any]] = [
        sa.func.count(sa.case((decisions.c.variant == name, 1))) for name in names]
    columns += [sa.func.count(sa.case((sa.and_(decisions.c.variant != name,
                                                _has_shadow(connection, decisions.c.shadow,
                                                            name)), 1)))
                for name in names]
    query = (sa.select(*columns, newest)
             .select_from(windows.join(decisions, decisions.c.event_id == windows.c.event_id))
             .where(windows.c.experiment == config.name))
    row = connection.execute(query).one()
    counts = [int(value or 0) for value in row[:-1]]
    return Pending(served=dict(zip(names, counts[:len(names)], strict=True)),
                   scored=dict(zip(names, counts[len(names):], strict=True)),
                   newest=int(row[-1] or 0))


def _recent(config: ExperimentConfig, limit: int) -> sa.Subquery:
    """The experiment's last ``limit`` decisions whose window opened, newest first on the
    ``(experiment, created_at)`` index."""
    unit = sa.func.coalesce(decisions.c.unit_hash, sa.literal("event:") + decisions.c.event_id)
    activated = sa.exists().where(activations.c.event_id == decisions.c.event_id)
    return (sa.select(decisions.c.variant, unit.label("unit"), decisions.c.created_at,
                      decisions.c.shadow)
            .where(decisions.c.experiment == config.name,
                   sa.or_(sa.not_(decisions.c.deferred), activated))
            .order_by(decisions.c.created_at.desc()).limit(limit).subquery("recent"))


def recent_units(connection: sa.Connection, config: ExperimentConfig,
                 eras: Sequence[Era] | None = None, limit: int = UNITS_HORIZON) -> Units:
    """Distinct units among the experiment's last ``limit`` decisions: per variant, among those
    it served and those it scored as a shadow (whatever its role now), and per (era, variant)
    for the sample-ratio check (``eras``: :func:`eras_of`).

    Two statements over the same bounded horizon: grouped by unit once, with a flag per figure
    (one sort, not one per figure); then grouped by (era, variant)."""
    recent = _recent(config, limit)
    names = [v.name for v in config.variants]
    conditions = [recent.c.variant == name for name in names]
    conditions += [sa.and_(recent.c.variant != name, _has_shadow(connection, recent.c.shadow,
                                                                 name)) for name in names]
    per_unit = (sa.select(*[sa.func.max(sa.case((condition, 1), else_=0)).label(f"f{i}")
                            for i, condition in enumerate(conditions)],
                          sa.func.count().label("decisions"),
                          sa.func.min(recent.c.created_at).label("oldest"))
                .group_by(recent.c.unit).subquery("per_unit"))
    row = connection.execute(sa.select(
        *[sa.func.sum(per_unit.c[f"f{i}"]) for i in range(len(conditions))],
        sa.func.sum(per_unit.c.decisions), sa.func.min(per_unit.c.oldest))).one()
    counts = [int(value or 0) for value in row[:-2]]
    oldest = cast("datetime | None", row[-1])
    reached = int(row[-2] or 0) >= limit and oldest is not None
    per_era: dict[tuple[int, str], int] = {}
    if eras:
        era: sa.ColumnElement[Any] = sa.literal(eras[0].version)
        later = [(recent.c.created_at >= e.since, e.version) for e in reversed(eras[1:])
                 if e.since is not None]
        if later:
            era = sa.case(*later, else_=eras[0].version)
        query = (sa.select(era.label("era"), recent.c.variant,
                           sa.func.count(sa.distinct(recent.c.unit)))
                 .group_by(era, recent.c.variant))
        per_era = {(int(version), variant): int(count)
                   for version, variant, count in connection.execute(query)}
    return Units(units=dict(zip(names, counts[:len(names)], strict=True)),
                 scored=dict(zip(names, counts[len(names):], strict=True)),
                 since=as_utc(oldest) if reached and oldest is not None else None,
                 eras=per_era)


def aligned(engine: sa.Engine, fold: Fold, stats: Stats,
            config: ExperimentConfig) -> tuple[ExperimentStats, Pending]:
    """A copy of the experiment's accumulators and its open windows at one point of the
    learning order: the windows' statement also reads the experiment's newest seq, and the
    accumulators are taken when the fold has applied it and nothing of the experiment after it
    (the fold catches up when it is behind; the windows are read again when it moved on)."""
    pending = Pending({}, {}, 0)
    for _ in range(ALIGN_ATTEMPTS):
        with engine.connect() as connection:
            pending = open_windows(connection, config)
        with fold.lock:
            if (fold.applied >= pending.newest
                    and stats.experiments[config.name].last_seq <= pending.newest):
                return stats.copy(config.name), pending
            behind = fold.applied < pending.newest
        if behind:
            fold.catch_up()
    with fold.lock:  # a steady stream of learned events: off by those learned meanwhile
        return stats.copy(config.name), pending


def learned_figures(fold: Fold, stats: Stats, config: ExperimentConfig, *,
                    confidence: float = 0.95) -> list[VariantFigures]:
    """The figures of the accumulators alone (no I/O: ``decisions`` are the learned ones and
    ``units`` 0)."""
    with fold.lock:
        accumulators = stats.copy(config.name)
    return figures_of(accumulators, config, confidence=confidence)


def learned_stats(fold: Fold, stats: Stats, config: ExperimentConfig) -> ExperimentStats:
    """A copy of the experiment's accumulators (no I/O) — what auto-promotion reads."""
    with fold.lock:
        return stats.copy(config.name)


def variant_figures(engine: sa.Engine, fold: Fold, stats: Stats, config: ExperimentConfig, *,
                    confidence: float = 0.95, units_horizon: int = UNITS_HORIZON,
                    min_effect: float = 0.0) -> tuple[list[VariantFigures], Units, list[Era]]:
    """Every figure of the report's variants (the accumulators, the open windows, the units
    horizon), the units behind them and the traffic eras."""
    accumulators, pending = aligned(engine, fold, stats, config)
    with engine.connect() as connection:
        eras = eras_of(connection, config)
        units = recent_units(connection, config, eras, units_horizon)
    return figures_of(accumulators, config, confidence=confidence, pending=pending,
                      units=units, min_effect=min_effect), units, eras


def build(engine: sa.Engine, fold: Fold, stats: Stats, config: ExperimentConfig, *,
          segment_by: str = "", units_horizon: int = UNITS_HORIZON,
          min_effect: float = 0.0) -> Report:
    """The report of ``config``'s experiment (see the module's docstring for what each figure
    reads); segments by a scan, only for ``segment_by``."""
    figures_, units, eras = variant_figures(engine, fold, stats, config,
                                            units_horizon=units_horizon, min_effect=min_effect)
    report = Report(experiment=config.name, control=config.control, variants=figures_,
                    sample_ratio=sample_ratio_of(units.eras, eras), segment_by=segment_by,
                    units_since=units.since, intervals=Intervals.of(config).method,
                    min_effect=min_effect)
    if segment_by:
        report.segments = segments(load_rows(engine, config.name, segment_by), config,
                                   min_effect)
    return report
