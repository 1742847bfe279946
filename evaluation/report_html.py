"""A self-contained HTML report of an offline evaluation, built from aggregates only.

:func:`render_html` takes an :class:`EvaluationReport` — estimates with intervals per candidate
and estimator, cumulative-reward curves per variant, importance-weight histograms, per-segment
estimates and a plain-language verdict — and returns one HTML string. The charts are inline SVG
drawn here; the page loads nothing (no scripts, stylesheets, fonts or images from anywhere), so
it can be mailed or archived as a single file.

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
    "Estimate",
    "EvaluationReport",
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
    """Counts of a candidate's importance weights in bins; ``len(edges) == len(counts) + 1``."""

    candidate: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    effective_sample_size: float | None = None

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.counts) + 1:
            raise EvaluationInputError(
                f"`edges` needs len(counts) + 1 = {len(self.counts) + 1} values, got {len(self.edges)}"
            )

    @classmethod
    def from_weights(
        cls,
        candidate: str,
        weights: ArrayLike,
        *,
        n_bins: int = 20,
        effective_sample_size: float | None = None,
    ) -> WeightHistogram:
        """Bin importance weights ``(n,)`` into ``n_bins`` equal bins from 0 to the largest."""
        w = float_array(weights, "weights", ndim=1)
        check_int(n_bins, "n_bins", minimum=1)
        top = float(w.max()) if w.size and w.max() > 0 else 1.0
        counts, edges = np.histogram(w, bins=n_bins, range=(0.0, top))
        return cls(
            candidate=candidate,
            edges=tuple(float(e) for e in edges),
            counts=tuple(int(c) for c in counts),
            effective_sample_size=effective_sample_size,
        )


@dataclass(frozen=True, kw_only=True)
class EvaluationReport:
    """Everything the page shows. Curves map a variant name to ``(t, cumulative mean)`` points.

    ``baseline_value`` (the logging policy's on-policy value, the mean logged reward) is drawn
    as a reference line on the estimates chart when given. ``generated_at`` is shown verbatim
    (the caller formats the time, so rendering is deterministic).
    """

    title: str
    logging_policy: str
    n_rounds: int
    verdict: str
    estimates: Sequence[Estimate] = ()
    baseline_value: float | None = None
    cumulative_reward: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    weight_histograms: Sequence[WeightHistogram] = ()
    segments: Sequence[SegmentEstimate] = ()
    notes: Sequence[str] = ()
    generated_at: str = ""


# --------------------------------------------------------------------------- helpers


def cumulative_mean_curve(reward: ArrayLike, *, max_points: int = 200) -> list[tuple[float, float]]:
    """``(t, mean of the first t rewards)`` at up to ``max_points`` evenly spaced t, last t = n.

    ``reward`` is ``(n,)`` in log order; the curve is what a variant's panel plots.
    """
    r = float_array(reward, "reward", ndim=1)
    check_int(max_points, "max_points", minimum=2)
    if r.size == 0:
        return []
    means = np.cumsum(r) / np.arange(1, r.size + 1)
    t = np.unique(np.linspace(1, r.size, num=min(max_points, r.size)).round().astype(np.int64))
    return [(float(i), float(means[i - 1])) for i in t]


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
        f'<p class="verdict">{escape(report.verdict)}</p>',
    ]
    if report.estimates:
        sections += [
            "<h2>Estimated policy value</h2>",
            _estimates_svg(report.estimates, report.baseline_value),
            _estimates_table(report.estimates),
        ]
    if report.cumulative_reward:
        sections += [
            "<h2>Cumulative mean reward over time</h2>",
            _curves_svg(report.cumulative_reward),
        ]
    if report.weight_histograms:
        sections.append("<h2>Importance weights</h2>")
        sections += [_histogram_svg(h) for h in report.weight_histograms]
    if report.segments:
        sections += [
            "<h2>Per-segment estimates</h2>",
            _segments_svg(report.segments),
            _segments_table(report.segments),
        ]
    if report.notes:
        items = "".join(f"<li>{escape(note)}</li>" for note in report.notes)
        sections.append(f"<h2>Notes</h2><ul>{items}</ul>")
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}"
    ".meta{color:#555}.verdict{font-size:1.1em;padding:.6em .9em;background:#f3f6fa;"
    "border-left:4px solid #1f77b4}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;"
    "border-bottom:1px solid #ddd;text-align:left}.num{text-align:right}"
    "svg{display:block;margin:.5em 0}svg text{font-size:11px;fill:#333}"
)

WIDTH = 720
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 170, 20, 10, 30


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


