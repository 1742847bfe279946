"""Promotion: manual and automatic, audited, visible in the report, surviving restarts."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from arbiter.client import DecisionClient
from arbiter.v1 import experiments_pb2 as pb
from tests.experiments.helpers import ACTIONS, admin, drive, report, target

AUTO_SEEDS = range(3)


def auto_config() -> dict[str, object]:
    return {"experiments": {f"exp{s}": {
        "salt": f"salt-{s}", "control": "control",
        "auto_promote": {"min_decisions": 150, "confidence": 0.95},
        "variants": [
            {"name": "control", "policy": "uniform", "traffic": 1},
            {"name": "worse", "policy": "fixed", "params": {"action": "low", "floor": 0.5},
             "traffic": 1},
            {"name": "better", "policy": "fixed", "params": {"action": "high", "floor": 0.1},
             "shadow": True},
        ]} for s in AUTO_SEEDS}}


def traffic_of(experiment: pb.Experiment) -> dict[str, float | str]:
    return {v.name: "shadow" if v.shadow else round(v.traffic, 6) for v in experiment.variants}


def test_auto_promotion_picks_the_better_policy_and_survives_a_restart(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    app = start_sqlite(auto_config(), auto_promote_seconds=0.2, durability="relaxed")
    with DecisionClient(target(app)) as client:
        for seed in AUTO_SEEDS:
            # 1,200 (not 800): the anytime-valid bounds are wider than fixed-sample intervals
            drive(client, f"exp{seed}", 1200, np.random.default_rng(seed), prefix=f"s{seed}-")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            app.experiments[f"exp{s}"].config.control != "better" for s in AUTO_SEEDS):
        time.sleep(0.1)
    for seed in AUTO_SEEDS:
        name = f"exp{seed}"
        [audit] = app.controller.promotions(name)
        assert (audit["from_variant"], audit["to_variant"], audit["automatic"]) == (
            "control", "better", True)
        assert audit["evidence"]["to"]["ips"]["low"] > audit["evidence"]["from"]["mean_reward"]["high"]
        assert report(app, name).control == "better"

    app.stop()
    restarted = start_sqlite(auto_config(), auto_promote_seconds=0.2)
    for seed in AUTO_SEEDS:
        with admin(restarted) as stub:
            stored = stub.GetExperiment(pb.GetExperimentRequest(experiment=f"exp{seed}"))
        assert stored.control == "better"
        assert traffic_of(stored) == {"control": "shadow", "worse": 0.5, "better": 0.5}
        assert report(restarted, f"exp{seed}").control == "better"
        assert len(restarted.controller.promotions(f"exp{seed}")) == 1


MANUAL = {"experiments": {"hero": {
    "control": "control",
    "variants": [
        {"name": "control", "policy": "linucb", "params": {"alpha": 1.0}, "traffic": 3},
        {"name": "mid", "policy": "fixed", "params": {"action": "mid"}, "traffic": 1},
        {"name": "lin", "policy": "linucb", "params": {"alpha": 0.5}, "shadow": True},
    ]}}}


def test_promote_a_shadow_then_a_challenger(start_server) -> None:  # type: ignore[no-untyped-def]
    app = start_server(MANUAL)
    rng = np.random.default_rng(5)
    with DecisionClient(target(app)) as client:
        assigned = dict(drive(client, "hero", 120, rng, prefix="a-", units=60))
        # the last events learned before the promotion are mid's: the old champion must not
        # learn them when it turns shadow (not live, and not in a replay either)
        mid_unit = next(u for u, v in assigned.items() if v == "mid")
        for i in range(3):
            choice = client.choose("hero", unit_id=mid_unit, actions=ACTIONS, event_id=f"mid-{i}",
                                   context={"user": {"tier": "gold"}})
            assert choice.variant == "mid"
            client.reward(choice.event_id, 1.0)
    with admin(app) as stub:
        answer = stub.Promote(pb.PromoteRequest(experiment="hero", variant="lin",
                                                reason="looks better"))
        assert answer.previous_champion == "control"
        assert traffic_of(answer.experiment) == {"control": "shadow", "mid": 0.25, "lin": 0.75}
        for request, code in [
            (pb.PromoteRequest(experiment="hero", variant="lin"),
             grpc.StatusCode.FAILED_PRECONDITION),
            (pb.PromoteRequest(experiment="hero", variant="nope"), grpc.StatusCode.NOT_FOUND),
            (pb.PromoteRequest(experiment="nope", variant="lin"), grpc.StatusCode.NOT_FOUND),
            (pb.PromoteRequest(experiment="hero"), grpc.StatusCode.INVALID_ARGUMENT),
        ]:
            with pytest.raises(grpc.RpcError) as error:
                stub.Promote(request)
            assert error.value.code() == code
    with DecisionClient(target(app)) as client:
        after = drive(client, "hero", 120, rng, prefix="a-", units=60, tag="second-")
    for unit, variant in after:  # mid's units stay; control's units went to lin
        if unit in assigned:
            assert variant == ("lin" if assigned[unit] == "control" else assigned[unit])

    # a second server on the same log (as after a crash: no final snapshot of the first)
    # restores exactly the live models, although `control` changed from serving to shadow
    twin = start_server(MANUAL)
    for name, variant in app.experiments["hero"].variants.items():
        assert twin.experiments["hero"].variants[name].policy.to_bytes() == variant.policy.to_bytes(), name

    with admin(app) as stub:
        answer = stub.Promote(pb.PromoteRequest(experiment="hero", variant="mid"))
    assert answer.previous_champion == "lin"
    assert traffic_of(answer.experiment) == {"control": "shadow", "mid": 0.75, "lin": 0.25}
    figures = {v.variant: v for v in report(app, "hero").variants}
    assert report(app, "hero").control == "mid"
    assert figures["control"].shadow and figures["control"].HasField("ips")
    twin.stop()
    app.stop()
    again = start_server(MANUAL)
    with admin(again) as stub:
        stored = stub.GetExperiment(pb.GetExperimentRequest(experiment="hero"))
    assert stored.control == "mid"
    assert traffic_of(stored) == {"control": "shadow", "mid": 0.75, "lin": 0.25}
    audit = again.controller.promotions("hero")
    assert [(a["from_variant"], a["to_variant"], a["automatic"], a["reason"]) for a in audit] == [
        ("control", "lin", False, "looks better"), ("lin", "mid", False, "manual")]
    with DecisionClient(target(again)) as client:
        assert client.choose("hero", actions=ACTIONS, unit_id="x").variant in {"mid", "lin"}
