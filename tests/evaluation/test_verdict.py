"""The one rule behind every verdict: the minimum effect, the winner, the evaluability gates."""

from __future__ import annotations

import pytest

from arbiter.evaluation.verdict import Contender, MinEffect, evaluability, judge, pick_winner


@pytest.mark.parametrize(
    ("low", "high", "outcome"),
    [(0.02, 0.05, "better"), (0.005, 0.05, "inconclusive"), (-0.01, 0.03, "inconclusive"),
     (-0.05, -0.01, "worse")],
)
def test_better_needs_the_lower_bound_above_the_minimum_effect(low: float, high: float, outcome: str) -> None:
    assert judge(low, high, 0.01) == outcome


def test_the_winner_is_the_better_candidate_with_the_highest_estimate_not_the_highest_lower_bound() -> None:
    precise = Contender(name="precise", value=0.52, low=0.03, high=0.04, evaluable=True)
    higher = Contender(name="higher", value=0.60, low=0.02, high=0.20, evaluable=True)
    unproven = Contender(name="unproven", value=0.70, low=-0.01, high=0.30, evaluable=True)
    unsupported = Contender(name="unsupported", value=0.90, low=0.20, high=0.50, evaluable=False)

    winner = pick_winner([precise, higher, unproven, unsupported], min_effect=0.01)

    assert winner is not None and winner.name == "higher"
    assert pick_winner([precise, higher], min_effect=0.05) is None  # neither clears 0.05


def test_min_effect_in_reward_units_or_percent_of_the_reference() -> None:
    assert MinEffect.parse("0.02").threshold(0.4) == 0.02
    assert MinEffect.parse("5%").threshold(0.4) == pytest.approx(0.02)
    assert str(MinEffect.parse("1%")) == "1% of the reference mean"
    for bad in ("x", "-1", "inf", "nan%"):
        with pytest.raises(ValueError, match="--min-effect"):
            MinEffect.parse(bad)


def test_evaluability_names_the_figure_the_threshold_and_the_remedy() -> None:
    assert evaluability(ess=500.0, n=5000, unsupported=0.0).ok
    low = evaluability(ess=65.0, n=5002, unsupported=0.0)
    assert not low.ok
    assert "effective sample size is 65 of 5,002 rounds (below --min-ess 100)" in low.reason
    assert "`epsilon`" in low.reason
    blind = evaluability(ess=4000.0, n=5000, unsupported=0.9)
    assert not blind.ok and "90.0% of its probability mass" in blind.reason
