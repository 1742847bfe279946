"""A self-contained HTML report of an offline evaluation, built from aggregates only.

:func:`render_html` takes an :class:`EvaluationReport` and returns one HTML string that opens
with the answer in business terms (the expected change in reward per 1,000 decisions and in
percent of the reference, overall and for the segments that differ most) and the verdict, then
the paired differences behind the verdict (table and chart), each candidate's evaluability
(effective sample size, unsupported mass), the estimates of every estimator, running estimates
over time with their bands, log-scale importance-weight histograms and per-segment estimates.
The charts are inline SVG drawn here, every axis titled; every number is printed by :func:`fmt`
(3 significant digits). The page loads nothing (no scripts, stylesheets, fonts or images from
anywhere), so it can be mailed or archived as a single file.

The report receives aggregates, never rows: nothing in these types can carry an event id, a
unit id or a context. The helpers :func:`cumulative_mean_curve` and
:meth:`WeightHistogram.from_weights` reduce arrays to such aggregates; :func:`verdict_text`
words a comparison with the logging policy (e.g. from ``OffPolicyEstimator.compare_to_logging``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
from numpy.typing import ArrayLike

from arbiter.evaluation._checks import EvaluationInputError, check_int, float_array
from arbiter.evaluation.verdict import judge

__all__ = [
    "Difference",
    "Estimate",
    "EvaluationReport",
    "Headline",
    "SegmentEstimate",
    "WeightHistogram",
    "cumulative_mean_curve",
    "fmt",
    "render_html",
    "verdict_text",
]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """One estimator's value for one candidate policy, with its ``[low, high]`` interval."""

    candidate: str
    estimator: str
    value: float
    low: float
    high: float


@dataclass(frozen=True, kw_only=True)
class SegmentEstimate:
    """An estimate restricted to the ``n_rounds`` logged rounds of one segment."""

    segment: str
    candidate: str
    estimator: str
    value: float
    low: float
    high: float
    n_rounds: int


@dataclass(frozen=True, kw_only=True)
class WeightHistogram:
    """Counts of a candidate's importance weights in log-spaced bins (``len(edges) ==
    len(counts) + 1``) plus ``zeros``, the weights equal to 0 (no bin on a log axis holds them)."""

    candidate: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    effective_sample_size: float | None = None
    zeros: int = 0

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.counts) + 1:
            raise EvaluationInputError(
                f"`edges` needs len(counts) + 1 = {len(self.counts) + 1} values, got {len(self.edges)}"
            )

    @property
    def total(self) -> int:
        return sum(self.counts) + self.zeros

    @classmethod
    def from_weights(
        cls,
        candidate: str,
        weights: ArrayLike,
        *,
        n_bins: int = 24,
        effective_sample_size: float | None = None,
    ) -> WeightHistogram:
        """Bin the positive importance weights ``(n,)`` into ``n_bins`` bins evenly spaced in
        log10 from the smallest to the largest (one bin when they are all equal); count zeros."""
        w = float_array(weights, "weights", ndim=1)
        check_int(n_bins, "n_bins", minimum=1)
        positive = w[w > 0]
        if positive.size == 0:
            return cls(candidate=candidate, edges=(1.0, 1.0), counts=(0,), zeros=int(w.size),
                       effective_sample_size=effective_sample_size)
        low, high = float(positive.min()), float(positive.max())
        if high <= low * (1 + 1e-9):
            edges = np.array([low, high])
        else:
            edges = np.logspace(math.log10(low), math.log10(high), n_bins + 1)
            edges[0], edges[-1] = low, high
        counts, _ = np.histogram(positive, bins=edges)
        return cls(
            candidate=candidate,
            edges=tuple(float(e) for e in edges),
            counts=tuple(int(c) for c in counts),
            effective_sample_size=effective_sample_size,
            zeros=int(w.size - positive.size),
        )


