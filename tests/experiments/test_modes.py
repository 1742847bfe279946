"""Variant modes: ``apprentice`` serves the caller's baseline and learns from it, ``logging``
serves the baseline with an exploration floor and learns nothing, and ``SetMode`` switches a
variant at one place in the learning order — through real servers on SQLite and PostgreSQL,
the CLI, and a ``kill -9`` with recovery equal to a from-scratch replay."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from arbiter.client import DecisionClient, InvalidArgumentError
from arbiter.log.engine import create_engine
from arbiter.log.schema import decisions, experiment_states
from arbiter.server.app import App
from tests.cli.helpers import arbiter
from tests.experiments.helpers import report, target
from tests.process import ServerProcess
from tests.replay import latest_snapshots, replayed_states

ACTIONS = ["x", "y", "z"]


def _logged(db: str) -> list[sa.RowMapping]:
    engine = create_engine(db)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(decisions)).mappings())
    finally:
        engine.dispose()


def test_apprentice_serves_the_baseline_logs_its_own_choice_and_learns(
        start_server: Callable[..., App], db_url: str) -> None:
    app = start_server({"experiments": {"shop": {"policy": "linucb", "mode": "apprentice"}}})
    variant = app.experiments["shop"].variants["default"]
    with DecisionClient(target(app)) as client:
        choice = client.choose("shop", actions=ACTIONS, baseline_action_id="y",
                               context={"user": {"tier": "gold"}})
        assert (choice.action_id, choice.probability) == ("y", 1.0)
        assert client.reward(choice.event_id, 1.0).learned
        first = client.choose("shop", actions=ACTIONS)  # no baseline: the first action
        assert (first.action_id, first.probability) == ("x", 1.0)
        with pytest.raises(InvalidArgumentError, match="baseline_action_id"):
            client.choose("shop", actions=ACTIONS, baseline_action_id="w")
    assert variant.updates == 1  # it learned from the baseline's outcome
    rows = {row["event_id"]: row for row in _logged(db_url)}
    assert set(rows) == {choice.event_id, first.event_id}  # the refused one changed nothing
    logged = rows[choice.event_id]
    assert logged["distribution"] == [0.0, 1.0, 0.0] and logged["probability"] == 1.0
    own = logged["shadow"]["default"]  # the policy's own distribution, logged like a shadow's
    assert len(own) == 3 and sum(own) == pytest.approx(1.0)


def test_logging_serves_the_baseline_with_the_floor_and_learns_nothing(
        start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"shop": {"policy": "linucb", "mode": "logging",
                                                 "logging_epsilon": 0.3}}})
    variant = app.experiments["shop"].variants["default"]
    draws = 300
    counts: Counter[str] = Counter()
    with DecisionClient(target(app)) as client:
        for i in range(draws):
            choice = client.choose("shop", actions=ACTIONS, baseline_action_id="z",
                                   event_id=f"e{i}")
            assert dict(choice.ranking) == pytest.approx({"z": 0.8, "x": 0.1, "y": 0.1})
            counts[choice.action_id] += 1
            client.reward(choice.event_id, 1.0)
    # z with probability 0.8: 4 standard deviations of a binomial count either side
    spread = 4 * (draws * 0.8 * 0.2) ** 0.5
    assert abs(counts["z"] - 0.8 * draws) <= spread
    assert counts["x"] > 0 and counts["y"] > 0
    assert variant.updates == 0  # data collection: the policy learns nothing


@pytest.mark.slow
def test_set_mode_switches_at_one_event_is_audited_and_recovers_exactly(
        db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.shop]\ncontrol = "a"\nvariants = [\n'
                      '  { name = "a", policy = "linucb" },\n'
                      '  { name = "s", policy = "lints", shadow = true },\n]\n')
    server = ServerProcess(config, db_url)
    rng = random.Random(3)
    learned = 0

    def drive(count: int, baseline: str = "") -> list[tuple[str, float]]:
        nonlocal learned
        answers = []
        with DecisionClient(server.target, timeout=10) as client:
            for _ in range(count):
                choice = client.choose("shop", actions=ACTIONS, baseline_action_id=baseline,
                                       context={"user": {"x": rng.random()}})
                if client.reward(choice.event_id, float(rng.random() < 0.5)).learned:
                    learned += 1
                answers.append((choice.action_id, choice.probability))
        return answers

    drive(30)
    online_learned = learned
    done = arbiter("mode", "--target", server.target, "--experiment", "shop", "--variant", "a",
                   "apprentice", "--reason", "shadowing the rules engine")
    assert done.returncode == 0, done.stderr
    assert "a apprentice" in done.stdout
    assert set(drive(30, baseline="z")) == {("z", 1.0)}
    apprentice_learned = learned - online_learned
    done = arbiter("mode", "--target", server.target, "--experiment", "shop", "--variant", "a",
                   "logging", "--json")
    assert done.returncode == 0, done.stderr
    assert '"mode": "logging"' in done.stdout
    served = {round(p, 9) for _, p in drive(40, baseline="y")}
    assert served <= {round(1 - 0.1 + 0.1 / 3, 9), round(0.1 / 3, 9)}  # logging_epsilon 0.1
    refused = arbiter("mode", "--target", server.target, "--experiment", "shop",
                      "--variant", "nope", "online")
    assert refused.returncode == 1 and "nope" in refused.stderr
    server.kill()  # kill -9

    replay = replayed_states(db_url, config)
    assert replay[("shop", "a")][2] == online_learned + apprentice_learned  # none while logging
    assert replay[("shop", "s")][2] == learned  # the shadow learns every learned event
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            reasons = [r for (r,) in connection.execute(
                sa.select(experiment_states.c.reason).order_by(experiment_states.c.version))]
    finally:
        engine.dispose()
    assert reasons[-2:] == ["mode of a set to apprentice: shadowing the rules engine",
                            "mode of a set to logging"]

    server = ServerProcess(config, db_url)  # recovery: snapshots + replay
    with DecisionClient(server.target, timeout=10) as client:  # still logging after restart
        assert client.choose("shop", actions=ACTIONS, baseline_action_id="x").probability in (
            pytest.approx(0.9 + 0.1 / 3), pytest.approx(0.1 / 3))
    code, _, err = server.stop()
    assert code == 0, err
    snapshots = latest_snapshots(db_url, config)
    replay = replayed_states(db_url, config)
    for key, (state, _, updates) in replay.items():
        stored = snapshots[key]
        assert stored is not None and stored[0] == state and stored[2] == updates, key


def test_the_report_says_how_often_an_apprentice_agrees_and_what_the_baseline_earns(
        start_server: Callable[..., App], db_url: str) -> None:
    """Figures recomputed from what the client sent and what the log holds."""
    app = start_server({"experiments": {"shop": {"policy": "linucb", "mode": "apprentice"}}})
    rng = random.Random(5)
    values: dict[str, float] = {}
    with DecisionClient(target(app)) as client:
        for _ in range(60):
            tier = rng.choice(["a", "b"])
            baseline = "y" if tier == "a" else "z"  # the caller's rule
            choice = client.choose("shop", actions=ACTIONS, baseline_action_id=baseline,
                                   context={"user": {"tier": tier}})
            values[choice.event_id] = float(rng.random() < (0.7 if tier == "a" else 0.2))
            client.reward(choice.event_id, values[choice.event_id])
    logged = {row["event_id"]: row for row in _logged(db_url)}
    agreed = sum(own.index(max(own)) == row["chosen_index"]
                 for row in logged.values() for own in [row["shadow"]["default"]])
    figures = report(app, "shop").variants[0]
    assert figures.apprentice_decisions == 60
    assert figures.agreement == pytest.approx(agreed / 60)
    assert figures.baseline_reward == pytest.approx(sum(values.values()) / 60)
    printed = arbiter("report", "--target", target(app), "--experiment", "shop")
    assert printed.returncode == 0, printed.stderr
    assert (f"default (apprentice): its policy chose the baseline in {agreed / 60:.1%} of 60 "
            "learned decisions") in printed.stdout
