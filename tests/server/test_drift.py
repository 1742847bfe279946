"""Forgetting and drift alarms end to end: a real server, a real channel, SQLite and PostgreSQL.

A variant with ``decay`` serves a world where action ``a`` pays, then, abruptly, ``b``: the
server's drift alarms (kept with the report's statistics) raise the reward-drop alarm after
the change, the policy's own drift test resets its models so it serves ``b`` afterwards, and
the models — decay, reset and all — equal a from-scratch replay of the log and survive a
restart from their snapshots bit for bit; the restarted server's alarms are the same, raised at the same seqs.
"""

from __future__ import annotations

import json
import logging
import random
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from arbiter.client import DecisionClient
from arbiter.log.store import LearnedEvent
from arbiter.policies import Decision
from arbiter.policies.linear import LinearPolicy
from arbiter.server.app import App
from arbiter.server.config import parse_config
from arbiter.server.drift import WINDOW, Alarm, DriftState
from arbiter.server.experiments import Experiment
from arbiter.server.stats import Stats
from tests.cli.helpers import arbiter
from tests.experiments.helpers import report, target
from tests.replay import State, replayed_states

CONFIG_TOML = """
[experiments.drift]
[[experiments.drift.variants]]
name = "forget"
policy = "linucb"
params = { decay = 0.95, epsilon = 0.2 }
traffic = 1.0
[[experiments.drift.variants]]
name = "shadow"
policy = "lints"
params = { decay = 0.9 }
shadow = true
"""
CONFIG = tomllib.loads(CONFIG_TOML)
PHASE = 300


def live_states(app: App) -> dict[tuple[str, str], State]:
    with app.fold.lock:
        return {(e.name, v.name): v.state() for e in app.experiments.values()
                for v in e.variants.values()}


def feed(client: DecisionClient, start: int, paying: str) -> Counter[str]:
    """``PHASE`` decisions with fixed ids from ``start``; reward 1 when the action is ``paying``."""
    served: Counter[str] = Counter()
    for i in range(start, start + PHASE):
        choice = client.choose("drift", context={"user": {"x": (i % 7) / 7}},
                               actions=["a", "b", "c"], unit_id=f"u{i % 11}", event_id=f"d{i:05d}")
        client.reward(choice.event_id, float(choice.action_id == paying))
        served[choice.action_id] += 1
    return served


def alarms_of(app: App) -> dict[str, Alarm]:
    with app.fold.lock:
        return app.stats.alarms("drift")


def folded(app: App, learned: int) -> int:
    """Wait until the fold has applied ``learned`` decisions; its position then."""
    deadline = time.monotonic() + 30
    while app.fold.learned_events < learned and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.fold.learned_events == learned
    return app.fold.applied


def test_a_decaying_variant_raises_the_drift_alarm_recovers_and_replays_bit_identically(
        start_server: Callable[..., App], db_url: str, tmp_path: Path) -> None:
    config_file = tmp_path / "experiments.toml"
    config_file.write_text(CONFIG_TOML)
    app = start_server(CONFIG, snapshot_every=70)
    replica = start_server(CONFIG, snapshot_every=70)  # a second process: folds what app logs
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        before = feed(client, 0, "a")
        change = folded(app, PHASE)
        assert alarms_of(app)["forget"].reward_drop_seq is None
        after = feed(client, PHASE, "b")
        folded(app, 2 * PHASE)
        late = feed(client, 2 * PHASE, "b")
        folded(app, 3 * PHASE)

    assert before.most_common(1)[0][0] == "a"
    alarm = alarms_of(app)["forget"]
    assert alarm.reward_drop_seq is not None and alarm.reward_drop_seq > change
    assert alarm.reward_drops == 1
    assert alarm.collapse_seq is None and alarm.effective_actions is not None
    assert alarm.effective_actions > 1.1  # a 20% floor over 3 actions: about 1.3
    policy = app.experiments["drift"].variants["forget"].policy
    assert isinstance(policy, LinearPolicy) and policy.resets >= 1
    assert after["b"] > after["a"] and late["b"] > 0.6 * PHASE  # it recovered: b wins now

    kept, alarms = live_states(app), alarms_of(app)
    shown = {v.variant: v for v in report(app, "drift").variants}["forget"]  # over gRPC
    assert (shown.drift_reward_drop_seq, shown.drift_reward_drops) == (alarm.reward_drop_seq, 1)
    assert shown.exploration_collapse_seq == 0
    assert shown.effective_actions == pytest.approx(alarm.effective_actions)
    printed = arbiter("report", "--target", target(app), "--experiment", "drift")
    assert printed.returncode == 0, printed.stderr
    assert (f"forget: DRIFT: its learned rewards dropped (last detected at learned event "
            f"{alarm.reward_drop_seq}, 1 time(s))") in printed.stdout
    assert replayed_states(db_url, config_file) == kept
    deadline = time.monotonic() + 30
    while replica.fold.applied < app.fold.applied and time.monotonic() < deadline:
        time.sleep(0.01)
    assert alarms_of(replica) == alarms  # the same alarms at the same seqs
    assert live_states(replica) == kept
    replica.stop(grace=1)
    app.stop(grace=1)
    restarted = start_server(CONFIG, snapshot_every=70)
    assert live_states(restarted) == kept
    assert alarms_of(restarted) == alarms  # its snapshot and the replay after it: the same