@dataclass(frozen=True, kw_only=True)
class Difference:
    """A paired difference V̂(candidate) - V(reference) on the reference's ``rounds``, with its
    interval, the minimum effect δ it is judged by, and the ``outcome`` (``better``, ``worse``,
    ``inconclusive`` or ``no verdict`` when the estimate is not evaluable)."""

    candidate: str
    reference: str
    value: float
    low: float
    high: float
    min_effect: float
    rounds: int
    effective_sample_size: float
    unsupported_share: float
    outcome: str


@dataclass(frozen=True, kw_only=True)
class Headline:
    """The answer first: ``candidate`` instead of ``reference``, as the change in reward per
    1,000 decisions and in percent of the reference's mean. ``rows`` are ``(label, per 1,000
    (value, low, high), percent (value, low, high) or None, rounds)``: overall first, then the
    segments that differ most."""

    candidate: str
    reference: str
    rows: Sequence[tuple[str, tuple[float, float, float], tuple[float, float, float] | None, int]]


Curve = Sequence[tuple[float, float, float, float]]
"""``(t, running estimate, band low, band high)`` points of a running estimate."""


@dataclass(frozen=True, kw_only=True)
class EvaluationReport:
    """Everything the page shows.

    ``baseline_value`` (the logging policy's on-policy value, the mean logged reward) is drawn
    as a reference line on the estimates chart when given. ``cumulative_reward`` maps a series
    name to its running-estimate :data:`Curve`; its values and bands are drawn clipped to
    ``reward_range`` (the range rewards can take). ``generated_at`` is shown verbatim (the
    caller formats the time, so rendering is deterministic).
    """

    title: str
    logging_policy: str
    n_rounds: int
    verdict: str
    headline: Headline | None = None
    differences: Sequence[Difference] = ()
    estimates: Sequence[Estimate] = ()
    baseline_value: float | None = None
    cumulative_reward: Mapping[str, Curve] = field(default_factory=dict)
    reward_range: tuple[float, float] | None = None
    weight_histograms: Sequence[WeightHistogram] = ()
    min_ess: float | None = None
    segments: Sequence[SegmentEstimate] = ()
    notes: Sequence[str] = ()
    generated_at: str = ""
    importance: Mapping[str, tuple[int, Sequence[tuple[str, float]]]] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def cumulative_mean_curve(terms: ArrayLike, *, max_points: int = 200,
                          z: float = 1.959963984540054) -> list[tuple[float, float, float, float]]:
    """``(t, m_t, m_t - z s_t/√t, m_t + z s_t/√t)`` at up to ``max_points`` evenly spaced t
    (last t = n), where m_t and s_t are the mean and standard deviation (ddof=1; 0 for t = 1)
    of the first t per-round ``terms`` ``(n,)``: a running estimate with its normal band."""
    r = float_array(terms, "terms", ndim=1)
    check_int(max_points, "max_points", minimum=2)
    if r.size == 0:
        return []
    t = np.unique(np.linspace(1, r.size, num=min(max_points, r.size)).round().astype(np.int64))
    centre = float(r.mean())  # sums of centred terms: stable, and two (n,) arrays at most
    deviation = r - centre
    first = np.cumsum(deviation)[t - 1]
    np.square(deviation, out=deviation)
    second = np.cumsum(deviation)[t - 1]
    means = centre + first / t
    variance = np.where(t > 1, (second - first**2 / t) / np.maximum(t - 1, 1), 0.0)
    half = z * np.sqrt(np.maximum(variance, 0.0) / t)
    return [(float(i), float(m), float(m - h), float(m + h)) for i, m, h in zip(t, means, half, strict=True)]


def fmt(x: float) -> str:
    """Every number the reports print: 3 significant digits, no exponent, thousands separated
    (``0.500``, ``0.0123``, ``-1.20``, ``60,000``); ``n/a`` for NaN or infinities."""
    if not math.isfinite(x):
        return "n/a"
    x = float(f"{x:.3g}")  # round first: 0.99999 is 1.00, not 1.000
    if x == 0.0:
        return "0"
    digits = 2 - math.floor(math.log10(abs(x)))
    if digits <= 0:
        return f"{round(x, digits):,.0f}"
    return f"{x:.{digits}f}"


