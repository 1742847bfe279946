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
left-joined to ``learnings``) and is kept as the reference the incremental one is tested
against; :func:`segments` still uses it. The learned value of an event is the reward the server
learned for it, including the default reward of a window that closed without one, so every
figure describes exactly what the models learned from.

Per variant (``z`` is the normal quantile of the confidence, 1.96 for 95%):

- ``decisions``: serving variants — decisions they served; shadows — decisions they scored.
- ``units``: distinct pseudonymised units among those decisions; a decision without a unit is
  assigned on its own, so it counts as one unit.
- ``rewards``: learned events among them (the ``n`` behind the means).
- ``mean_reward`` (serving only): mean of the learned values ± z·s/√n.
- ``difference_to_control`` (serving challengers): Welch — mean - control mean ±
  z·√(s₁²/n₁ + s₀²/n₀), with the two-sided normal p-value (NaN where not applicable, 1 for the
  control itself).
- ``ips`` / ``snips``: off-policy estimates over every learned decision whose distribution of
  this variant is known — as a shadow, w = π_v(a|x)/p from the logged shadow distribution and
  the logged probability p; where it served, w = 1. IPS = mean(w·r) ± z·sd(w·r)/√n; SNIPS =
  Σw·r/Σw with the delta-method interval (terms w·(r - V̂)/mean(w)).
- ``probability_best``: share of 20,000 seeded draws in which the variant is highest, each
  variant ~ Normal(estimate, standard error) — serving variants by their mean reward, shadows
  by their IPS estimate (variants without data have 0).

Sample-ratio mismatch: units per serving variant over the decisions made since the current
traffic set-up took effect (an older window would mix weights; and within the units horizon),
chi-square against the weights with k - 1 degrees of freedom; p from the regularized upper
incomplete gamma Q(df/2, χ²/2). Mismatch when p < 0.001.

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
from statistics import NormalDist
from typing import Any, cast

import numpy as np
import sqlalchemy as sa

from arbiter.log.schema import activations, decisions, learnings, windows
from arbiter.log.store import as_utc
from arbiter.server.config import ExperimentConfig
from arbiter.server.fold import Fold
from arbiter.server.stats import ExperimentStats, Stats, VariantStats

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
    # the standard errors behind the intervals (for the posterior draws and auto-promotion)
    mean_se: float = math.nan
    ips_se: float = math.nan


@dataclass(frozen=True)
class SampleRatio:
    chi_square: float
    p_value: float
    mismatch: bool
    observed_units: dict[str, int]
    expected_share: dict[str, float]


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


@dataclass(frozen=True)
class Pending:
    """The open reward windows of an experiment's decisions, counted per variant (served, and
    scored by each shadow), and the experiment's newest seq in the learning order then."""

    served: Mapping[str, int]
    scored: Mapping[str, int]
    newest: int


@dataclass(frozen=True)
class Units:
    """Distinct units per variant (served; scored for shadows) and per serving variant since
    the set-up (``srm``), among the last decisions; ``since``: the oldest of them when the
    horizon was reached, else None (every decision counted)."""

    units: Mapping[str, int]
    srm: Mapping[str, int]
    since: datetime | None


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


