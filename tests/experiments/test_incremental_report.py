"""The live report reads the fold's accumulators, not the log, and says what a scan says.

The reference is ``report.build_by_scan``: one scan of the experiment's whole log, the way the
report was computed before. Every check compares the report a real server gives (accumulators
kept by the fold + the open windows + the units horizon) with that scan, figure by figure:
counts exactly, estimates to floating-point rounding — with open windows, decisions without a
unit, deferred decisions (activated or not), windows closed with their default reward, after a
promotion, after a restart (final snapshot + replay), on a second process that replayed the log
behind the first one's back, and after a restart whose snapshots carry no accumulators (written
before revision 0003) — on SQLite and on PostgreSQL. The accumulators themselves are checked
bit for bit against a from-scratch replay of the log. And the report, auto-promotion and a
promotion never scan the log: ``load_rows`` fails while they run, unless segments are asked for.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from arbiter.client import DecisionClient
from arbiter.log.engine import create_engine
from arbiter.log.schema import decisions, snapshots
from arbiter.server import report as reports
from arbiter.server.app import App
from arbiter.server.clock import utc_now
from arbiter.server.config import parse_config
from arbiter.server.experiments import Experiment
from arbiter.server.fold import Fold
from arbiter.server.stats import Stats
from arbiter.v1 import experiments_pb2 as pb
from tests.experiments.helpers import ACTIONS, CLICK, TIERS, admin, report, target

WAIT = 3600.0
CONFIG: dict[str, Any] = {"experiments": {"hero": {
    "control": "control", "salt": "incremental", "reward_wait_seconds": WAIT,
    "default_reward": 0.25, "reward_range": [-2, 3],  # the bounded (empirical-Bernstein) sums
    "variants": [
        {"name": "control", "policy": "linucb", "params": {"alpha": 0.5}, "traffic": 2},
        {"name": "mid", "policy": "fixed", "params": {"action": "mid", "floor": 0.3},
         "traffic": 1},
        {"name": "lin", "policy": "linucb", "params": {"alpha": 0.2}, "shadow": True},
        {"name": "high", "policy": "fixed", "params": {"action": "high", "floor": 0.2},
         "shadow": True},
    ]}}}
SETTINGS: dict[str, Any] = {"snapshot_every": 40, "tick_seconds": 0.05}


class Clock:
    """Starts now and moves 1 ms per reading (distinct decision times); jumps on request."""

    def __init__(self) -> None:
        self._now = utc_now()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(milliseconds=1)
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


# ---------------------------------------------------------------------------------- helpers
def traffic(client: DecisionClient, rng: np.random.Generator, count: int, tag: str, *,
            units: int = 80) -> None:
    """Choose for ``count`` events of every kind: most rewarded (some values outside [0, 1],
    which LinUCB learns), some left open, some without a unit, some deferred (a third never
    activated, a third activated and rewarded, a third activated and left open)."""
    for i in range(count):
        tier = TIERS[int(rng.integers(len(TIERS)))]
        kind = rng.random()
        unit = "" if kind < 0.08 else f"u{rng.integers(units)}"
        deferred = 0.08 <= kind < 0.2
        choice = client.choose("hero", unit_id=unit, context={"user": {"tier": tier}},
                               actions=ACTIONS, event_id=f"{tag}-{i}", deferred=deferred)
        if deferred:
            step = i % 3
            if step == 0:
                continue
            client.activate(choice.event_id)
            if step == 1:
                continue
        elif kind > 0.85:
            continue  # its window stays open
        value = float(rng.random() < CLICK[tier][choice.action_id]) + float(rng.normal(0, 0.3))
        client.reward(choice.event_id, value)


@contextmanager
def no_scan(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*_: object, **__: object) -> list[reports.Row]:
        raise AssertionError("the whole log was read")

    with monkeypatch.context() as patch:
        patch.setattr(reports, "load_rows", refuse)
        yield


def scanned(app: App, name: str = "hero") -> reports.Report:
    experiment = app.experiments[name]
    return reports.build_by_scan(app.engine, experiment.config)


def same_number(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def same_interval(a: reports.Interval | None, b: reports.Interval | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return all(same_number(x, y) for x, y in ((a.estimate, b.estimate), (a.low, b.low),
                                              (a.high, b.high)))


def assert_same(live: reports.Report, scan: reports.Report) -> None:
    assert (live.experiment, live.control) == (scan.experiment, scan.control)
    assert [f.variant for f in live.variants] == [f.variant for f in scan.variants]
    for mine, theirs in zip(live.variants, scan.variants, strict=True):
        where = mine.variant
        assert (mine.shadow, mine.traffic) == (theirs.shadow, theirs.traffic), where
        assert (mine.decisions, mine.units, mine.rewards, mine.scored, mine.scored_units) == (
            theirs.decisions, theirs.units, theirs.rewards, theirs.scored,
            theirs.scored_units), where
        assert (mine.verdict, mine.not_evaluable) == (theirs.verdict, theirs.not_evaluable), where
        for field in ("mean_reward", "difference_to_control", "ips", "snips"):
            assert same_interval(getattr(mine, field), getattr(theirs, field)), (where, field)
        for field in ("p_value", "ips_se", "probability_best", "effective_sample_size",
                      "unsupported_mass"):
            assert same_number(getattr(mine, field), getattr(theirs, field)), (where, field)
    srm, reference = live.sample_ratio, scan.sample_ratio
    assert srm.observed_units == reference.observed_units
    assert srm.expected_share == pytest.approx(reference.expected_share, rel=1e-12)
    assert same_number(srm.chi_square, reference.chi_square)
    assert same_number(srm.p_value, reference.p_value)
    assert srm.mismatch == reference.mismatch
    assert [(e.version, e.since, e.observed_units) for e in srm.eras] == [
        (e.version, e.since, e.observed_units) for e in reference.eras]
    assert live.units_since is None  # below the horizon every decision counts
    assert live.intervals == scan.intervals == reports.BOUNDED


def check(app: App, monkeypatch: pytest.MonkeyPatch) -> reports.Report:
    """The live report (no scan) equals the scan; the gRPC answer is that report."""
    with no_scan(monkeypatch):
        live = app.controller.report("hero")
        served = report(app, "hero")
    assert_same(live, scanned(app))
    by_name = {f.variant: f for f in live.variants}
    for figures in served.variants:
        mine = by_name[figures.variant]
        assert (figures.decisions, figures.units, figures.rewards, figures.scored) == (
            mine.decisions, mine.units, mine.rewards, mine.scored)
        if mine.ips is not None:
            assert same_number(figures.ips.estimate, mine.ips.estimate)
            assert (figures.ips.low, figures.ips.high) == (mine.ips.low, mine.ips.high)
    return live


def dumped(app: App) -> dict[str, Any]:
    """Every variant's accumulators as a snapshot writes them (bit for bit), at one position."""
    with app.fold.lock:
        return {v: app.stats.dump("hero", v, 0) for v in app.experiments["hero"].variants}