def verdict_text(
    *,
    candidate: str,
    difference: float,
    low: float,
    high: float,
    confidence: float = 0.95,
    min_effect: float = 0.0,
    baseline: str = "the logging policy",
) -> str:
    """One sentence on whether ``candidate`` beats ``baseline``, by :func:`evaluation.verdict.judge`.

    ``difference`` is V̂(candidate) - V(baseline) and ``[low, high]`` its paired interval at
    ``confidence``; ``min_effect`` δ ≥ 0 the smallest difference worth calling better. The
    claim "beats" is made only when ``low > δ``, "worse" only when ``high < 0``.
    """
    if not low <= high:
        raise EvaluationInputError(f"`low` must be <= `high`, got {low!r} > {high!r}")
    level = f"{confidence * 100:g}%"
    interval = f"{level} interval [{fmt(low)}, {fmt(high)}]"
    outcome = judge(low, high, min_effect)
    if outcome == "better":
        return (f"Candidate {candidate} beats {baseline} by {fmt(difference)} ({interval}), "
                f"more than the minimum effect {fmt(min_effect)}.")
    if outcome == "worse":
        return f"Candidate {candidate} is worse than {baseline} by {fmt(-difference)} ({interval})."
    if low > 0.0:
        return (f"Not enough evidence: candidate {candidate} beats {baseline} by {fmt(difference)} "
                f"({interval}), but the lower bound does not clear the minimum effect {fmt(min_effect)}.")
    return (f"Not enough evidence: candidate {candidate} differs from {baseline} by {fmt(difference)}, "
            f"and the {interval} includes 0.")


# --------------------------------------------------------------------------- rendering


def render_html(report: EvaluationReport) -> str:
    """The report as one self-contained HTML document (a string)."""
    sections = [
        f"<h1>{escape(report.title)}</h1>",
        '<p class="meta">'
        f"Logging policy: <b>{escape(report.logging_policy)}</b> · "
        f"{report.n_rounds:,} logged rounds"
        + (f" · generated {escape(report.generated_at)}" if report.generated_at else "")
        + "</p>",
    ]
    if report.headline is not None:
        sections += _headline(report.headline)
    sections.append(f'<p class="verdict">{escape(report.verdict)}</p>')
    if report.differences:
        sections += [
            "<h2>Paired differences behind the verdict</h2>",
            _differences_svg(report.differences),
            _differences_table(report.differences),
        ]
    if report.weight_histograms:
        sections += ["<h2>Evaluability</h2>", _evaluability_table(report)]
    if report.estimates:
        sections += [
            "<h2>Estimated policy value</h2>",
            _estimates_svg(report.estimates, report.baseline_value),
            _estimates_table(report.estimates),
        ]
    if report.cumulative_reward:
        sections += [
            "<h2>Running estimates over time</h2>",
            _curves_svg(report.cumulative_reward, report.reward_range),
        ]
    if report.weight_histograms:
        sections.append("<h2>Importance weights</h2>")
        sections += [_histogram_svg(h, report.min_ess) for h in report.weight_histograms]
    if report.segments:
        sections += [
            "<h2>Per-segment estimates</h2>",
            _segments_svg(report.segments),
            _segments_table(report.segments),
        ]
    if report.importance:
        sections += ["<h2>Feature importance</h2>",
                     "<p>Mean absolute contribution of each feature to the score of the chosen "
                     "action, under each candidate's replayed model before it learned the round "
                     "(linear policies).</p>"]
        sections += [_importance_table(name, rounds, features)
                     for name, (rounds, features) in report.importance.items()]
    if report.notes:
        items = "".join(f"<li>{escape(note)}</li>" for note in report.notes)
        sections.append(f"<h2>Notes</h2><ul>{items}</ul>")
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}"
    ".meta{color:#555}.verdict{font-size:1.05em;padding:.6em .9em;background:#f3f6fa;"
    "border-left:4px solid #1f77b4}.answer{font-size:1.25em;margin:.4em 0}"
    ".answer b{font-size:1.2em}.bad{color:#b00020}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;"
    "border-bottom:1px solid #ddd;text-align:left}.num{text-align:right;white-space:nowrap}"
    "svg{display:block;margin:.5em 0;max-width:100%;height:auto}svg text{font-size:11px;fill:#333}"
    "svg .title{font-size:12px;fill:#222}"
    ".bar{display:inline-block;height:10px;background:#1f77b4}"
)

