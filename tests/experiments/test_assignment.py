"""Sticky assignment through a real server: per unit, across calls, restarts and traffic changes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from arbiter.client import DecisionClient
from arbiter.server.report import chi_square_p
from arbiter.v1 import experiments_pb2 as pb
from tests.experiments.helpers import ACTIONS, admin, report, target

CONFIG = {"experiments": {"hero": {
    "variants": [{"name": "a", "policy": "uniform", "traffic": 1},
                 {"name": "b", "policy": "uniform", "traffic": 1},
                 {"name": "c", "policy": "uniform", "traffic": 2}],
    "control": "a"}}}
UNITS = 800


def assign(app, units) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with DecisionClient(target(app)) as client:
        return {u: client.choose("hero", unit_id=u, actions=ACTIONS).variant for u in units}


def test_units_are_sticky_across_calls_and_restarts_and_split_by_weight(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    units = [f"user-{i}" for i in range(UNITS)]
    app = start_sqlite(CONFIG)
    first = assign(app, units)
    again = assign(app, units[:200])
    assert all(again[u] == first[u] for u in again)

    counts = Counter(first.values())
    expected = {"a": UNITS / 4, "b": UNITS / 4, "c": UNITS / 2}
    chi_square = sum((counts[v] - e) ** 2 / e for v, e in expected.items())
    assert chi_square_p(chi_square, 2) > 0.001, counts
    srm = report(app, "hero").sample_ratio
    assert not srm.mismatch
    assert dict(srm.observed_units) == dict(counts)

    app.stop()
    restarted = start_sqlite(CONFIG)
    after = assign(restarted, units[::4])
    assert all(after[u] == first[u] for u in after)


def test_set_traffic_moves_few_units_and_survives_a_restart(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    units = [f"user-{i}" for i in range(UNITS)]
    app = start_sqlite(CONFIG)
    before = assign(app, units)
    with admin(app) as stub:
        changed = stub.SetTraffic(pb.SetTrafficRequest(experiment="hero",
                                                       traffic={"a": 2, "b": 1, "c": 1}))
    assert {v.name: v.traffic for v in changed.variants} == pytest.approx(
        {"a": 0.5, "b": 0.25, "c": 0.25})
    after = assign(app, units)
    moved = [u for u in units if before[u] != after[u]]
    # the minimum is a quarter of the units (c gives 25% of all buckets to a); allow noise
    assert 0.15 * UNITS < len(moved) < 0.35 * UNITS
    assert all(before[u] == "c" and after[u] == "a" for u in moved)
    assert not report(app, "hero").sample_ratio.mismatch  # only units since the change count

    app.stop()
    restarted = start_sqlite(CONFIG)
    with admin(restarted) as stub:
        stored = stub.GetExperiment(pb.GetExperimentRequest(experiment="hero"))
    assert {v.name: v.traffic for v in stored.variants} == pytest.approx(
        {"a": 0.5, "b": 0.25, "c": 0.25})
    assert assign(restarted, units[::5]) == {u: after[u] for u in units[::5]}


@pytest.mark.parametrize("traffic, field", [
    ({"zz": 1.0}, "traffic"), ({"a": -1.0}, "traffic"), ({"b": 1.0}, "traffic"), ({}, "traffic"),
])
def test_bad_traffic_is_rejected_and_changes_nothing(start_sqlite, traffic, field) -> None:  # type: ignore[no-untyped-def]
    import grpc

    app = start_sqlite(CONFIG)
    table = list(app.experiments["hero"].table)
    with admin(app) as stub, pytest.raises(grpc.RpcError) as error:
        stub.SetTraffic(pb.SetTrafficRequest(experiment="hero", traffic=traffic))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()
    assert app.experiments["hero"].table == table
    with admin(app) as stub, pytest.raises(grpc.RpcError) as missing:
        stub.SetTraffic(pb.SetTrafficRequest(experiment="nope", traffic={"a": 1}))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_units_without_id_are_assigned_per_event(start_sqlite) -> None:  # type: ignore[no-untyped-def]
    app = start_sqlite(CONFIG)
    with DecisionClient(target(app)) as client:
        variants = Counter(client.choose("hero", actions=ACTIONS).variant for _ in range(200))
    assert set(variants) == {"a", "b", "c"}
    assert np.isclose(variants["c"] / 200, 0.5, atol=0.15)
