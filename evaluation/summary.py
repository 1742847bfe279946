"""From a replay to aggregates: every (candidate, estimator) with its interval, and a verdict.

:func:`summarize` turns a :class:`ReplayLog` into a :class:`Summary` that holds aggregates only
(no row of the log): the logging policy's observed mean reward (overall and per variant) with
normal intervals, each candidate's estimate by every estimator in :data:`ESTIMATORS` with its
interval, its effective sample size, its paired difference to the logging policy by the
``primary`` estimator, per-segment estimates, cumulative-reward curves and weight histograms.
:func:`format_table`, :func:`to_json` and :func:`to_report` present it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from arbiter.evaluation._checks import EvaluationInputError, FloatArray
from arbiter.evaluation.estimators import ESTIMATORS, OffPolicyEstimator, SwitchDR, effective_sample_size
from arbiter.evaluation.replay import CandidateSpec, ReplayLog
from arbiter.evaluation.report_html import (
    Estimate,
    EvaluationReport,
    SegmentEstimate,
    WeightHistogram,
    cumulative_mean_curve,
    verdict_text,
)

__all__ = [
    "CandidateResult",
    "Interval",
    "Summary",
    "VariantResult",
    "format_table",
    "summarize",
    "to_json",
    "to_report",
]

LOGGING = "logging policy"
"""The name the logging policy's observed mean goes by in tables and reports."""

IntervalMethod = Literal["normal", "bootstrap"]


@dataclass(frozen=True)
class Interval:
    """An estimate and its ``[low, high]`` confidence interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class VariantResult:
    """A logged variant: its number of learned ``rounds`` and observed mean reward."""

    rounds: int
    observed: Interval


@dataclass(frozen=True, kw_only=True)
class CandidateResult:
    """One replayed candidate: ``estimates`` by estimator name, ESS, and V̂ - r̄ (``primary``)."""

    name: str
    policy: str
    params: Mapping[str, Any]
    baseline: bool
    estimates: Mapping[str, Interval]
    versus_logging: Interval | None
    effective_sample_size: float


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Everything an evaluation reports; aggregates only."""

    experiment: str
    n_rounds: int
    confidence: float
    interval: IntervalMethod
    primary: str
    logging: Interval
    variants: Mapping[str, VariantResult]
    candidates: Sequence[CandidateResult]
    winner: str | None
    verdict: str
    segment_by: str | None = None
    segments: Sequence[SegmentEstimate] = ()
    curves: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    histograms: Sequence[WeightHistogram] = ()
    notes: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class _Settings:
    alpha: float
    method: IntervalMethod
    n_bootstrap: int
    seed: int
    switch_tau: float

    def estimator(self, name: str) -> OffPolicyEstimator:
        cls = ESTIMATORS[name]
        return SwitchDR(tau=self.switch_tau) if cls is SwitchDR else cls()

    def interval(self, estimator: OffPolicyEstimator, inputs: Mapping[str, Any]) -> Interval:
        value = estimator.estimate_policy_value(**inputs)
        low, high = estimator.estimate_interval(**inputs, alpha=self.alpha, method=self.method,
                                                n_bootstrap=self.n_bootstrap, seed=self.seed)
        return Interval(value, low, high)

    def mean(self, reward: FloatArray) -> Interval:
        """The observed mean with a normal interval (a point interval for a single round)."""
        value = float(reward.mean())
        if reward.size < 2:
            return Interval(value, value, value)
        z = NormalDist().inv_cdf(1.0 - self.alpha / 2.0)
        half = z * float(reward.std(ddof=1)) / math.sqrt(reward.size)
        return Interval(value, value - half, value + half)