def _padded(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.5
    return low - pad, high + pad


def _x_axis(scale: _Scale, y: float, top: float) -> str:
    parts = [f'<line x1="{scale.start:.1f}" y1="{y:.1f}" x2="{scale.stop:.1f}" y2="{y:.1f}" stroke="#999"/>']
    for tick in _ticks(scale.low, scale.high):
        x = scale(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{y + 14:.1f}" text-anchor="middle">{fmt(tick)}</text>'
        )
    return "".join(parts)


def _svg(height: float, content: str, label: str) -> str:
    return (
        f'<svg width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'role="img" aria-label="{escape(label)}">{content}</svg>'
    )


def _estimates_svg(estimates: Sequence[Estimate], baseline: float | None) -> str:
    """Forest plot: one row per (candidate, estimator), a dot at the value, a bar for the CI."""
    row_height = 22
    height = MARGIN_TOP + row_height * len(estimates) + MARGIN_BOTTOM
    values = [v for e in estimates for v in (e.low, e.high, e.value)]
    if baseline is not None:
        values.append(baseline)
    scale = _Scale(*_padded(values), MARGIN_LEFT, WIDTH - MARGIN_RIGHT)
    axis_y = height - MARGIN_BOTTOM
    parts = [_x_axis(scale, axis_y, MARGIN_TOP)]
    if baseline is not None:
        x = scale(baseline)
        parts.append(
            f'<line x1="{x:.1f}" y1="{MARGIN_TOP}" x2="{x:.1f}" y2="{axis_y:.1f}" '
            'stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{x + 4:.1f}" y="{axis_y - 4:.1f}" fill="#555">logging policy '
            f"{fmt(baseline)}</text>"
        )
    colors = _colors(e.candidate for e in estimates)
    for i, e in enumerate(estimates):
        y = MARGIN_TOP + row_height * (i + 0.5)
        color = colors[e.candidate]
        parts.append(
            f'<text x="{MARGIN_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(e.candidate)} · {escape(e.estimator)}</text>"
            f'<line x1="{scale(e.low):.1f}" y1="{y:.1f}" x2="{scale(e.high):.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<circle cx="{scale(e.value):.1f}" cy="{y:.1f}" r="4" fill="{color}">'
            f"<title>{fmt(e.value)} [{fmt(e.low)}, {fmt(e.high)}]</title></circle>"
        )
    return _svg(height, "".join(parts), "estimated policy value per candidate and estimator")


def _estimates_table(estimates: Sequence[Estimate]) -> str:
    rows = "".join(
        f"<tr><td>{escape(e.candidate)}</td><td>{escape(e.estimator)}</td>"
        f'<td class="num">{fmt(e.value)}</td>'
        f'<td class="num">[{fmt(e.low)}, {fmt(e.high)}]</td></tr>'
        for e in estimates
    )
    return (
        f"<table><tr><th>candidate</th><th>estimator</th><th>value</th><th>interval</th></tr>{rows}</table>"
    )


def _curves_svg(curves: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    """Line chart of cumulative mean reward against t, one line per variant, with a legend."""
    height = 260
    points = [p for curve in curves.values() for p in curve]
    x_scale = _Scale(*_padded([t for t, _ in points] or [0.0]), MARGIN_LEFT, WIDTH - MARGIN_RIGHT)
    y_scale = _Scale(*_padded([v for _, v in points] or [0.0]), height - MARGIN_BOTTOM, MARGIN_TOP)
    parts = [_x_axis(x_scale, height - MARGIN_BOTTOM, MARGIN_TOP)]
    for tick in _ticks(y_scale.low, y_scale.high):
        y = y_scale(tick)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y:.1f}" '
            f'stroke="#eee"/><text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{fmt(tick)}</text>"
        )
    colors = _colors(curves)
    for i, (variant, curve) in enumerate(curves.items()):
        color = colors[variant]
        path = " ".join(f"{x_scale(t):.1f},{y_scale(v):.1f}" for t, v in curve)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>'
            f'<rect x="10" y="{MARGIN_TOP + 16 * i:.0f}" width="10" height="10" fill="{color}"/>'
            f'<text x="26" y="{MARGIN_TOP + 16 * i + 9:.0f}">{escape(variant)}</text>'
        )
    return _svg(height, "".join(parts), "cumulative mean reward per variant")


def _histogram_svg(histogram: WeightHistogram) -> str:
    """Bar chart of a candidate's importance-weight counts per bin, titled above the bars."""
    height = 200
    top_y = MARGIN_TOP + 24
    x_scale = _Scale(histogram.edges[0], histogram.edges[-1], MARGIN_LEFT, WIDTH - MARGIN_RIGHT)
    top = max(histogram.counts, default=0) or 1
    bottom = height - MARGIN_BOTTOM
    title = f"{histogram.candidate}: {sum(histogram.counts):,} weights"
    if histogram.effective_sample_size is not None:
        title += f", effective sample size {fmt(histogram.effective_sample_size)}"
    parts = [
        _x_axis(x_scale, bottom, top_y),
        f'<text x="{MARGIN_LEFT}" y="{MARGIN_TOP + 10}">{escape(title)}</text>',
        f'<text x="{MARGIN_LEFT - 6}" y="{top_y + 4}" text-anchor="end">{top:,}</text>'
        f'<text x="{MARGIN_LEFT - 6}" y="{bottom + 4:.1f}" text-anchor="end">0</text>',
    ]
    for count, left, right in zip(histogram.counts, histogram.edges[:-1], histogram.edges[1:], strict=True):
        bar = (bottom - top_y) * count / top
        parts.append(
            f'<rect x="{x_scale(left) + 0.5:.1f}" y="{bottom - bar:.1f}" '
            f'width="{max(x_scale(right) - x_scale(left) - 1.0, 0.5):.1f}" height="{bar:.1f}" '
            f'fill="{PALETTE[0]}"><title>[{fmt(left)}, {fmt(right)}): {count}</title></rect>'
        )
    return _svg(height, "".join(parts), f"importance weights of {histogram.candidate}")


def _segments_svg(segments: Sequence[SegmentEstimate]) -> str:
    """Forest plot of the per-segment estimates: a row per (segment, candidate), colored by segment.

    The estimator of each row is in the table below the plot.
    """
    rows = [
        Estimate(candidate=s.segment, estimator=s.candidate, value=s.value, low=s.low, high=s.high)
        for s in segments
    ]
    return _estimates_svg(rows, None)


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
