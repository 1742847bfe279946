"""The promotion rule of ``--promote-if-better``: a variant, not the champion, clearly better."""

from __future__ import annotations

import pytest

from arbiter.evaluation.promote import decide_promotion
from arbiter.evaluation.summary import CandidateResult, Interval, Summary, VariantResult


def _summary(low: float) -> Summary:
    """Winner ``lin`` with DR interval [low, 0.7]; champion ``control`` observed 0.5 [0.45, 0.55]."""
    lin = CandidateResult(name="lin", policy="linucb", params={}, baseline=False,
                          estimates={"dr": Interval(0.6, low, 0.7)}, versus_logging=None,
                          effective_sample_size=100.0)
    return Summary(experiment="homepage", n_rounds=1000, confidence=0.95, interval="normal", primary="dr",
                   logging=Interval(0.5, 0.45, 0.55),
                   variants={"control": VariantResult(1000, Interval(0.5, 0.45, 0.55))},
                   candidates=[lin], winner="lin", verdict="")


def test_promotes_when_the_lower_bound_beats_the_champions_upper_bound() -> None:
    promotion = decide_promotion(_summary(low=0.56), control="control", variants={"control", "lin"})
    assert promotion.promote and promotion.variant == "lin"


@pytest.mark.parametrize(
    ("low", "control", "variants", "why"),
    [
        (0.54, "control", {"control", "lin"}, "does not beat the champion's upper bound"),
        (0.56, "lin", {"control", "lin"}, "already the champion"),
        (0.56, "control", {"control"}, "not a variant"),
        (0.56, "other", {"other", "lin"}, "no learned decisions of the champion"),
    ],
)
def test_keeps_the_champion_otherwise_and_says_why(low: float, control: str, variants: set[str],
                                                    why: str) -> None:
    promotion = decide_promotion(_summary(low), control=control, variants=variants)
    assert not promotion.promote and why in promotion.reason
