"""Anytime-valid bounds: looking as often as one likes keeps false promotions under 5%.

The simulation drives the server's promotion rule (:func:`arbiter.server.promotion.promotes`, a
pure function) on the accumulators the fold would hold at every look, vectorized over seeds
(``bench/promotion.py``, which also prints the figures of the report); a real server shows the
same bounds in its report.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from arbiter.client import DecisionClient
from arbiter.server import anytime
from arbiter.server import report as reports
from arbiter.server.app import App
from arbiter.server.stats import Bernstein, Moments
from bench.promotion import (
    SHADOW_POLICY,
    accumulate,
    fixed_horizon,
    shadow_first_promotions,
    simulate,
)
from tests.experiments.helpers import ACTIONS, CLICK, TIERS, report, target

SEEDS = range(200)
DECISIONS = 20_000
EVERY = 100


def test_the_simulated_sums_are_the_fold_s() -> None:
    """``bench.promotion.accumulate`` (cumulative sums) keeps what ``Bernstein``/``Moments``
    keep event by event, so the simulation tests the server's numbers."""
    rng = np.random.default_rng(3)
    x = (rng.random((1, 500)) < 0.3).astype(float)
    mask = rng.random((1, 500)) < 0.6
    arm = accumulate(mask, x, np.arange(500))
    bernstein, moments = Bernstein(), Moments()
    for i in range(500):
        if mask[0, i]:
            bernstein.add(float(x[0, i]))
            moments.add(float(x[0, i]))
        assert arm.n[0, i] == bernstein.n
        assert arm.total[0, i] == pytest.approx(bernstein.total, rel=1e-12, abs=1e-12)
        assert arm.v[0, i] == pytest.approx(bernstein.v, rel=1e-12, abs=1e-12)
    sums = arm.sums()
    assert sums.mean[0, -1] == pytest.approx(moments.mean, rel=1e-12)
    assert sums.sd[0, -1] == pytest.approx(math.sqrt(moments.m2 / (moments.n - 1)), rel=1e-9)


def test_the_bernstein_boundary_solves_its_mixture() -> None:
    """u(v) is where the mixture reaches 1/beta (never below it: the bound is not optimistic)."""
    v = np.array([0.0, 3.0, 250.0, 4e4, 1e7])
    for beta in (0.025, 0.001):
        u = anytime.bernstein_boundary(v, beta)
        mixture = np.exp(anytime._LAMBDAS * u[:, None] - anytime._PSI * v[:, None]).mean(axis=1)
        assert mixture == pytest.approx(1 / beta, rel=1e-9)
    assert np.all(np.diff(anytime.bernstein_boundary(v, 0.025)) > 0)


def test_the_difference_evidence_is_its_minimum_over_the_champion_s_mean() -> None:
    """The golden-section search finds the minimum a fine grid finds (never above it)."""
    up = (np.array([500.0, 2000.0, 40.0]), np.array([300.0, 1100.0, 5.0]),
          np.array([120.0, 480.0, 9.0]))
    down = (np.array([500.0, 2000.0, 900.0]), np.array([240.0, 960.0, 800.0]),
            np.array([120.0, 480.0, 100.0]))
    found = anytime.difference_evidence(up, down, 0.01)
    m = np.linspace(0, 1, 200_001)
    for i in range(3):
        grid = (anytime.log_mixture(up[1][i] - up[0][i] * (m + 0.01), up[2][i])
                + anytime.log_mixture(down[1][i] - down[0][i] * (1 - m), down[2][i]))
        assert found[i] == pytest.approx(grid.min(), abs=1e-9)
    # and the bound is where the evidence reaches 1/beta
    low = anytime.difference_lower(up, down, 0.025)
    assert np.all(anytime.difference_evidence(up, down, low) >= -math.log(0.025))
    assert np.all(anytime.difference_evidence(up, down, low + 1e-6) < -math.log(0.025))


@pytest.mark.parametrize("rate", [0.10, 0.50])
def test_equal_variants_are_rarely_promoted_at_a_look_every_100_decisions(rate: float) -> None:
    """200 seeds, a look every 100 decisions up to 20,000: at most 5% promote an equal
    challenger (the guarantee is for every look at once), with either construction."""
    first = simulate((rate, rate), SEEDS, DECISIONS, EVERY)
    for rule in ("empirical-bernstein", "asymptotic"):
        rate_ = float(np.isfinite(first[rule]).mean())
        assert rate_ <= 0.05, (rule, rate_)


def test_a_better_variant_is_still_promoted() -> None:
    """0.13 against 0.10: promoted within 20,000 decisions in at least 80% of the seeds."""
    first = simulate((0.10, 0.13), SEEDS, DECISIONS, EVERY)
    promoted = np.isfinite(first["empirical-bernstein"])
    assert promoted.mean() >= 0.8, promoted.mean()
    # anytime validity has a price: more decisions than one fixed-horizon look at 80% power
    assert np.median(first["empirical-bernstein"]) > fixed_horizon((0.10, 0.13))