WIDTH = 760
MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 24, 12, 46
CHAR_WIDTH = 6.6
"""Pixels per character of 11px text (a generous average, so labels are never cut off)."""
DASHES = ("", "7 4", "2 3", "10 3 2 3", "4 2", "1 4")
"""Stroke patterns cycled with the colors, so that overlapping lines stay distinguishable."""


@dataclass(frozen=True)
class _Scale:
    """Maps data values in ``[low, high]`` to pixels in ``[start, stop]``."""

    low: float
    high: float
    start: float
    stop: float

    def __call__(self, value: float) -> float:
        if self.high == self.low:
            return (self.start + self.stop) / 2.0
        return self.start + (value - self.low) / (self.high - self.low) * (self.stop - self.start)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round-numbered ticks covering ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """log10 of round weights in ``[10^low, 10^high]``: powers of ten, with 2 and 5 between
    them when the range spans fewer than three decades."""
    steps = (1.0,) if high - low >= 3 else (1.0, 2.0, 5.0)
    return [math.log10(m) + e for e in range(math.floor(low), math.ceil(high) + 1) for m in steps
            if low <= math.log10(m) + e <= high]


def _padded(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.5
    return low - pad, high + pad


def _left_margin(labels: Iterable[str]) -> float:
    """Room for the longest label (right-aligned before the plot), at least 60 px."""
    return max(60.0, 14.0 + CHAR_WIDTH * max((len(label) for label in labels), default=0))


def _x_axis(scale: _Scale, y: float, top: float, title: str, *, log: bool = False) -> str:
    parts = [f'<line x1="{scale.start:.1f}" y1="{y:.1f}" x2="{scale.stop:.1f}" y2="{y:.1f}" stroke="#999"/>']
    ticks = _log_ticks(scale.low, scale.high) if log else _ticks(scale.low, scale.high)
    for tick in ticks:
        x = scale(tick)
        label = fmt(10.0**tick) if log else fmt(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{y + 14:.1f}" text-anchor="middle">{label}</text>'
        )
    middle = (scale.start + scale.stop) / 2
    parts.append(f'<text class="title" x="{middle:.1f}" y="{y + 34:.1f}" text-anchor="middle">'
                 f"{escape(title)}</text>")
    return "".join(parts)


def _y_axis(scale: _Scale, left: float, right: float, title: str, *, log: bool = False) -> str:
    parts = []
    ticks = range(0, math.floor(scale.high) + 1) if log else _ticks(scale.low, scale.high)
    for tick in ticks:
        y = scale(tick)
        label = f"{10**tick:,}" if log else fmt(tick)
        parts.append(
            f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    middle = (scale.start + scale.stop) / 2
    parts.append(f'<text class="title" x="14" y="{middle:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {middle:.1f})">{escape(title)}</text>')
    return "".join(parts)


def _svg(height: float, content: str, label: str) -> str:
    return (
        f'<svg width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'role="img" aria-label="{escape(label)}">{content}</svg>'
    )


@dataclass(frozen=True)
class _Row:
    """One row of a forest plot: a label, a value with its interval, and an optional marker."""

    label: str
    color_key: str
    value: float
    low: float
    high: float
    tooltip: str = ""
    marker: float | None = None


def _forest(rows: Sequence[_Row], *, axis_title: str, label: str,
            reference: tuple[float, str] | None = None) -> str:
    """A dot per row at its value, a bar for its interval, an optional dashed reference line
    (e.g. 0 or the logging policy's value) and a small tick at each row's ``marker``."""
    row_height = 22
    top = MARGIN_TOP + 14  # room for the reference line's label above the rows
    left = _left_margin(r.label for r in rows)
    height = top + row_height * len(rows) + MARGIN_BOTTOM
    values = [v for r in rows for v in (r.low, r.high, r.value)]
    values += [r.marker for r in rows if r.marker is not None]
    if reference is not None:
        values.append(reference[0])
    scale = _Scale(*_padded(values), left, WIDTH - MARGIN_RIGHT)
    axis_y = height - MARGIN_BOTTOM
    parts = [_x_axis(scale, axis_y, top, axis_title)]
    if reference is not None:
        x = scale(reference[0])
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y:.1f}" '
            'stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="{MARGIN_TOP + 4}" text-anchor="middle" fill="#555">'
            f"{escape(reference[1])}</text>"
        )
    colors = _colors(r.color_key for r in rows)
    for i, r in enumerate(rows):
        y = top + row_height * (i + 0.5)
        color = colors[r.color_key]
        tooltip = r.tooltip or f"{fmt(r.value)} [{fmt(r.low)}, {fmt(r.high)}]"
        parts.append(
            f'<text x="{left - 8:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(r.label)}</text>'
            f'<line x1="{scale(r.low):.1f}" y1="{y:.1f}" x2="{scale(r.high):.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<circle cx="{scale(r.value):.1f}" cy="{y:.1f}" r="4" fill="{color}">'
            f"<title>{escape(tooltip)}</title></circle>"
        )
        if r.marker is not None:
            x = scale(r.marker)
            parts.append(f'<line x1="{x:.1f}" y1="{y - 7:.1f}" x2="{x:.1f}" y2="{y + 7:.1f}" '
                         'stroke="#222" stroke-width="1.5"><title>minimum effect</title></line>')
    return _svg(height, "".join(parts), label)


