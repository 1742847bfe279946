"""Reports that read right after a SetTraffic and a promotion: every figure, by variant.

A real server, real gRPC calls and the real CLI: three eras (the seeded set-up, new weights,
then a shadow promoted over the champion, which turns shadow). The client records what every
decision was (who served it, its unit, probability and reward, and which variants were shadows
then), and every figure of the report is recomputed from that record: counts by variant
whatever its role now or then, the estimates, and the sample-ratio check era by era against the
weights in force when the units were assigned.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import chi2

from arbiter.client import DecisionClient
from arbiter.server.app import App
from arbiter.v1 import experiments_pb2 as pb
from tests.cli.helpers import arbiter
from tests.experiments.helpers import ACTIONS, CLICK, TIERS, admin, report, target

BETTER = {"action": "high", "floor": 0.3}  # the shadow: π(high) = 0.8, 0.1 on the others
CONFIG = {"experiments": {"hero": {
    "control": "champ", "reward_range": [0, 1],
    "variants": [
        {"name": "champ", "policy": "uniform", "traffic": 5},
        {"name": "chal", "policy": "fixed", "params": {"action": "mid", "floor": 0.5},
         "traffic": 3},
        {"name": "holdout", "policy": "uniform", "traffic": 2},
        {"name": "better", "policy": "fixed", "params": BETTER, "shadow": True},
    ]}}}
ERA = 400  # decisions per era, each from a unit of its own


def pi_better(action: str) -> float:
    return (1 - BETTER["floor"]) * (action == BETTER["action"]) + BETTER["floor"] / len(ACTIONS)


@dataclass(frozen=True)
class Logged:
    era: int
    variant: str
    unit: str
    action: str
    probability: float
    reward: float
    shadows: tuple[str, ...]


def drive(client: DecisionClient, era: int, shadows: tuple[str, ...],
          rng: np.random.Generator) -> list[Logged]:
    logged = []
    for i in range(ERA):
        tier = TIERS[int(rng.integers(len(TIERS)))]
        unit = f"e{era}-u{i}"
        choice = client.choose("hero", unit_id=unit, context={"user": {"tier": tier}},
                               actions=ACTIONS, event_id=f"{unit}-event")  # fixed draws
        reward = float(rng.random() < CLICK[tier][choice.action_id])
        client.reward(choice.event_id, reward)
        logged.append(Logged(era, choice.variant, unit, choice.action_id, choice.probability,
                             reward, shadows))
    return logged


def test_every_figure_after_a_set_traffic_and_a_promotion(
        start_sqlite: Callable[..., App]) -> None:
    app = start_sqlite(CONFIG)
    rng = np.random.default_rng(21)
    with DecisionClient(target(app)) as client:
        log = drive(client, 1, ("better",), rng)
        with admin(app) as stub:
            stub.SetTraffic(pb.SetTrafficRequest(experiment="hero", traffic={
                "champ": 2, "chal": 6, "holdout": 2}))
        log += drive(client, 2, ("better",), rng)
        with admin(app) as stub:
            stub.Promote(pb.PromoteRequest(experiment="hero", variant="better", reason="test"))
        log += drive(client, 3, ("champ",), rng)
    answer = report(app, "hero")
    assert answer.control == "better"
    figures = {v.variant: v for v in answer.variants}
    assert {name: (f.shadow, round(f.traffic, 9)) for name, f in figures.items()} == {
        "champ": (True, 0.0), "chal": (False, 0.6), "holdout": (False, 0.2),
        "better": (False, 0.2)}

    for name, fig in figures.items():
        served = [d for d in log if d.variant == name]
        scored = [d for d in log if d.variant != name and name in d.shadows]
        assert (fig.decisions, fig.rewards, fig.units) == (
            len(served), len(served), len({d.unit for d in served})), name
        assert (fig.scored, fig.scored_units) == (len(scored), len({d.unit for d in scored})), name
        assert fig.mean_reward.estimate == pytest.approx(np.mean([d.reward for d in served]))
        weights = [1.0] * len(served) + [
            (pi_better(d.action) if name == "better" else 1 / len(ACTIONS)) / d.probability
            for d in scored]  # champ, a shadow in era 3, is uniform
        rewards = [d.reward for d in served] + [d.reward for d in scored]
        assert fig.ips.estimate == pytest.approx(np.dot(weights, rewards) / len(rewards))
        assert fig.effective_sample_size == pytest.approx(sum(weights) ** 2
                                                          / np.dot(weights, weights))
        assert fig.ips.low <= fig.ips.estimate <= fig.ips.high
    # the old champion served in eras 1 and 2 and scored era 3; the new one the reverse
    assert figures["champ"].decisions > 0 and figures["champ"].scored == sum(
        d.era == 3 for d in log)
    assert figures["better"].scored == sum(d.era < 3 for d in log)
    # P(best) by each variant's value (uniform earns ~0.55, "better" ~0.76): not the role's
    assert max(figures.values(), key=lambda f: f.probability_best).variant == "better"
    assert figures["champ"].probability_best < 0.01
    assert sum(f.probability_best for f in figures.values()) == pytest.approx(1.0)

    # the sample-ratio check: units per serving variant of each era against that era's weights
    weights = {1: {"champ": 0.5, "chal": 0.3, "holdout": 0.2},
               2: {"champ": 0.2, "chal": 0.6, "holdout": 0.2},
               3: {"better": 0.2, "chal": 0.6, "holdout": 0.2}}
    srm = answer.sample_ratio
    assert [e.version for e in srm.eras] == [1, 2, 3]
    total_chi, total_df = 0.0, 0
    observed_all: dict[str, int] = defaultdict(int)
    for era, check in zip((1, 2, 3), srm.eras, strict=True):
        units: dict[str, set[str]] = defaultdict(set)
        for d in log:
            if d.era == era:
                units[d.variant].add(d.unit)
        observed = {name: len(found) for name, found in units.items()}
        assert dict(check.observed_units) == observed, era
        assert dict(check.expected_share) == pytest.approx(weights[era]), era
        chi = sum((observed.get(n, 0) - ERA * p) ** 2 / (ERA * p) for n, p in weights[era].items())
        assert check.chi_square == pytest.approx(chi) and check.p_value == pytest.approx(
            chi2.sf(chi, 2))
        total_chi, total_df = total_chi + chi, total_df + 2
        for name, count in observed.items():
            observed_all[name] += count
    assert srm.chi_square == pytest.approx(total_chi)
    assert srm.p_value == pytest.approx(chi2.sf(total_chi, total_df))
    assert not srm.mismatch
    assert dict(srm.observed_units) == {**observed_all, "better": observed_all["better"]}
    assert dict(srm.expected_share) == pytest.approx(
        {n: sum(weights[e].get(n, 0) for e in (1, 2, 3)) / 3
         for n in ("champ", "chal", "holdout", "better")})

    # the console says the same: the holdout's units in the sample-ratio line, era by era
    shown = arbiter("report", "--target", target(app), "--experiment", "hero")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    units = ", ".join(f"{n} {c}" for n, c in sorted(observed_all.items()))
    assert f"units {units};" in out and "over 3 traffic versions" in out
    for era, check in zip((1, 2, 3), srm.eras, strict=True):
        assert f"version {era} (" in out and f"p = {check.p_value:.3g}" in out
    assert "anytime-valid 95% confidence sequences (empirical Bernstein" in out
    as_json = json.loads(arbiter("report", "--target", target(app), "--experiment", "hero",
                                 "--json").stdout)
    by_name = {v["variant"]: v for v in as_json["variants"]}
    assert (by_name["champ"]["decisions"], by_name["champ"]["scored"]) == (
        figures["champ"].decisions, figures["champ"].scored)
    assert [e["version"] for e in as_json["sample_ratio"]["eras"]] == [1, 2, 3]
    assert as_json["intervals"] == "empirical-bernstein"
