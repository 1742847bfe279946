"""A shadow's live IPS confidence sequence covers its true value in at least 90% of seeds.

The logging policy serves uniformly; the shadow is ``fixed`` on one action with an exploration
floor, so its true value in the simulated world is exactly computable (the expected reward of
its distribution). A control run that serves the shadow's policy is also checked once: its
observed mean agrees with that value, so "true value" is what serving it would earn.
"""

from __future__ import annotations

import numpy as np

from arbiter.client import DecisionClient
from tests.experiments.helpers import (
    drive,
    fixed_distribution,
    report,
    target,
    true_value,
)

SEEDS = range(20)
EVENTS = 250
SHADOW = {"action": "high", "floor": 0.3}


def config() -> dict[str, object]:
    experiments: dict[str, object] = {f"exp{s}": {
        "salt": f"salt-{s}", "segment_by": "user.tier",
        "variants": [{"name": "control", "policy": "uniform", "traffic": 1},
                     {"name": "shadow", "policy": "fixed", "params": SHADOW, "shadow": True}]}
        for s in SEEDS}
    experiments["served"] = {"policy": "fixed", "params": SHADOW}
    return {"experiments": experiments}


def test_shadow_ips_interval_covers_the_true_value(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    truth = true_value(fixed_distribution(**SHADOW))
    app = start_sqlite(config(), durability="relaxed")  # answers before the commit: faster
    with DecisionClient(target(app)) as client:
        for seed in SEEDS:
            drive(client, f"exp{seed}", EVENTS, np.random.default_rng(seed), prefix=f"s{seed}-")
        drive(client, "served", 1000, np.random.default_rng(99))
    covered = 0
    for seed in SEEDS:
        figures = {v.variant: v for v in report(app, f"exp{seed}").variants}
        shadow = figures["shadow"]
        # it scored every decision and served none
        assert shadow.shadow and shadow.scored == EVENTS and shadow.decisions == 0
        assert not shadow.HasField("mean_reward")  # users never saw it
        covered += shadow.ips.low <= truth <= shadow.ips.high
        assert shadow.snips.low < shadow.snips.high
    assert covered >= 0.9 * len(SEEDS), covered

    figures = report(app, "served").variants[0]
    served = figures.mean_reward
    assert served.low <= truth <= served.high
    standard_error = np.sqrt(served.estimate * (1 - served.estimate) / figures.rewards)  # 0/1
    assert abs(served.estimate - truth) < 3 * standard_error  # the control run earns it


def test_segments_break_the_figures_down_and_flag_small_segments(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    app = start_sqlite(config())
    with DecisionClient(target(app)) as client:
        drive(client, "exp0", 120, np.random.default_rng(1))
    whole = report(app, "exp0")  # the experiment's segment_by
    assert whole.segment_by == "user.tier"
    assert {s.segment for s in whole.segments} == {"free", "gold"}
    for segment in whole.segments:
        assert not segment.too_few_units
        [control] = [v for v in segment.variants if v.variant == "control"]
        assert control.units == segment.units
    assert sum(s.units for s in whole.segments) == whole.variants[0].units
    other = report(app, "exp0", segment_by="user.country")
    assert [s.segment for s in other.segments] == ["(missing)"]
    small = start_sqlite(config(), db=f"sqlite:///{app.settings.db.split('///')[1]}2")
    with DecisionClient(target(small)) as client:
        drive(client, "exp0", 20, np.random.default_rng(2))
    assert all(s.too_few_units and not s.variants for s in report(small, "exp0").segments)