def _headline(headline: Headline) -> list[str]:
    """The answer first: one sentence with the overall figure, a chart and a small table."""
    _, (value, low, high), percent, _ = headline.rows[0]
    share = "" if percent is None else (
        f" ({fmt(percent[0])}% of {escape(headline.reference)}, [{fmt(percent[1])}%, {fmt(percent[2])}%])")
    sentence = (f'<p class="answer">{escape(headline.candidate)} instead of {escape(headline.reference)}: '
                f"<b>{fmt(value)}</b> reward per 1,000 decisions [{fmt(low)}, {fmt(high)}]{share}.</p>")
    rows = [_Row(label=label, color_key=label if i else "overall", value=v[0], low=v[1], high=v[2])
            for i, (label, v, _, _) in enumerate(headline.rows)]
    chart = _forest(rows, axis_title=f"change in reward per 1,000 decisions ({headline.candidate} - "
                    f"{headline.reference})", label="expected change per 1,000 decisions",
                    reference=(0.0, "no change"))
    cells = "".join(
        f"<tr><td>{escape(label)}</td><td class='num'>{fmt(v[0])} [{fmt(v[1])}, {fmt(v[2])}]</td>"
        f"<td class='num'>{'n/a' if p is None else f'{fmt(p[0])}% [{fmt(p[1])}%, {fmt(p[2])}%]'}</td>"
        f"<td class='num'>{n:,}</td></tr>"
        for label, v, p, n in headline.rows)
    table = ("<table><tr><th></th><th class='num'>per 1,000 decisions</th><th class='num'>percent of "
             f"the reference</th><th class='num'>rounds</th></tr>{cells}</table>")
    return ["<h2>Expected change</h2>", sentence, chart, table]


