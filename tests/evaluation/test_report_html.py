"""HTML report: self-contained, aggregates only, escaped, every section present; the verdict."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from arbiter.evaluation import (
    DR,
    IPS,
    SNIPS,
    Difference,
    Estimate,
    EvaluationInputError,
    EvaluationReport,
    Headline,
    RewardModel,
    SegmentEstimate,
    WeightHistogram,
    cumulative_mean_curve,
    effective_sample_size,
    importance_weights,
    render_html,
    verdict_text,
)


def _report_from_log(log: Any) -> tuple[EvaluationReport, float, float, float]:
    """What the CLI will do: estimators and helpers turn the log into aggregates."""
    q_hat = RewardModel(l2=1e-3).fit_predict_per_action(
        context=log.context, action=log.action, reward=log.reward, n_actions=3
    )
    estimates = []
    for estimator in (IPS(), SNIPS(), DR()):
        inputs = {**log.inputs(), "estimated_rewards": q_hat}
        low, high = estimator.estimate_interval(**inputs, seed=0, n_bootstrap=200)
        value = estimator.estimate_policy_value(**inputs)
        estimates.append(
            Estimate(candidate="greedy", estimator=estimator.name, value=value, low=low, high=high)
        )
    difference, low, high = DR().compare_to_logging(
        **log.inputs(), estimated_rewards=q_hat, seed=0, n_bootstrap=200
    )
    weights = importance_weights(action=log.action, pscore=log.pscore, action_dist=log.action_dist)
    segment = log.context[:, 0] == 1
    seg_inputs = {k: v[segment] for k, v in log.inputs().items()}
    seg_low, seg_high = IPS().estimate_interval(**seg_inputs, method="normal")
    report = EvaluationReport(
        title="homepage-hero <offline>",
        logging_policy="linucb",
        n_rounds=len(log.reward),
        verdict=verdict_text(candidate="greedy", difference=difference, low=low, high=high),
        headline=Headline(candidate="greedy", reference="logging policy", rows=[
            ("overall", (1000 * difference, 1000 * low, 1000 * high),
             (100 * difference / log.reward.mean(), 100 * low / log.reward.mean(),
              100 * high / log.reward.mean()), len(log.reward))]),
        differences=[Difference(candidate="greedy", reference="logging policy", value=difference, low=low,
                                high=high, min_effect=0.01, rounds=len(log.reward),
                                effective_sample_size=effective_sample_size(weights), unsupported_share=0.0,
                                outcome="better")],
        estimates=estimates,
        baseline_value=float(log.reward.mean()),
        cumulative_reward={"linucb": cumulative_mean_curve(log.reward, max_points=50)},
        reward_range=(0.0, 1.0),
        weight_histograms=[
            WeightHistogram.from_weights(
                "greedy", weights, effective_sample_size=effective_sample_size(weights)
            )
        ],
        segments=[
            SegmentEstimate(
                segment="context 0",
                candidate="greedy",
                estimator="ips",
                value=IPS().estimate_policy_value(**seg_inputs),
                low=seg_low,
                high=seg_high,
                n_rounds=int(segment.sum()),
            )
        ],
        notes=["Reward model: cross-fitted ridge, 5 folds."],
        generated_at="2025-01-01 00:00 UTC",
    )
    return report, difference, low, high


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs


def test_report_is_self_contained_and_has_every_section(make_log: Any) -> None:
    report, _, _, _ = _report_from_log(make_log(0, 2000))

    page = render_html(report)

    parser = _Collector()
    parser.feed(page)
    assert not {"script", "link", "img", "iframe", "object"} & set(parser.tags)
    assert not [v for k, v in parser.attributes if k in {"src", "href"}]
    assert "http://" not in page and "https://" not in page and "url(" not in page
    # the expected change, paired differences, estimates, running estimates, one weight
    # histogram, segments
    assert parser.tags.count("svg") == 6
    headings = ("Expected change", "Paired differences", "Evaluability", "Estimated policy value",
                "Running estimates over time", "Importance weights", "Per-segment estimates", "Notes")
    positions = [page.index(f"<h2>{heading}") for heading in headings]
    assert positions == sorted(positions)  # the answer first, the estimator tables below
    assert page.index("reward per 1,000 decisions") < page.index(report.verdict) < positions[1]
    assert "homepage-hero &lt;offline&gt;" in page  # escaped, not markup
    assert report.verdict in page
    assert "effective sample size" in page


def test_report_contains_aggregates_only(make_log: Any) -> None:
    log = make_log(1, 1500)
    report, _, _, _ = _report_from_log(log)
    page = render_html(report)
    # Every number on the page is an aggregate: fewer numbers than logged rows, and the page's
    # size does not grow with the log.
    numbers = re.findall(r"-?\d+\.\d+", page)
    assert len(numbers) < 1500
    bigger, _, _, _ = _report_from_log(make_log(1, 15000))
    assert len(render_html(bigger)) < 1.5 * len(page)


def test_empty_sections_are_left_out() -> None:
    page = render_html(
        EvaluationReport(title="t", logging_policy="uniform", n_rounds=0, verdict="nothing yet")
    )
    assert "<svg" not in page and "nothing yet" in page


# --------------------------------------------------------------------------- verdict


def test_verdict_claims_better_only_when_the_interval_clears_the_minimum_effect() -> None:
    assert verdict_text(candidate="B", difference=0.03, low=0.01, high=0.05, min_effect=0.005) == (
        "Candidate B beats the logging policy by 0.0300 (95% interval [0.0100, 0.0500]), "
        "more than the minimum effect 0.00500."
    )
    assert verdict_text(candidate="B", difference=-0.03, low=-0.05, high=-0.01) == (
        "Candidate B is worse than the logging policy by 0.0300 (95% interval [-0.0500, -0.0100])."
    )
    short = verdict_text(candidate="B", difference=0.03, low=0.01, high=0.05, min_effect=0.02)
    assert short.startswith("Not enough evidence") and "does not clear the minimum effect 0.0200" in short
    undecided = verdict_text(candidate="B", difference=0.01, low=-0.01, high=0.03, confidence=0.9)
    assert undecided.startswith("Not enough evidence")
    assert "by 0.0100, and the 90% interval [-0.0100, 0.0300] includes 0" in undecided
    with pytest.raises(EvaluationInputError, match="`low`"):
        verdict_text(candidate="B", difference=0.0, low=1.0, high=0.0)


def test_verdict_on_a_better_candidate(make_log: Any) -> None:
    # The target policy is worth 0.568 and the logging policy 0.306 here: a clear win.
    _, difference, low, high = _report_from_log(make_log(2, 2000))
    assert 0 < low < difference < high
    assert verdict_text(candidate="greedy", difference=difference, low=low, high=high).startswith(
        "Candidate greedy beats the logging policy by"
    )


# --------------------------------------------------------------------------- aggregates


def test_cumulative_mean_curve_has_the_running_mean_and_its_normal_band() -> None:
    rewards = [1.0, 0.0, 1.0, 1.0]
    curve = cumulative_mean_curve(rewards, max_points=10, z=2.0)
    assert [t for t, _, _, _ in curve] == [1.0, 2.0, 3.0, 4.0]
    assert [m for _, m, _, _ in curve] == pytest.approx([1.0, 0.5, 2 / 3, 0.75])
    assert curve[0][2:] == (1.0, 1.0)  # one round: no spread yet
    for t, mean, low, high in curve[1:]:
        half = 2.0 * np.std(rewards[: int(t)], ddof=1) / np.sqrt(t)
        assert (low, high) == pytest.approx((mean - half, mean + half), abs=1e-12)
    long = cumulative_mean_curve(np.ones(10_000), max_points=100)
    assert len(long) == 100 and long[0][0] == 1.0 and long[-1] == (10_000.0, 1.0, 1.0, 1.0)
    assert cumulative_mean_curve([]) == []


def test_weight_histogram_bins_positive_weights_in_log_space_and_counts_zeros() -> None:
    histogram = WeightHistogram.from_weights("c", [0.0, 0.01, 0.1, 1.0, 10.0, 10.0], n_bins=3)
    assert histogram.edges == pytest.approx((0.01, 0.1, 1.0, 10.0))
    assert histogram.counts == (1, 1, 3) and histogram.zeros == 1 and histogram.total == 6
    with pytest.raises(EvaluationInputError, match="`edges`"):
        WeightHistogram(candidate="c", edges=(0.0, 1.0), counts=(1, 2))