def summarize(
    log: ReplayLog,
    *,
    experiment: str,
    candidates: Sequence[CandidateSpec],
    baselines: Collection[str] = (),
    confidence: float = 0.95,
    interval: IntervalMethod = "normal",
    n_bootstrap: int = 1000,
    seed: int = 0,
    primary: str = "dr",
    switch_tau: float = math.inf,
    segment_by: str | None = None,
) -> Summary:
    """Aggregates of ``log``, whose candidate ``c`` was replayed from ``candidates[c]``.

    Intervals are at ``confidence`` by ``interval`` (``"normal"``: Wald from influence terms,
    O(n); ``"bootstrap"``: percentile bootstrap, O(n_bootstrap·n)). The winner is the candidate
    not named in ``baselines`` with the highest lower bound of its ``primary`` estimate.
    """
    if log.n < 2:
        raise EvaluationInputError(f"need at least 2 learned rounds to evaluate, got {log.n}")
    if primary not in ESTIMATORS:
        raise EvaluationInputError(f"`primary` must be one of {', '.join(ESTIMATORS)}, got {primary!r}")
    settings = _Settings(alpha=1.0 - confidence, method=interval, n_bootstrap=n_bootstrap, seed=seed,
                         switch_tau=switch_tau)
    notes: list[str] = []
    results = [_candidate(log, c, spec, spec.name in baselines, settings, primary, notes)
               for c, spec in enumerate(candidates)]
    contenders = [c for c in results if not c.baseline and primary in c.estimates]
    winner = max(contenders, key=lambda c: c.estimates[primary].low, default=None)
    if winner is None or winner.versus_logging is None:
        verdict = "Not enough evidence: no candidate could be estimated."
    else:
        difference = winner.versus_logging
        verdict = verdict_text(candidate=winner.name, difference=difference.value, low=difference.low,
                               high=difference.high, confidence=confidence)
    return Summary(
        experiment=experiment, n_rounds=log.n, confidence=confidence, interval=interval,
        primary=primary, logging=settings.mean(log.reward),
        variants={name: VariantResult(int(np.sum(rows)), settings.mean(log.reward[rows]))
                  for name, rows in ((name, log.variant == v) for v, name in enumerate(log.variants))},
        candidates=results, winner=None if winner is None else winner.name, verdict=verdict,
        segment_by=segment_by, segments=_segments(log, settings, primary, notes),
        curves=_curves(log), histograms=_histograms(log, results), notes=tuple(notes),
    )


def _candidate(log: ReplayLog, c: int, spec: CandidateSpec, baseline: bool, settings: _Settings,
               primary: str, notes: list[str]) -> CandidateResult:
    inputs = log.estimator_inputs(c)
    estimates: dict[str, Interval] = {}
    for name in ESTIMATORS:
        try:
            estimates[name] = settings.interval(settings.estimator(name), inputs)
        except EvaluationInputError as error:
            notes.append(f"{log.names[c]} · {name}: not estimated ({error})")
    versus: Interval | None = None
    if primary in estimates:
        versus = Interval(*settings.estimator(primary).compare_to_logging(
            **inputs, alpha=settings.alpha, method=settings.method,
            n_bootstrap=settings.n_bootstrap, seed=settings.seed))
    return CandidateResult(name=spec.name, policy=spec.policy, params=dict(spec.params), baseline=baseline,
                           estimates=estimates, versus_logging=versus,
                           effective_sample_size=effective_sample_size(log.weights(c)))


def _segments(log: ReplayLog, settings: _Settings, primary: str, notes: list[str]) -> list[SegmentEstimate]:
    """Per segment: the observed mean and each candidate's ``primary`` estimate."""
    out: list[SegmentEstimate] = []
    for s, segment in enumerate(log.segments):
        rows = log.segment == s
        n = int(rows.sum())
        observed = settings.mean(log.reward[rows])
        out.append(SegmentEstimate(segment=segment, candidate=LOGGING, estimator="observed", n_rounds=n,
                                   value=observed.value, low=observed.low, high=observed.high))
        if n < 2:
            continue
        for c, name in enumerate(log.names):
            try:
                est = settings.interval(settings.estimator(primary), log.estimator_inputs(c, rows))
            except EvaluationInputError as error:
                notes.append(f"segment {segment}, {name}: not estimated ({error})")
                continue
            out.append(SegmentEstimate(segment=segment, candidate=name, estimator=primary, n_rounds=n,
                                       value=est.value, low=est.low, high=est.high))
    return out