def replayed(db: str) -> dict[str, Any]:
    """The accumulators of a from-scratch replay of the whole log (no snapshot)."""
    engine = create_engine(db)
    try:
        experiments = {n: Experiment(c) for n, c in parse_config(CONFIG).items()}
        stats = Stats.of(experiments)
        fold = Fold(engine, experiments, utc_now)
        fold.on_apply(stats.on_apply)
        fold.restore(use_snapshots=False)
        return {v: stats.dump("hero", v, 0) for v in experiments["hero"].variants}
    finally:
        engine.dispose()


def without_position(dump: dict[str, Any]) -> dict[str, Any]:
    return {v: {k: x for k, x in d.items() if k != "position"} for v, d in dump.items()}


def catch_up(*apps: App) -> None:
    for app in apps:
        app.fold.catch_up()


# ---------------------------------------------------------------------------------- tests
def test_the_incremental_report_is_the_scan_through_promotions_restarts_and_replicas(
        start_server: Callable[..., App], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    app = start_server(CONFIG, clock=clock, **SETTINGS)
    db = app.settings.db
    rng = np.random.default_rng(13)
    with DecisionClient(target(app)) as client:
        traffic(client, rng, 400, "a")
    live = check(app, monkeypatch)
    figures = {f.variant: f for f in live.variants}
    # every kind of decision is there: open windows count as decisions, not (yet) as rewards
    for name in ("control", "mid"):
        assert figures[name].decisions > figures[name].rewards > 30, figures[name]
    for name in ("lin", "high"):  # shadows score every decision and serve none
        assert figures[name].scored == sum(f.decisions for f in live.variants), figures[name]
        assert figures[name].decisions == figures[name].rewards == 0, figures[name]
    assert figures["lin"].snips is not None and figures["mid"].difference_to_control is not None
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(snapshots)
                                  .where(snapshots.c.stats.is_not(None))).scalar()

    clock.advance(WAIT + 1)  # every open window closes with the default reward
    app.loop.close_windows()
    live = check(app, monkeypatch)
    assert all(f.decisions == f.rewards for f in live.variants)
    before = {f.variant: f for f in live.variants}

    with no_scan(monkeypatch), admin(app) as stub:  # the evidence is the live report's
        stub.Promote(pb.PromoteRequest(experiment="hero", variant="lin", reason="test"))
    check(app, monkeypatch)
    with DecisionClient(target(app)) as client:
        traffic(client, rng, 250, "b")
    after = check(app, monkeypatch)
    assert {f.variant: f.shadow for f in after.variants} == {
        "control": True, "mid": False, "lin": False, "high": True}
    # by variant, whatever its role: the old champion keeps what it served, the new one what
    # it scored, and the new one's served decisions (not scored) grow from 0
    now = {f.variant: f for f in after.variants}
    assert now["control"].decisions == before["control"].decisions
    assert now["control"].scored == now["lin"].decisions + now["mid"].decisions \
        - before["mid"].decisions
    assert now["lin"].scored == before["lin"].scored and now["lin"].decisions > 0
    [audit] = app.controller.promotions("hero")
    assert audit["evidence"]["to"]["ips"] is not None

    # a second process on the same log replays it behind the first one's back (no final
    # snapshot of the first): the same accumulators, bit for bit, and the same report
    twin = start_server(CONFIG, clock=clock, **SETTINGS)
    with DecisionClient(target(twin)) as client:
        traffic(client, rng, 60, "c")
    catch_up(app, twin)
    assert without_position(dumped(twin)) == without_position(dumped(app))
    check(twin, monkeypatch)
    check(app, monkeypatch)
    twin.stop()
    assert dumped(app) == replayed(db)

    # restart: the final snapshot, then the log after it
    app.stop()
    with create_engine(db).connect() as connection:
        positions = {row[0]: row[1]["position"] for row in connection.execute(
            sa.select(snapshots.c.variant, snapshots.c.stats)
            .where(snapshots.c.stats.is_not(None)).order_by(snapshots.c.id))}
    assert set(positions) == {"control", "mid", "lin", "high"}
    again = start_server(CONFIG, clock=clock, **SETTINGS)
    assert without_position(dumped(again)) == without_position(replayed(db))
    check(again, monkeypatch)
    with DecisionClient(target(again)) as client:
        traffic(client, rng, 80, "d")
    check(again, monkeypatch)
    assert without_position(dumped(again)) == without_position(replayed(db))


