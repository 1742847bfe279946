"""The sample-ratio check: fires on a biased assignment, stays calibrated otherwise."""

from __future__ import annotations

import math

import numpy as np

from arbiter.client import DecisionClient
from arbiter.server.assignment import bucket
from arbiter.server.report import chi_square_p, regularized_upper_gamma
from tests.experiments.helpers import ACTIONS, report, target

SEEDS = range(4)


def config(seeds: range) -> dict[str, object]:
    return {"experiments": {f"exp{s}": {
        "salt": f"salt-{s}",
        "variants": [{"name": "a", "policy": "uniform", "traffic": 1},
                     {"name": "b", "policy": "uniform", "traffic": 1}]} for s in seeds}}


def test_chi_square_p_value_matches_closed_forms() -> None:
    for x in (0.1, 1.0, 3.84, 10.83, 30.0):
        assert math.isclose(chi_square_p(x, 1), math.erfc(math.sqrt(x / 2)), rel_tol=1e-9)
        assert math.isclose(chi_square_p(x, 2), math.exp(-x / 2), rel_tol=1e-9)
    assert math.isclose(chi_square_p(16.27, 3), 0.001, rel_tol=0.01)
    assert regularized_upper_gamma(2.5, 0.0) == 1.0


def test_false_alarm_rate_of_the_check_is_its_threshold() -> None:
    """Multinomial units under the null: P(p < alpha) ≈ alpha for alpha = 0.05 and 0.001."""
    rng = np.random.default_rng(7)
    weights = np.array([0.2, 0.3, 0.5])
    trials = 20_000
    counts = rng.multinomial(500, weights, size=trials)
    expected = 500 * weights
    p = np.array([chi_square_p(float(((c - expected) ** 2 / expected).sum()), 2) for c in counts])
    for alpha in (0.05, 0.001):
        rate = (p < alpha).mean()
        assert abs(rate - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / trials) + 1e-4, (alpha, rate)


def test_srm_fires_when_units_are_dropped_from_one_variant(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    app = start_sqlite(config(SEEDS))
    with DecisionClient(target(app)) as client:
        for seed in SEEDS:
            name = f"exp{seed}"
            experiment = app.experiments[name]
            rng = np.random.default_rng(seed)
            for i in range(1000):
                unit = f"unit-{seed}-{i}"
                variant = experiment.table[bucket(experiment.config.salt, unit)]
                if variant == "b" and rng.random() < 0.25:  # a client bug loses b's users
                    continue
                client.choose(name, unit_id=unit, actions=ACTIONS)
    for seed in SEEDS:
        srm = report(app, f"exp{seed}").sample_ratio
        assert srm.mismatch, (seed, dict(srm.observed_units), srm.p_value)
        assert srm.observed_units["b"] < srm.observed_units["a"]


def test_srm_stays_quiet_without_bias_across_seeds(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    app = start_sqlite(config(SEEDS))
    with DecisionClient(target(app)) as client:
        for seed in SEEDS:
            for i in range(400):
                client.choose(f"exp{seed}", unit_id=f"unit-{seed}-{i}", actions=ACTIONS)
    p_values = [report(app, f"exp{seed}").sample_ratio.p_value for seed in SEEDS]
    assert not any(report(app, f"exp{seed}").sample_ratio.mismatch for seed in SEEDS), p_values
    assert all(0.0 < p <= 1.0 for p in p_values)
