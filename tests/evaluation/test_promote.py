"""The promotion rule of ``--promote-if-better``: the variant that was evaluated, clearly better
than the champion on the champion's own rounds, by the verdict's rule."""

from __future__ import annotations

import pytest

from arbiter.evaluation.promote import decide_promotion
from arbiter.evaluation.replay import CandidateSpec
from arbiter.evaluation.summary import CandidateResult, Comparison, Interval, Summary, VariantResult

SERVED = {
    "control": CandidateSpec("control", "uniform"),
    "lin": CandidateSpec("lin", "linucb", {"alpha": 0.5}),
    "other": CandidateSpec("other", "uniform"),
}


def _summary(low: float, *, name: str = "lin", policy: str = "linucb", params: dict[str, float] | None = None,
             ess: float = 500.0) -> Summary:
    """Winner ``name`` whose paired difference with the champion ``control`` is [low, low + 0.1]."""
    params = {"alpha": 0.5} if params is None else params
    versus = Comparison(candidate=name, reference="variant control", rounds=1000, reference_mean=0.5,
                        difference=Interval(low + 0.05, low, low + 0.1), min_effect=0.005,
                        effective_sample_size=ess, unsupported_share=0.0,
                        outcome=None if ess < 100 else ("better" if low > 0.005 else "inconclusive"),
                        refusal="" if ess >= 100 else "its effective sample size is 50")
    logging = Comparison(candidate=name, reference="logging policy", rounds=2000, reference_mean=0.5,
                         difference=Interval(low + 0.05, low, low + 0.1), min_effect=0.005,
                         effective_sample_size=ess, unsupported_share=0.0, outcome=versus.outcome)
    result = CandidateResult(name=name, policy=policy, params=params, baseline=False,
                             estimates={"dr": Interval(0.6, 0.55, 0.65)}, effective_sample_size=ess,
                             comparisons=[logging, versus])
    return Summary(experiment="homepage", n_rounds=2000, confidence=0.95, interval="normal", primary="dr",
                   logging=Interval(0.5, 0.45, 0.55),
                   variants={"control": VariantResult(1000, Interval(0.5, 0.45, 0.55)),
                             "other": VariantResult(1000, Interval(0.5, 0.45, 0.55))},
                   candidates=[result], winner=name, verdict="")


def test_promotes_the_evaluated_variant_when_it_clearly_beats_the_champion() -> None:
    promotion = decide_promotion(_summary(low=0.02), control="control", variants=SERVED)
    assert promotion.promote and promotion.variant == "lin"
    assert "champion `control`" in promotion.reason


def test_defaults_filled_in_count_as_the_same_configuration() -> None:
    served = {**SERVED, "lin": CandidateSpec("lin", "linucb", {"alpha": 0.3})}
    promotion = decide_promotion(_summary(low=0.02, params={}), control="control", variants=served)
    assert promotion.promote and promotion.variant == "lin"


def test_refuses_a_variant_that_serves_another_policy_than_the_one_evaluated() -> None:
    # The case: `other` serves uniform, the candidate named `other` was LinUCB.
    promotion = decide_promotion(_summary(low=0.02, name="other", params={}), control="control",
                                 variants=SERVED)
    assert not promotion.promote
    assert "variant `other` serves uniform but the evaluated candidate `other` is linucb" in promotion.reason


@pytest.mark.parametrize(
    ("summary", "control", "why"),
    [
        (_summary(low=0.001), "control", "not better than the champion by the minimum effect"),
        (_summary(low=0.02), "lin", "already the champion"),
        (_summary(low=0.02, name="offline"), "control", "variant `lin` serves that configuration"),
        (_summary(low=0.02), "absent", "no learned decisions of the champion"),
        (_summary(low=0.02, ess=50.0), "control", "no verdict against the champion"),
    ],
)
def test_keeps_the_champion_otherwise_and_says_why(summary: Summary, control: str, why: str) -> None:
    promotion = decide_promotion(summary, control=control, variants=SERVED)
    assert not promotion.promote and why in promotion.reason