def _curves(log: ReplayLog) -> dict[str, list[tuple[float, float]]]:
    """Cumulative mean reward per logged variant, and each candidate's replayed DR terms."""
    curves = {f"logged: {name}": cumulative_mean_curve(log.reward[log.variant == v])
              for v, name in enumerate(log.variants)}
    for c, name in enumerate(log.names):
        dr_terms = log.q_policy[c] + log.weights(c) * (log.reward - log.q_logged)
        curves[f"replay: {name}"] = cumulative_mean_curve(dr_terms)
    return curves


def _histograms(log: ReplayLog, candidates: Sequence[CandidateResult]) -> list[WeightHistogram]:
    return [WeightHistogram.from_weights(r.name, log.weights(c),
                                         effective_sample_size=r.effective_sample_size)
            for c, r in enumerate(candidates)]


# --------------------------------------------------------------------------- presentation


def format_table(summary: Summary) -> str:
    """A plain-text table: one row per candidate, ``value ±half-width`` per estimator, and ESS."""
    names = list(ESTIMATORS)
    width = max(len(LOGGING), *(len(c.name) for c in summary.candidates)) + 2
    level = f"{summary.confidence * 100:g}%"
    lines = [
        f"experiment {summary.experiment}: {summary.n_rounds:,} learned rounds; "
        f"{level} {summary.interval} intervals (value ±half-width)",
        "",
        f"{'candidate':<{width}}" + "".join(f"{n:>18}" for n in names) + f"{'ESS':>12}",
    ]

    def cell(interval: Interval | None) -> str:
        if interval is None:
            return f"{'n/a':>18}"
        return f"{interval.value:>10.4f} ±{(interval.high - interval.low) / 2:<6.4f}"

    lines.append(f"{LOGGING:<{width}}" + cell(summary.logging) + " (observed mean)")
    for c in summary.candidates:
        label = c.name + (" *" if c.baseline else "")
        lines.append(f"{label:<{width}}" + "".join(cell(c.estimates.get(n)) for n in names)
                     + f"{c.effective_sample_size:>12,.0f}")
    lines += ["", "* baseline", "", "observed mean reward per logged variant:"]
    for name, variant in summary.variants.items():
        lines.append(f"  {name:<{width}}{cell(variant.observed)}  ({variant.rounds:,} rounds)")
    lines += ["", summary.verdict]
    lines += [f"note: {note}" for note in summary.notes]
    return "\n".join(lines)


def to_json(summary: Summary) -> dict[str, Any]:
    """The summary as plain JSON values (NaN and infinities become null)."""
    out: dict[str, Any] = _finite(asdict(summary))
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_report(summary: Summary, *, generated_at: str = "") -> EvaluationReport:
    """The HTML report's aggregates (see :func:`evaluation.render_html`)."""
    estimates = [Estimate(candidate=LOGGING, estimator="observed", value=summary.logging.value,
                          low=summary.logging.low, high=summary.logging.high)]
    estimates += [Estimate(candidate=c.name, estimator=name, value=i.value, low=i.low, high=i.high)
                  for c in summary.candidates for name, i in c.estimates.items()]
    level = f"{summary.confidence * 100:g}%"
    notes = [
        f"Intervals: {level}, {summary.interval}. The verdict and the per-segment estimates use "
        f"the {summary.primary} estimator; the winner is the candidate with the highest lower bound.",
        "Candidates are replayed progressively: each scores a logged round, then learns from it. "
        "The reward model for DM/DR is a ridge regression fitted on earlier rounds only.",
        "Cumulative curves: 'logged' is a variant's observed mean reward, 'replay' a candidate's "
        "running DR estimate.",
        *(f"Observed mean reward of variant {name}: {v.observed.value:.4g} [{v.observed.low:.4g}, "
          f"{v.observed.high:.4g}] over {v.rounds:,} rounds." for name, v in summary.variants.items()),
        *summary.notes,
    ]
    return EvaluationReport(
        title=f"Offline evaluation: {summary.experiment}",
        logging_policy=", ".join(summary.variants) or "unknown",
        n_rounds=summary.n_rounds, verdict=summary.verdict, estimates=estimates,
        baseline_value=summary.logging.value, cumulative_reward=summary.curves,
        weight_histograms=summary.histograms, segments=summary.segments, notes=notes,
        generated_at=generated_at,
    )