def _differences_svg(differences: Sequence[Difference]) -> str:
    rows = [_Row(label=f"{d.candidate} - {d.reference}", color_key=d.candidate, value=d.value, low=d.low,
                 high=d.high, marker=d.min_effect,
                 tooltip=f"{fmt(d.value)} [{fmt(d.low)}, {fmt(d.high)}], minimum effect {fmt(d.min_effect)}")
            for d in differences]
    return _forest(rows, axis_title="paired difference in reward per decision (tick: minimum effect)",
                   label="paired differences", reference=(0.0, "0"))


def _differences_table(differences: Sequence[Difference]) -> str:
    rows = "".join(
        f"<tr><td>{escape(d.candidate)}</td><td>{escape(d.reference)}</td>"
        f'<td class="num">{fmt(d.value)}</td><td class="num">[{fmt(d.low)}, {fmt(d.high)}]</td>'
        f'<td class="num">{fmt(d.min_effect)}</td><td class="num">{d.rounds:,}</td>'
        f"<td>{escape(d.outcome)}</td></tr>"
        for d in differences
    )
    return ("<table><tr><th>candidate</th><th>reference</th><th class='num'>difference</th>"
            "<th class='num'>interval</th><th class='num'>minimum effect</th><th class='num'>rounds</th>"
            f"<th>outcome</th></tr>{rows}</table>")


def _evaluability_table(report: EvaluationReport) -> str:
    """Per candidate: ESS, its share of the rounds, and the unsupported share (from the
    differences against the logging policy, when given)."""
    unsupported = {d.candidate: d for d in report.differences}
    rows = []
    for h in report.weight_histograms:
        ess = h.effective_sample_size
        low = report.min_ess is not None and ess is not None and ess < report.min_ess
        d = unsupported.get(h.candidate)
        share = "n/a" if d is None else f"{fmt(100 * d.unsupported_share)}%"
        ess_text = "n/a" if ess is None else fmt(ess)
        of = "" if ess is None or not h.total else f" ({fmt(100 * ess / h.total)}% of {h.total:,})"
        rows.append(f"<tr><td>{escape(h.candidate)}</td><td class='num{' bad' if low else ''}'>"
                    f"{ess_text}{of}</td><td class='num'>{share}</td></tr>")
    return ("<table><tr><th>candidate</th><th class='num'>effective sample size</th><th class='num'>"
            f"mass on actions the log (nearly) never took</th></tr>{''.join(rows)}</table>")


def _estimates_svg(estimates: Sequence[Estimate], baseline: float | None) -> str:
    """Forest plot: one row per (candidate, estimator), a dot at the value, a bar for the CI."""
    rows = [_Row(label=f"{e.candidate} · {e.estimator}", color_key=e.candidate, value=e.value, low=e.low,
                 high=e.high) for e in estimates]
    return _forest(rows, axis_title="estimated reward per decision",
                   label="estimated policy value per candidate and estimator",
                   reference=None if baseline is None else (baseline, f"logging policy {fmt(baseline)}"))


def _estimates_table(estimates: Sequence[Estimate]) -> str:
    rows = "".join(
        f"<tr><td>{escape(e.candidate)}</td><td>{escape(e.estimator)}</td>"
        f'<td class="num">{fmt(e.value)}</td>'
        f'<td class="num">[{fmt(e.low)}, {fmt(e.high)}]</td></tr>'
        for e in estimates
    )
    return (
        "<table><tr><th>candidate</th><th>estimator</th><th class='num'>value</th>"
        f"<th class='num'>interval</th></tr>{rows}</table>"
    )