def test_a_shadow_as_good_as_the_champion_is_rarely_promoted_and_a_better_one_is() -> None:
    """A shadow scored on the champion's decisions (its IPS terms and the champion's share
    decisions): at most 5% of 200 seeds promote an equal one at a look every 100 decisions;
    one that earns 0.39 against 0.33 is promoted within 20,000 in at least 80%."""
    equal = shadow_first_promotions((0.3, 0.3, 0.3), SHADOW_POLICY, SEEDS, DECISIONS, EVERY)
    better = shadow_first_promotions((0.4, 0.3, 0.3), SHADOW_POLICY, SEEDS, DECISIONS, EVERY)
    for rule in ("empirical-bernstein", "asymptotic"):
        assert np.isfinite(equal[rule]).mean() <= 0.05, rule
        assert np.isfinite(better[rule]).mean() >= 0.8, rule


def test_one_mean_s_bounds_hold_at_every_look() -> None:
    """The 95% confidence sequence of one mean misses the truth at some look out of 200 in at
    most 5% of 200 seeds (a fixed-sample interval, looked at this often, misses far more)."""
    rng = np.random.default_rng(11)
    rate = 0.2
    x = (rng.random((len(SEEDS), DECISIONS)) < rate).astype(float)
    looks = np.arange(EVERY, DECISIONS + 1, EVERY) - 1
    sums = accumulate(np.ones_like(x, dtype=bool), x, looks).sums()
    intervals = reports.Intervals(reports.BOUNDED, (0.0, 1.0), 1000.0)
    low, high = reports.bounds(sums, 0.025, intervals)
    missed = ((low > rate) | (high < rate)).any(axis=1).mean()
    se = sums.sd / np.sqrt(sums.n)
    naive = ((sums.mean - 1.96 * se > rate) | (sums.mean + 1.96 * se < rate)).any(axis=1).mean()
    assert missed <= 0.05 and naive > 0.2, (missed, naive)


CONFIG = {"experiments": {
    "bounded": {"control": "control", "reward_range": [0, 1], "variants": [
        {"name": "control", "policy": "uniform", "traffic": 1},
        {"name": "high", "policy": "fixed", "params": {"action": "high", "floor": 0.3},
         "traffic": 1},
        {"name": "shadow", "policy": "fixed", "params": {"action": "mid", "floor": 0.3},
         "shadow": True}]},
    "unbounded": {"policy": "uniform"},
}}


def test_the_report_shows_the_confidence_sequences(start_sqlite: Callable[..., App]) -> None:
    """Through a real server: the report's intervals are the anytime-valid ones of the
    accumulators the fold holds (wider than fixed-sample intervals), and it says which."""
    app = start_sqlite(CONFIG)
    rng = np.random.default_rng(4)
    with DecisionClient(target(app)) as client:
        for i in range(300):
            for name in ("bounded", "unbounded"):
                tier = TIERS[int(rng.integers(len(TIERS)))]
                choice = client.choose(name, unit_id=f"u{i}", context={"user": {"tier": tier}},
                                       actions=ACTIONS, event_id=f"{name}-{i}")  # fixed draws
                client.reward(choice.event_id, float(rng.random() < CLICK[tier][choice.action_id]))
    served = report(app, "bounded")
    assert served.intervals == "empirical-bernstein"
    assert report(app, "unbounded").intervals == "asymptotic"
    config = app.experiments["bounded"].config
    intervals = reports.Intervals.of(config)
    with app.fold.lock:
        stats = app.stats.copy("bounded")
    for figures in served.variants:
        mine = stats.variants[figures.variant]
        value = reports.Sums.value(mine)
        low, high = reports.bounds(value, 0.025, intervals)
        assert (figures.ips.low, figures.ips.high) == pytest.approx((float(low), float(high)),
                                                                   rel=1e-12)
        fixed = 1.96 * value.sd / math.sqrt(mine.ips.n)
        assert figures.ips.low < figures.ips.estimate - fixed
        assert figures.ips.high > figures.ips.estimate + fixed or figures.ips.high == 1.0
        if not figures.shadow:
            low, high = reports.bounds(reports.Sums.served(mine), 0.025, intervals)
            assert (figures.mean_reward.low, figures.mean_reward.high) == pytest.approx(
                (float(low), float(high)), rel=1e-12)
    by_name = {v.variant: v for v in served.variants}
    difference = by_name["high"].difference_to_control
    # one confidence sequence for the difference (each side at 5%/2 candidates): tighter than
    # the two variants' own bounds put together, and the verdict reads it
    champion_beta, candidate_beta = reports.levels(0.95, 2)
    low, _ = reports.bounds(reports.Sums.value(stats.variants["high"]), candidate_beta, intervals)
    _, high = reports.bounds(reports.Sums.value(stats.variants["control"]), champion_beta,
                             intervals)
    assert float(low - high) < difference.low < difference.estimate < difference.high
    assert (by_name["high"].verdict == "better") == (difference.low > 0)
    assert 0 < by_name["high"].p_value <= 1