def test_exploration_collapse_is_raised_once_when_the_window_fills_and_cleared_after(
        caplog: pytest.LogCaptureFixture) -> None:
    """Served with probability 0.99 (1.01 effective actions): raised at the event that fills
    the window, logged once; once the window holds only 0.5s (2 effective actions), cleared."""
    experiment = Experiment(parse_config(CONFIG)["drift"])
    stats = Stats.of({"drift": experiment})
    decision = Decision(context=(), action_ids=("a", "b"), action_features=((), ()))
    seq = 0

    def serve(n: int, probability: float) -> None:
        nonlocal seq
        for _ in range(n):
            seq += 1
            stats.on_apply(experiment, LearnedEvent(seq, "drift", 1.0, variant="forget",
                                                      decision=decision, probability=probability))

    with caplog.at_level(logging.WARNING, logger="arbiter.server.drift"):
        serve(WINDOW - 1, 0.99)
        assert stats.alarms("drift")["forget"].collapse_seq is None
        serve(WINDOW, 0.99)
    alarm = stats.alarms("drift")["forget"]
    assert alarm.collapse_seq == WINDOW and alarm.raised
    assert alarm.effective_actions == pytest.approx(1 / 0.99)
    assert [r.getMessage() for r in caplog.records] == [
        f"drift alarm: experiment drift variant forget: exploration collapsed (1.010 effective "
        f"actions over the last {WINDOW} decisions) at seq {WINDOW}"]
    serve(WINDOW, 0.5)
    alarm = stats.alarms("drift")["forget"]
    assert alarm.collapse_seq is None and alarm.effective_actions == pytest.approx(2.0)
    assert alarm.reward_drop_seq is None  # constant rewards: no drop


def test_the_running_window_sum_survives_a_snapshot_bit_for_bit_and_stays_the_window_sum() -> None:
    """The window's sum is kept as probabilities come and go: a state restored from its
    snapshot JSON midway goes on to exactly the alarms and sums of one that never stopped; the
    kept sum stays the window's sum (to 1e-12 after 20 windows of random probabilities); and a
    snapshot written before the sum was kept (no ``total``) sums its window once."""
    rng = random.Random(7)
    events = [(seq, float(rng.random() < 0.4), rng.uniform(0.02, 1.0))
              for seq in range(1, 20 * WINDOW + 1)]
    kept = DriftState()
    for event in events[:3 * WINDOW + 100]:
        kept.observe(*event)
    assert kept.total != sum(kept.window)  # summed afresh, the window gives other bits
    restored = DriftState.from_json(json.loads(json.dumps(kept.to_json())))
    assert restored.total == kept.total
    old_format = kept.to_json()
    del old_format["total"]
    assert DriftState.from_json(old_format).total == sum(kept.window)
    for event in events[3 * WINDOW + 100:]:
        assert restored.observe(*event) == kept.observe(*event)
    assert restored.to_json() == kept.to_json()
    assert restored.alarm == kept.alarm
    assert kept.total == pytest.approx(sum(kept.window), rel=1e-12)
    assert kept.alarm.effective_actions == pytest.approx(WINDOW / sum(kept.window), rel=1e-12)