def _curves_svg(curves: Mapping[str, Curve], reward_range: tuple[float, float] | None) -> str:
    """Running estimates against t, each with its band, clipped to ``reward_range``; lines
    differ in color and dash, drawn widest first so identical lines stay visible; legend below."""
    points = [p for curve in curves.values() for p in curve]
    if reward_range is not None:
        low, high = reward_range
    else:
        low, high = _padded([v for p in points for v in p[1:]])
    span = (high - low) or 1.0
    clip_low, clip_high = low, high
    left = 64.0
    plot_height = 240
    legend_rows = len(curves)
    height = MARGIN_TOP + plot_height + MARGIN_BOTTOM + 18 * legend_rows + 8
    bottom = MARGIN_TOP + plot_height
    x_scale = _Scale(0.0, max((p[0] for p in points), default=1.0), left, WIDTH - MARGIN_RIGHT)
    y_scale = _Scale(low - 0.02 * span, high + 0.02 * span, bottom, MARGIN_TOP)
    parts = [_x_axis(x_scale, bottom, MARGIN_TOP, "decisions replayed (t)"),
             _y_axis(y_scale, left, WIDTH - MARGIN_RIGHT, "running estimate of reward per decision")]
    colors = _colors(curves)
    n = len(curves)

    def clip(v: float) -> float:
        return min(max(v, clip_low), clip_high)

    for i, (name, curve) in enumerate(curves.items()):
        color, dash = colors[name], DASHES[i % len(DASHES)]
        width = 1.5 + 1.5 * (n - 1 - i) / max(n - 1, 1)  # earlier series wider: both show when equal
        upper = " ".join(f"{x_scale(t):.1f},{y_scale(clip(h)):.1f}" for t, _, _, h in curve)
        lower = " ".join(f"{x_scale(t):.1f},{y_scale(clip(lo)):.1f}" for t, _, lo, _ in reversed(curve))
        line = " ".join(f"{x_scale(t):.1f},{y_scale(clip(v)):.1f}" for t, v, _, _ in curve)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polygon points="{upper} {lower}" fill="{color}" fill-opacity="0.10" stroke="none"/>'
                     f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="{width:.1f}"'
                     f"{dashed}><title>{escape(name)}</title></polyline>")
        y = bottom + MARGIN_BOTTOM + 18 * i + 4
        final = curve[-1] if curve else (0.0, math.nan, math.nan, math.nan)
        parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{left + 34:.1f}" y2="{y:.1f}" stroke="{color}" '
                     f'stroke-width="{width:.1f}"{dashed}/>'
                     f'<text x="{left + 42:.1f}" y="{y + 4:.1f}">{escape(name)}: {fmt(final[1])} '
                     f"[{fmt(final[2])}, {fmt(final[3])}] at t = {final[0]:,.0f}</text>")
    return _svg(height, "".join(parts), "running estimates over time")