# ------------------------------------------------------------------------------ loading
def load_rows(engine: sa.Engine, experiment: str, segment_by: str = "") -> list[Row]:
    columns = [decisions.c.event_id, decisions.c.variant, decisions.c.unit_hash,
               decisions.c.chosen_index, decisions.c.probability, decisions.c.shadow,
               decisions.c.created_at, learnings.c.value]
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
def z_of(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


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


def mean_interval(values: np.ndarray, z: float) -> tuple[Interval | None, float]:
    n = len(values)
    if n == 0:
        return None, math.nan
    mean = float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return Interval(mean, mean - z * se, mean + z * se), se


def off_policy(weights: np.ndarray, rewards: np.ndarray,
               z: float) -> tuple[Interval | None, Interval | None, float]:
    """IPS and SNIPS with normal intervals; returns (ips, snips, ips standard error)."""
    n = len(weights)
    if n == 0:
        return None, None, math.nan
    ips, se = mean_interval(weights * rewards, z)
    mean_w = float(weights.mean())
    if mean_w <= 0:
        return ips, None, se
    value = float((weights * rewards).sum() / weights.sum())
    terms = weights * (rewards - value) / mean_w
    sn_se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return ips, Interval(value, value - z * sn_se, value + z * sn_se), se


# ------------------------------------------------------------------------------ figures
def shares(config: ExperimentConfig) -> dict[str, float]:
    serving = {v.name: v.traffic for v in config.variants if not v.shadow}
    total = sum(serving.values())
    return {name: (w / total if total > 0 else 0.0) for name, w in serving.items()}


def figures(rows: Sequence[Row], config: ExperimentConfig, *,
            confidence: float = 0.95) -> list[VariantFigures]:
    z = z_of(confidence)
    share = shares(config)
    result: list[VariantFigures] = []
    for variant in config.variants:
        name = variant.name
        served = [r for r in rows if r.variant == name]
        scored = [r for r in rows if r.variant != name and name in r.shadow]
        mine = scored if variant.shadow else served
        fig = VariantFigures(variant=name, shadow=variant.shadow, traffic=share.get(name, 0.0),
                             decisions=len(mine), units=len({r.unit for r in mine}),
                             rewards=sum(r.value is not None for r in mine))
        if not variant.shadow:
            values = np.array([r.value for r in served if r.value is not None], dtype=float)
            fig.mean_reward, fig.mean_se = mean_interval(values, z)
        learned = [r for r in (*served, *scored) if r.value is not None]
        weights = np.array([1.0 if r.variant == name
                            else r.shadow[name][r.chosen] / r.probability for r in learned],
                           dtype=float)
        rewards = np.array([r.value for r in learned], dtype=float)
        fig.ips, fig.snips, fig.ips_se = off_policy(weights, rewards, z)
        result.append(fig)
    _compare(result, config.control, z)
    _probability_best(result)
    return result


def _compare(result: list[VariantFigures], control: str, z: float) -> None:
    base = next((f for f in result if f.variant == control), None)
    for fig in result:
        if fig.shadow:
            continue
        if fig.variant == control:
            fig.p_value = 1.0
            if fig.mean_reward is not None:
                fig.difference_to_control = Interval(0.0, 0.0, 0.0)
            continue
        if base is None or base.mean_reward is None or fig.mean_reward is None:
            continue
        difference = fig.mean_reward.estimate - base.mean_reward.estimate
        se = math.sqrt(fig.mean_se ** 2 + base.mean_se ** 2)
        fig.difference_to_control = Interval(difference, difference - z * se, difference + z * se)
        fig.p_value = two_sided_p(difference / se) if se > 0 else (1.0 if difference == 0
                                                                  else 0.0)


def _probability_best(result: list[VariantFigures]) -> None:
    candidates = []
    for fig in result:
        estimate = fig.ips if fig.shadow else fig.mean_reward
        se = fig.ips_se if fig.shadow else fig.mean_se
        if estimate is not None and math.isfinite(se):
            candidates.append((fig, estimate.estimate, se))
    if not candidates:
        return
    rng = np.random.default_rng(0)
    draws = np.stack([rng.normal(mean, se, BEST_DRAWS) for _, mean, se in candidates])
    wins = np.bincount(draws.argmax(axis=0), minlength=len(candidates))
    for (fig, _, _), count in zip(candidates, wins, strict=True):
        fig.probability_best = float(count / BEST_DRAWS)


def sample_ratio(rows: Sequence[Row], config: ExperimentConfig,
                 since: datetime | None = None) -> SampleRatio:
    """Chi-square of the units per serving variant (decisions since ``since``) vs the weights."""
    units: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if since is None or r.created_at >= since:
            units[r.variant].add(r.unit)
    return sample_ratio_of({name: len(found) for name, found in units.items()}, config)


def sample_ratio_of(units: Mapping[str, int], config: ExperimentConfig) -> SampleRatio:
    """Chi-square of the observed units per serving variant vs the weights."""
    share = shares(config)
    observed = {name: int(units.get(name, 0)) for name in share}
    total = sum(observed.values())
    chi_square, df, stray = 0.0, -1, False
    for name, p in share.items():
        if p > 0:
            expected = total * p
            chi_square += (observed[name] - expected) ** 2 / expected if expected > 0 else 0.0
            df += 1
        elif observed[name] > 0:  # units where the weights give none
            stray = True
    p_value = 0.0 if stray else (chi_square_p(chi_square, df) if total > 0 else 1.0)
    return SampleRatio(chi_square=chi_square, p_value=p_value,
                       mismatch=p_value < SRM_THRESHOLD, observed_units=observed,
                       expected_share=share)


def segments(rows: Sequence[Row], config: ExperimentConfig) -> list[Segment]:
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
            segment.variants = figures(subset, config)
        result.append(segment)
    return result


def build_by_scan(engine: sa.Engine, config: ExperimentConfig, *,
                  since: datetime | None = None, segment_by: str = "") -> Report:
    """The report of ``config``'s experiment from one scan of its whole log (the reference);
    SRM over decisions since ``since``."""
    rows = load_rows(engine, config.name, segment_by)
    report = Report(experiment=config.name, control=config.control,
                    variants=figures(rows, config), sample_ratio=sample_ratio(rows, config, since),
                    segment_by=segment_by)
    if segment_by:
        report.segments = segments(rows, config)
    return report


# ------------------------------------------------------------------------------ incremental
def figures_of(stats: ExperimentStats, config: ExperimentConfig, *, confidence: float = 0.95,
               pending: Pending | None = None, units: Units | None = None) -> list[VariantFigures]:
    """The figures from the fold's accumulators (``decisions`` adds ``pending``'s open windows;
    ``units`` from ``units``: without them both count only what the accumulators know)."""
    z = z_of(confidence)
    share = shares(config)
    result: list[VariantFigures] = []
    for variant in config.variants:
        name = variant.name
        mine = stats.variants.get(name) or VariantStats()
        learned = mine.scored if variant.shadow else mine.served.n
        waiting = 0
        if pending is not None:
            waiting = (pending.scored if variant.shadow else pending.served).get(name, 0)
        fig = VariantFigures(variant=name, shadow=variant.shadow, traffic=share.get(name, 0.0),
                             decisions=learned + waiting,
                             units=units.units.get(name, 0) if units is not None else 0,
                             rewards=learned)
        if not variant.shadow and mine.served.n:
            fig.mean_reward, fig.mean_se = _interval(mine.served.mean,
                                                     mine.served.standard_error(), z)
        if mine.ips.n:
            fig.ips, fig.ips_se = _interval(mine.ips.mean, mine.ips.standard_error(), z)
            if mine.snips.w > 0:
                fig.snips, _ = _interval(mine.snips.value,
                                         mine.snips.standard_error(mine.ips.n), z)
        result.append(fig)
    _compare(result, config.control, z)
    _probability_best(result)
    return result


def _interval(estimate: float, se: float, z: float) -> tuple[Interval, float]:
    return Interval(estimate, estimate - z * se, estimate + z * se), se


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
    """One statement (one consistent view): the open windows per variant, joined to their
    decisions, and the experiment's newest seq. Bounded by the open windows, not the log."""
    names = [v.name for v in config.variants]
    shadows = [v.name for v in config.variants if v.shadow]
    newest = (sa.select(learnings.c.seq).where(learnings.c.experiment == config.name)
              .order_by(learnings.c.seq.desc()).limit(1).scalar_subquery())
    columns: list[sa.ColumnElement[Any]] = [
        sa.func.count(sa.case((decisions.c.variant == name, 1))) for name in names]
    columns += [sa.func.count(sa.case((sa.and_(decisions.c.variant != name,
                                                _has_shadow(connection, decisions.c.shadow,
                                                            name)), 1)))
                for name in shadows]
    query = (sa.select(*columns, newest)
             .select_from(windows.join(decisions, decisions.c.event_id == windows.c.event_id))
             .where(windows.c.experiment == config.name))
    row = connection.execute(query).one()
    counts = [int(value or 0) for value in row[:-1]]
    return Pending(served=dict(zip(names, counts[:len(names)], strict=True)),
                   scored=dict(zip(shadows, counts[len(names):], strict=True)),
                   newest=int(row[-1] or 0))


def recent_units(connection: sa.Connection, config: ExperimentConfig,
                 since: datetime | None = None, limit: int = UNITS_HORIZON) -> Units:
    """Distinct units among the experiment's last ``limit`` decisions whose window opened
    (``units``), and per serving variant among those made since ``since`` (``srm``).

    One statement: the decisions newest first on the ``(experiment, created_at)`` index, up to
    ``limit``; grouped by unit once, with a flag per figure (one sort, not one per figure)."""
    unit = sa.func.coalesce(decisions.c.unit_hash, sa.literal("event:") + decisions.c.event_id)
    activated = sa.exists().where(activations.c.event_id == decisions.c.event_id)
    recent = (sa.select(decisions.c.variant, unit.label("unit"), decisions.c.created_at,
                        decisions.c.shadow)
              .where(decisions.c.experiment == config.name,
                     sa.or_(sa.not_(decisions.c.deferred), activated))
              .order_by(decisions.c.created_at.desc()).limit(limit).subquery("recent"))
    names = [v.name for v in config.variants if not v.shadow]
    shadows = [v.name for v in config.variants if v.shadow]
    conditions = [recent.c.variant == name for name in names]
    conditions += [sa.and_(recent.c.variant != name, _has_shadow(connection, recent.c.shadow,
                                                                 name)) for name in shadows]
    conditions += [sa.and_(recent.c.variant == name, recent.c.created_at >= since)
                   if since is not None else recent.c.variant == name for name in names]
    per_unit = (sa.select(*[sa.func.max(sa.case((condition, 1), else_=0)).label(f"f{i}")
                            for i, condition in enumerate(conditions)],
                          sa.func.count().label("decisions"),
                          sa.func.min(recent.c.created_at).label("oldest"))
                .group_by(recent.c.unit).subquery("per_unit"))
    row = connection.execute(sa.select(
        *[sa.func.sum(per_unit.c[f"f{i}"]) for i in range(len(conditions))],
        sa.func.sum(per_unit.c.decisions), sa.func.min(per_unit.c.oldest))).one()
    counts = [int(value or 0) for value in row[:-2]]
    everyone = [*names, *shadows]
    oldest = cast("datetime | None", row[-1])
    reached = int(row[-2] or 0) >= limit and oldest is not None
    return Units(units=dict(zip(everyone, counts[:len(everyone)], strict=True)),
                 srm=dict(zip(names, counts[len(everyone):], strict=True)),
                 since=as_utc(oldest) if reached and oldest is not None else None)


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
    ``units`` 0) — what auto-promotion needs."""
    with fold.lock:
        accumulators = stats.copy(config.name)
    return figures_of(accumulators, config, confidence=confidence)


def variant_figures(engine: sa.Engine, fold: Fold, stats: Stats, config: ExperimentConfig, *,
                    since: datetime | None = None, confidence: float = 0.95,
                    units_horizon: int = UNITS_HORIZON) -> tuple[list[VariantFigures], Units]:
    """Every figure of the report's variants (the accumulators, the open windows, the units
    horizon) and the units behind them."""
    accumulators, pending = aligned(engine, fold, stats, config)
    with engine.connect() as connection:
        units = recent_units(connection, config, since, units_horizon)
    return figures_of(accumulators, config, confidence=confidence, pending=pending,
                      units=units), units


def build(engine: sa.Engine, fold: Fold, stats: Stats, config: ExperimentConfig, *,
          since: datetime | None = None, segment_by: str = "",
          units_horizon: int = UNITS_HORIZON) -> Report:
    """The report of ``config``'s experiment (see the module's docstring for what each figure
    reads); SRM over decisions since ``since``; segments by a scan, only for ``segment_by``."""
    figures_, units = variant_figures(engine, fold, stats, config, since=since,
                                      units_horizon=units_horizon)
    report = Report(experiment=config.name, control=config.control, variants=figures_,
                    sample_ratio=sample_ratio_of(units.srm, config), segment_by=segment_by,
                    units_since=units.since)
    if segment_by:
        report.segments = segments(load_rows(engine, config.name, segment_by), config)
    return report