def test_snapshots_without_accumulators_are_rebuilt_from_the_log_once(
        start_server: Callable[..., App], monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots written before revision 0003 (``stats`` NULL), in format 1 (before the
    anytime-valid bounds' sums, which cannot be derived from it), with another reward_range, or
    in a format this release does not read: the accumulators are rebuilt from the log, the
    policies still restored."""
    app = start_server(CONFIG, **SETTINGS)
    db = app.settings.db
    with DecisionClient(target(app)) as client:
        traffic(client, np.random.default_rng(3), 200, "a")
    app.stop()
    engine = create_engine(db)
    with engine.begin() as connection:
        connection.execute(snapshots.update().where(snapshots.c.variant == "mid")
                           .values(stats=sa.null()))
        connection.execute(snapshots.update().where(snapshots.c.variant == "lin")
                           .values(stats={"format": 999}))
        connection.execute(snapshots.update().where(snapshots.c.variant == "control")
                           .values(stats={"format": 1, "position": 1, "served": [1, 0.5, 0.0],
                                          "scored": 0, "ips": [1, 0.5, 0.0],
                                          "snips": [1.0, 1.0, 0.5, 0.0, 0.0]}))
        high = connection.execute(sa.select(snapshots.c.id, snapshots.c.stats)
                                  .where(snapshots.c.variant == "high")).all()
        for row_id, stats in high:  # scaled by a range the configuration no longer has
            connection.execute(snapshots.update().where(snapshots.c.id == row_id)
                               .values(stats={**stats, "range": [0, 1]}))
    engine.dispose()
    again = start_server(CONFIG, **SETTINGS)
    check(again, monkeypatch)
    assert without_position(dumped(again)) == without_position(replayed(db))


def test_auto_promotion_and_segments(start_sqlite: Callable[..., App],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto-promotion reads the accumulators only; segments scan, and only when asked for."""
    config = {"experiments": {"hero": {
        **CONFIG["experiments"]["hero"],
        "auto_promote": {"min_decisions": 1_000_000, "confidence": 0.95}}}}
    app = start_sqlite(config, auto_promote_seconds=3600)
    with DecisionClient(target(app)) as client:
        traffic(client, np.random.default_rng(5), 150, "a")
    with no_scan(monkeypatch):
        assert app.controller.auto_promote() == []  # too few: nothing promoted, nothing read
        figures = reports.learned_figures(app.fold, app.stats, app.experiments["hero"].config)
    whole = {f.variant: f for f in scanned(app).variants}
    for fig in figures:
        assert fig.rewards == whole[fig.variant].rewards
        assert same_interval(fig.mean_reward, whole[fig.variant].mean_reward)
        assert same_interval(fig.ips, whole[fig.variant].ips)
    with pytest.raises(AssertionError, match="whole log"), no_scan(monkeypatch):
        app.controller.report("hero", segment_by="user.tier")
    segmented = app.controller.report("hero", segment_by="user.tier")
    assert {s.segment for s in segmented.segments} == {"free", "gold"}
    assert_same(segmented, scanned(app))


def test_units_are_counted_over_the_last_decisions(start_server: Callable[..., App]) -> None:
    """Beyond the horizon, units are those of the newest ``limit`` decisions, and the sample
    ratio counts units per era within them; the report says where the horizon starts."""
    clock = Clock()
    app = start_server(CONFIG, clock=clock)
    with DecisionClient(target(app)) as client:
        traffic(client, np.random.default_rng(8), 150, "a", units=40)
    config = app.experiments["hero"].config
    rows = reports.load_rows(app.engine, "hero")
    with app.engine.connect() as connection:
        times = {event_id: at for event_id, at in connection.execute(
            sa.select(decisions.c.event_id, decisions.c.created_at))}
    assert len(set(times.values())) == len(times)
    newest = sorted(rows, key=lambda r: r.created_at)[-60:]
    with app.engine.connect() as connection:
        eras = reports.eras_of(connection, config)
        units = reports.recent_units(connection, config, eras, limit=60)
        everything = reports.recent_units(connection, config, eras)
    assert units.since == newest[0].created_at and everything.since is None
    for variant in config.variants:
        name = variant.name
        served = [r for r in newest if r.variant == name]
        scored = [r for r in newest if r.variant != name and name in r.shadow]
        assert units.units[name] == len({r.unit for r in served}), name
        assert units.scored[name] == len({r.unit for r in scored}), name
    assert reports.sample_ratio_of(units.eras, eras) == reports.sample_ratio(newest, eras)
    limited = reports.build(app.engine, app.fold, app.stats, config, units_horizon=60)
    assert limited.units_since == newest[0].created_at