def _histogram_svg(histogram: WeightHistogram, min_ess: float | None) -> str:
    """Counts per log-spaced weight bin on a log count axis (the tail shows), the effective
    sample size written in the chart (red when below ``min_ess``), and w = 1 marked."""
    height = 240
    left = 64.0
    top_y = MARGIN_TOP + 30
    bottom = height - MARGIN_BOTTOM
    edges = np.log10(np.array(histogram.edges))
    low, high = float(edges[0]), float(edges[-1])
    if high - low < 1.0:  # at least one decade, centred on the weights
        middle = (low + high) / 2
        low, high = middle - 0.5, middle + 0.5
    x_scale = _Scale(low, high, left, WIDTH - MARGIN_RIGHT)
    top = max(histogram.counts, default=0)
    y_scale = _Scale(0.0, max(math.log10(top + 1) + 0.25, 1.0), bottom, top_y)  # headroom
    ess = histogram.effective_sample_size
    short = ess is not None and min_ess is not None and ess < min_ess
    title = f"{histogram.candidate}: {histogram.total:,} weights"
    if histogram.zeros:
        title += f" ({histogram.zeros:,} equal to 0, not drawn)"
    parts = [
        _x_axis(x_scale, bottom, top_y, "importance weight w = π(a|x) / π₀(a|x) (log scale)", log=True),
        _y_axis(y_scale, left, WIDTH - MARGIN_RIGHT, "rounds (log)", log=True),
        f'<text class="title" x="{left}" y="{MARGIN_TOP + 8}">{escape(title)}</text>',
    ]
    if ess is not None:
        share = f" ({fmt(100 * ess / histogram.total)}% of the rounds)" if histogram.total else ""
        color = "#b00020" if short else "#222"
        below = f", below --min-ess {fmt(min_ess)}" if short and min_ess is not None else ""
        parts.append(f'<text class="title" x="{WIDTH - MARGIN_RIGHT}" y="{MARGIN_TOP + 8}" '
                     f'text-anchor="end" fill="{color}">effective sample size {fmt(ess)}{share}{below}'
                     "</text>")
    if low <= 0.0 <= high:
        x = x_scale(0.0)
        parts.append(f'<line x1="{x:.1f}" y1="{top_y - 6:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
                     f'stroke="#555" stroke-dasharray="4 3"/><text x="{x:.1f}" y="{top_y - 9:.1f}" '
                     'text-anchor="middle" fill="#555">w = 1 (as logged)</text>')
    for count, a, b in zip(histogram.counts, edges[:-1], edges[1:], strict=True):
        if count == 0:
            continue
        y = y_scale(math.log10(count + 1))
        x0, x1 = x_scale(float(a)), x_scale(float(b))
        parts.append(
            f'<rect x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1.0, 1.5):.1f}" '
            f'height="{bottom - y:.1f}" fill="{PALETTE[0]}"><title>[{fmt(10 ** float(a))}, '
            f"{fmt(10 ** float(b))}): {count:,}</title></rect>"
        )
    return _svg(height, "".join(parts), f"importance weights of {histogram.candidate}")


def _importance_table(name: str, rounds: int, features: Sequence[tuple[str, float]]) -> str:
    """One candidate's features by mean |contribution|, each with a bar scaled to the largest."""
    largest = max((value for _, value in features), default=0.0) or 1.0
    rows = "".join(
        f"<tr><td>{escape(feature)}</td><td class=\"num\">{fmt(value)}</td>"
        f'<td><span class="bar" style="width:{200 * value / largest:.1f}px"></span></td></tr>'
        for feature, value in features)
    return (f"<table><caption>{escape(name)} ({rounds:,} rounds)</caption>"
            "<tr><th>feature</th><th>mean |contribution|</th><th></th></tr>"
            f"{rows}</table>")


def _segments_svg(segments: Sequence[SegmentEstimate]) -> str:
    """Forest plot of the per-segment estimates: a row per (segment, candidate), colored by segment."""
    rows = [_Row(label=f"{s.segment} · {s.candidate}", color_key=s.segment, value=s.value, low=s.low,
                 high=s.high) for s in segments]
    return _forest(rows, axis_title="reward per decision (observed, or estimated by the verdict's "
                   "estimator)", label="per-segment estimates")


def _segments_table(segments: Sequence[SegmentEstimate]) -> str:
    rows = "".join(
        f"<tr><td>{escape(s.segment)}</td><td>{escape(s.candidate)}</td>"
        f'<td>{escape(s.estimator)}</td><td class="num">{s.n_rounds:,}</td>'
        f'<td class="num">{fmt(s.value)}</td>'
        f'<td class="num">[{fmt(s.low)}, {fmt(s.high)}]</td></tr>'
        for s in segments
    )
    return (
        "<table><tr><th>segment</th><th>candidate</th><th>estimator</th>"
        '<th class="num">rounds</th><th class="num">value</th><th class="num">interval</th>'
        f"</tr>{rows}</table>"
    )


def _colors(names: Iterable[str]) -> dict[str, str]:
    """A stable color per distinct name, in order of first appearance."""
    assigned: dict[str, str] = {}
    for name in names:
        if name not in assigned:
            assigned[name] = PALETTE[len(assigned) % len(PALETTE)]
    return assigned
