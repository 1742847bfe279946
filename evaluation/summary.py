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
from numpy.typing import NDArray

from arbiter.evaluation._checks import EvaluationInputError, FloatArray
from arbiter.evaluation.estimators import ESTIMATORS, OffPolicyEstimator, SwitchDR, effective_sample_size
from arbiter.evaluation.replay import CandidateSpec, ReplayLog
from arbiter.evaluation.report_html import (
    Curve,
    Difference,
    Estimate,
    EvaluationReport,
    Headline,
    SegmentEstimate,
    WeightHistogram,
    cumulative_mean_curve,
    fmt,
    verdict_text,
)
from arbiter.evaluation.verdict import (
    DEFAULT_MAX_UNSUPPORTED,
    DEFAULT_MIN_EFFECT,
    DEFAULT_MIN_ESS,
    NEAR_ZERO,
    Contender,
    MinEffect,
    Outcome,
    evaluability,
    judge,
    pick_winner,
)

__all__ = [
    "CandidateResult",
    "Comparison",
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
class Comparison:
    """A candidate against a reference on the same rounds: the paired difference V̂ - r̄.

    ``reference`` is the logging policy (every round) or one serving variant (its rounds only);
    ``min_effect`` is δ in reward units against this reference; ``outcome`` is
    :func:`evaluation.verdict.judge`'s, or None when the estimate is not evaluable (``refusal``
    says why: too few effective samples or too much unsupported mass on these rounds).
    """

    candidate: str
    reference: str
    rounds: int
    reference_mean: float
    difference: Interval
    min_effect: float
    effective_sample_size: float
    unsupported_share: float
    outcome: Outcome | None
    refusal: str = ""

    @property
    def per_thousand(self) -> Interval:
        """The difference in reward per 1,000 decisions."""
        d = self.difference
        return Interval(1000.0 * d.value, 1000.0 * d.low, 1000.0 * d.high)

    @property
    def percent(self) -> Interval | None:
        """The difference in percent of the reference's mean (None when that mean is 0)."""
        if self.reference_mean == 0.0:
            return None
        scale = 100.0 / abs(self.reference_mean)
        d = self.difference
        return Interval(scale * d.value, scale * d.low, scale * d.high)


@dataclass(frozen=True, kw_only=True)
class CandidateResult:
    """One replayed candidate: ``estimates`` by estimator name, evaluability, and its paired
    ``comparisons`` by the ``primary`` estimator (the logging policy first, then each serving
    variant when the log has several)."""

    name: str
    policy: str
    params: Mapping[str, Any]
    baseline: bool
    estimates: Mapping[str, Interval]
    effective_sample_size: float
    unsupported_share: float = 0.0
    evaluable: bool = True
    refusal: str = ""
    comparisons: Sequence[Comparison] = ()
    # the replayed model's feature importance: mean |contribution| to the chosen action's score
    # over importance_rounds rounds, largest first (empty for a policy that keeps none)
    importance: Sequence[tuple[str, float]] = ()
    importance_rounds: int = 0

    def against(self, reference: str) -> Comparison | None:
        """The comparison with ``reference`` (:data:`LOGGING` or ``"variant NAME"``)."""
        return next((c for c in self.comparisons if c.reference == reference), None)

    def versus(self, variant: str) -> Comparison | None:
        """The comparison on ``variant``'s rounds (the logging one if the log has one variant)."""
        named = self.against(_variant_label(variant))
        return named if named is not None or len(self.comparisons) > 1 else self.against(LOGGING)


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Everything an evaluation reports; aggregates only. ``reference`` is what the verdict
    compares with: the control variant on its own rounds when it is known and the log has
    several variants, else the logging policy (every round). ``headline`` is the comparison the
    report opens with (the winner's, else the best evaluable candidate's, against that
    reference); ``headline_segments`` the same per segment, largest differences first."""

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
    reference: str = LOGGING
    min_effect: str = DEFAULT_MIN_EFFECT
    control: str | None = None
    headline: Comparison | None = None
    headline_segments: Sequence[tuple[str, Comparison]] = ()
    segment_by: str | None = None
    segments: Sequence[SegmentEstimate] = ()
    curves: Mapping[str, Curve] = field(default_factory=dict)
    reward_range: tuple[float, float] = (0.0, 1.0)
    min_ess: float = DEFAULT_MIN_ESS
    histograms: Sequence[WeightHistogram] = ()
    notes: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class _Settings:
    alpha: float
    method: IntervalMethod
    n_bootstrap: int
    seed: int
    switch_tau: float
    primary: str
    min_effect: MinEffect
    min_ess: float
    max_unsupported: float

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

    def compare(self, log: ReplayLog, c: int, reference: str, rows: NDArray[np.bool_] | None) -> Comparison:
        """Candidate ``c`` against the logged rewards of ``rows`` (all rounds if None), paired."""
        inputs = log.estimator_inputs(c, rows)
        value, low, high = self.estimator(self.primary).compare_to_logging(
            **inputs, alpha=self.alpha, method=self.method, n_bootstrap=self.n_bootstrap, seed=self.seed)
        pick = slice(None) if rows is None else rows
        n = int(inputs["reward"].shape[0])
        mean = float(inputs["reward"].mean())
        ess = effective_sample_size(log.weights(c)[pick])
        unsupported = float(log.unsupported[c][pick].mean())
        fit = evaluability(ess=ess, n=n, unsupported=unsupported, min_ess=self.min_ess,
                           max_unsupported=self.max_unsupported)
        threshold = self.min_effect.threshold(mean)
        return Comparison(candidate=log.names[c], reference=reference, rounds=n, reference_mean=mean,
                          difference=Interval(value, low, high), min_effect=threshold,
                          effective_sample_size=ess, unsupported_share=unsupported,
                          outcome=judge(low, high, threshold) if fit.ok else None, refusal=fit.reason)


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
    min_effect: str = DEFAULT_MIN_EFFECT,
    min_ess: float = DEFAULT_MIN_ESS,
    max_unsupported: float = DEFAULT_MAX_UNSUPPORTED,
    control: str | None = None,
) -> Summary:
    """Aggregates of ``log``, whose candidate ``c`` was replayed from ``candidates[c]``.

    Intervals are at ``confidence`` by ``interval`` (``"normal"``: Wald from influence terms,
    O(n); ``"bootstrap"``: percentile bootstrap, O(n_bootstrap·n)). The winner is decided by
    :func:`evaluation.verdict.pick_winner` on the paired differences with the logging policy:
    the evaluable candidate not named in ``baselines`` whose difference clears ``min_effect``
    (``"0.01"`` reward units or ``"1%"`` of the logged mean), highest estimate first.
    ``control`` (the champion variant, when known) is the headline's reference.
    """
    if log.n < 2:
        raise EvaluationInputError(f"need at least 2 learned rounds to evaluate, got {log.n}")
    if primary not in ESTIMATORS:
        raise EvaluationInputError(f"`primary` must be one of {', '.join(ESTIMATORS)}, got {primary!r}")
    try:
        effect = MinEffect.parse(min_effect)
    except ValueError as error:
        raise EvaluationInputError(str(error)) from None
    settings = _Settings(alpha=1.0 - confidence, method=interval, n_bootstrap=n_bootstrap, seed=seed,
                         switch_tau=switch_tau, primary=primary, min_effect=effect, min_ess=min_ess,
                         max_unsupported=max_unsupported)
    notes: list[str] = []
    results = [_candidate(log, c, spec, spec.name in baselines, settings, notes)
               for c, spec in enumerate(candidates)]
    reference = (_variant_label(control) if control in log.variants and len(log.variants) > 1
                 else LOGGING)
    contenders = [r for r in results if not r.baseline and r.against(reference) is not None]
    winner = pick_winner([_contender(r, primary, reference) for r in contenders],
                         _effect(contenders, reference))
    leader = _leader(contenders, winner.name if winner else None, primary, reference)
    headline = None if leader is None else leader.against(reference)
    return Summary(
        experiment=experiment, n_rounds=log.n, confidence=confidence, interval=interval,
        primary=primary, logging=settings.mean(log.reward),
        variants={name: VariantResult(int(np.sum(rows)), settings.mean(log.reward[rows]))
                  for name, rows in ((name, log.variant == v) for v, name in enumerate(log.variants))},
        candidates=results, winner=None if winner is None else winner.name,
        verdict=_verdict(contenders, leader, confidence, reference),
        reference=reference, min_effect=str(effect), control=control, headline=headline,
        headline_segments=_headline_segments(log, settings, leader, control),
        segment_by=segment_by, segments=_segments(log, settings, notes),
        curves=_curves(log, NormalDist().inv_cdf(0.5 + confidence / 2)),
        reward_range=(float(log.reward.min()), float(log.reward.max())),
        histograms=_histograms(log, results), min_ess=min_ess, notes=tuple(notes),
    )


def _variant_label(name: str) -> str:
    return f"variant {name}"


def _contender(result: CandidateResult, primary: str, reference: str) -> Contender:
    versus = result.against(reference)
    assert versus is not None
    return Contender(name=result.name, value=result.estimates[primary].value, low=versus.difference.low,
                     high=versus.difference.high, evaluable=versus.outcome is not None)


def _effect(contenders: Sequence[CandidateResult], reference: str) -> float:
    """δ against ``reference`` (the same for every candidate: same rounds, same mean)."""
    versus = next((c for r in contenders if (c := r.against(reference)) is not None), None)
    return math.inf if versus is None else versus.min_effect


def _leader(contenders: Sequence[CandidateResult], winner: str | None, primary: str,
            reference: str) -> CandidateResult | None:
    """The winner, else the evaluable candidate with the highest estimate, else the highest."""
    if winner is not None:
        return next(r for r in contenders if r.name == winner)
    evaluable = [r for r in contenders if (c := r.against(reference)) is not None and c.outcome is not None]
    return max(evaluable or contenders, key=lambda r: r.estimates[primary].value, default=None)


def _verdict(contenders: Sequence[CandidateResult], leader: CandidateResult | None, confidence: float,
             reference: str) -> str:
    """The verdict sentence, from the one rule (:func:`evaluation.verdict.pick_winner`)."""
    versus = None if leader is None else leader.against(reference)
    if leader is None or versus is None:
        return "Not enough evidence: no candidate could be estimated."
    d = versus.difference
    if versus.outcome is None:
        return f"No verdict: candidate {leader.name} cannot be judged from this log: {versus.refusal}."
    baseline = "the logging policy" if reference == LOGGING else f"{reference} on its own rounds"
    sentence = verdict_text(candidate=leader.name, difference=d.value, low=d.low, high=d.high,
                            confidence=confidence, min_effect=versus.min_effect, baseline=baseline)
    refused = [r.name for r in contenders if (c := r.against(reference)) is not None and c.outcome is None]
    if refused:
        sentence += f" No verdict for {', '.join(refused)}: too little support in the log (see notes)."
    return sentence


def _candidate(log: ReplayLog, c: int, spec: CandidateSpec, baseline: bool, settings: _Settings,
               notes: list[str]) -> CandidateResult:
    inputs = log.estimator_inputs(c)
    estimates: dict[str, Interval] = {}
    for name in ESTIMATORS:
        try:
            estimates[name] = settings.interval(settings.estimator(name), inputs)
        except EvaluationInputError as error:
            notes.append(f"{log.names[c]} · {name}: not estimated ({error})")
    comparisons: list[Comparison] = []
    if settings.primary in estimates:
        comparisons.append(settings.compare(log, c, LOGGING, None))
        if len(log.variants) > 1:
            for v, variant in enumerate(log.variants):
                rows = log.variant == v
                if int(rows.sum()) >= 2:
                    comparisons.append(settings.compare(log, c, _variant_label(variant), rows))
    ess = effective_sample_size(log.weights(c))
    unsupported = float(log.unsupported[c].mean())
    fit = evaluability(ess=ess, n=log.n, unsupported=unsupported, min_ess=settings.min_ess,
                       max_unsupported=settings.max_unsupported)
    if not fit.ok and not baseline:
        notes.append(f"no verdict for {spec.name}: {fit.reason}")
    return CandidateResult(name=spec.name, policy=spec.policy, params=dict(spec.params), baseline=baseline,
                           estimates=estimates, effective_sample_size=ess, unsupported_share=unsupported,
                           evaluable=fit.ok, refusal=fit.reason, comparisons=comparisons,
                           importance=log.importance[c][1] if log.importance else (),
                           importance_rounds=log.importance[c][0] if log.importance else 0)


def _headline_segments(log: ReplayLog, settings: _Settings, leader: CandidateResult | None,
                       control: str | None, top: int = 3) -> list[tuple[str, Comparison]]:
    """The leader against the reference per segment: the ``top`` largest differences in size."""
    if leader is None or not log.segments:
        return []
    c = log.names.index(leader.name)
    variant = log.variants.index(control) if control in log.variants and len(log.variants) > 1 else None
    out: list[tuple[str, Comparison]] = []
    for s, segment in enumerate(log.segments):
        rows = log.segment == s
        if variant is not None:
            rows = rows & (log.variant == variant)
        if int(rows.sum()) < 2:
            continue
        reference = LOGGING if variant is None else _variant_label(log.variants[variant])
        try:
            out.append((segment, settings.compare(log, c, reference, rows)))
        except EvaluationInputError:
            continue
    out.sort(key=lambda pair: -abs(pair[1].difference.value))
    return out[:top]


def _segments(log: ReplayLog, settings: _Settings, notes: list[str]) -> list[SegmentEstimate]:
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
                est = settings.interval(settings.estimator(settings.primary), log.estimator_inputs(c, rows))
            except EvaluationInputError as error:
                notes.append(f"segment {segment}, {name}: not estimated ({error})")
                continue
            out.append(SegmentEstimate(segment=segment, candidate=name, estimator=settings.primary,
                                       n_rounds=n, value=est.value, low=est.low, high=est.high))
    return out


def _curves(log: ReplayLog, z: float) -> dict[str, Curve]:
    """Running means with normal bands: observed reward per logged variant, and each
    candidate's running DR estimate (the mean of its DR terms so far)."""
    curves: dict[str, Curve] = {f"logged: {name}": cumulative_mean_curve(log.reward[log.variant == v], z=z)
              for v, name in enumerate(log.variants)}
    for c, name in enumerate(log.names):
        dr_terms = log.q_policy[c] + log.weights(c) * (log.reward - log.q_logged)
        curves[f"replay: {name}"] = cumulative_mean_curve(dr_terms, z=z)
    return curves


def _histograms(log: ReplayLog, candidates: Sequence[CandidateResult]) -> list[WeightHistogram]:
    return [WeightHistogram.from_weights(r.name, log.weights(c),
                                         effective_sample_size=r.effective_sample_size)
            for c, r in enumerate(candidates)]


# --------------------------------------------------------------------------- presentation


def headline_lines(summary: Summary) -> list[str]:
    """The answer first, in business terms: the expected change in reward per 1,000 decisions and
    in percent of the reference, with its interval, overall and for the segments that differ most."""
    h = summary.headline
    if h is None:
        return [summary.verdict]
    level = f"{summary.confidence * 100:g}%"
    lines = [f"{summary.verdict}", f"Expected change if {h.candidate} replaced {h.reference} "
             f"({level} interval, {summary.primary}):", "  " + _business(h)]
    for segment, comparison in summary.headline_segments:
        lines.append(f"  {summary.segment_by} = {segment}: " + _business(comparison))
    return lines


def _business(c: Comparison) -> str:
    per = c.per_thousand
    text = f"{fmt(per.value)} reward per 1,000 decisions [{fmt(per.low)}, {fmt(per.high)}]"
    pct = c.percent
    if pct is not None:
        text += f", {fmt(pct.value)}% of {fmt(c.reference_mean)} [{fmt(pct.low)}%, {fmt(pct.high)}%]"
    return text + f" over {c.rounds:,} rounds"


def format_table(summary: Summary) -> str:
    """The console report: the headline and verdict first, then one row per candidate with
    ``value ±half-width`` per estimator, ESS and unsupported share, then the paired differences."""
    names = list(ESTIMATORS)
    width = max(len(LOGGING), *(len(c.name) for c in summary.candidates)) + 2
    level = f"{summary.confidence * 100:g}%"
    lines = [
        *headline_lines(summary),
        "",
        f"experiment {summary.experiment}: {summary.n_rounds:,} learned rounds; "
        f"{level} {summary.interval} intervals (value ±half-width, fixed-sample)",
        "",
        f"{'candidate':<{width}}" + "".join(f"{n:>21}" for n in names) + f"{'ESS':>10}{'unsupp.':>9}",
    ]

    def cell(interval: Interval | None) -> str:
        if interval is None:
            return f"{'n/a':>21}"
        return f"{fmt(interval.value):>10} ±{fmt((interval.high - interval.low) / 2):<9}"

    lines.append(f"{LOGGING:<{width}}" + cell(summary.logging) + " (observed mean)")
    for c in summary.candidates:
        label = c.name + (" *" if c.baseline else "")
        lines.append(f"{label:<{width}}" + "".join(cell(c.estimates.get(n)) for n in names)
                     + f"{fmt(c.effective_sample_size):>10}{c.unsupported_share:>9.1%}")
    lines += ["", "* baseline", "", "observed mean reward per logged variant:"]
    for name, variant in summary.variants.items():
        lines.append(f"  {name:<{width}}{cell(variant.observed)}  ({variant.rounds:,} rounds)")
    lines += ["", f"paired difference candidate - reference ({summary.primary}, {level}; better = lower "
              f"bound above the minimum effect, {summary.min_effect}):"]
    for c in summary.candidates:
        for comparison in c.comparisons:
            lines.append("  " + comparison_line(comparison))
    for c in summary.candidates:
        if c.importance:
            lines.append(f"feature importance of {c.name} (mean |contribution| over "
                         f"{c.importance_rounds:,} rounds): "
                         + ", ".join(f"{feature} {fmt(value)}" for feature, value in c.importance))
    lines += [f"note: {note}" for note in summary.notes]
    return "\n".join(lines)


def comparison_line(c: Comparison) -> str:
    """One comparison as text: who against whom, the difference, its interval and the outcome."""
    d = c.difference
    outcome = c.outcome if c.outcome is not None else "no verdict (too little support)"
    return (f"{c.candidate} - {c.reference}: {fmt(d.value)} [{fmt(d.low)}, {fmt(d.high)}], "
            f"minimum effect {fmt(c.min_effect)}, ESS {fmt(c.effective_sample_size)} of {c.rounds:,}: "
            f"{outcome}")


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
        f"Intervals: {level}, {summary.interval}, fixed-sample (valid for one look at this log). The "
        f"verdict, the paired differences and the per-segment estimates use the {summary.primary} "
        f"estimator. A candidate is better when the lower bound of its paired difference clears the "
        f"minimum effect ({summary.min_effect}); the winner is the better evaluable candidate with the "
        "highest estimate.",
        f"Evaluability: no verdict below an effective sample size of {fmt(summary.min_ess)} or with "
        f"too much of a candidate's mass on actions the log gave probability < {NEAR_ZERO:g}.",
        "Candidates are replayed progressively: each scores a logged round, then learns from it. "
        "The reward model for DM/DR is a ridge regression fitted on earlier rounds only.",
        "Running estimates: 'logged' is a variant's observed mean reward so far, 'replay' a "
        f"candidate's running DR estimate; bands are {level} normal intervals, both drawn within "
        f"the observed reward range [{fmt(summary.reward_range[0])}, {fmt(summary.reward_range[1])}].",
        *(f"Observed mean reward of variant {name}: {fmt(v.observed.value)} [{fmt(v.observed.low)}, "
          f"{fmt(v.observed.high)}] over {v.rounds:,} rounds." for name, v in summary.variants.items()),
        *summary.notes,
    ]
    return EvaluationReport(
        title=f"Offline evaluation: {summary.experiment}",
        logging_policy=", ".join(summary.variants) or "unknown",
        n_rounds=summary.n_rounds, verdict=summary.verdict, headline=_headline(summary),
        differences=[_difference(d) for c in summary.candidates for d in c.comparisons],
        estimates=estimates, baseline_value=summary.logging.value, cumulative_reward=summary.curves,
        reward_range=summary.reward_range, weight_histograms=summary.histograms, min_ess=summary.min_ess,
        segments=summary.segments, notes=notes, generated_at=generated_at,
        importance={c.name: (c.importance_rounds, c.importance) for c in summary.candidates
                    if c.importance},
    )


def _difference(c: Comparison) -> Difference:
    d = c.difference
    return Difference(candidate=c.candidate, reference=c.reference, value=d.value, low=d.low, high=d.high,
                      min_effect=c.min_effect, rounds=c.rounds, effective_sample_size=c.effective_sample_size,
                      unsupported_share=c.unsupported_share, outcome=c.outcome or "no verdict")


def _headline(summary: Summary) -> Headline | None:
    h = summary.headline
    if h is None:
        return None

    def row(label: str, c: Comparison) -> tuple[str, tuple[float, float, float],
                                                tuple[float, float, float] | None, int]:
        per, pct = c.per_thousand, c.percent
        return (label, (per.value, per.low, per.high),
                None if pct is None else (pct.value, pct.low, pct.high), c.rounds)

    return Headline(candidate=h.candidate, reference=h.reference, rows=[
        row("overall", h),
        *(row(f"{summary.segment_by} = {segment}", c) for segment, c in summary.headline_segments)])
