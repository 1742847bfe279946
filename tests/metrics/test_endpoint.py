"""``arbiter serve --metrics-listen``: a real server, real gRPC calls, a real HTTP scrape.

Every count is checked against what the test sent and what the client was answered; the
exploration gauges against the probabilities the client received; the model positions against
the learning order read from the log.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from arbiter.client import AlreadyExistsError, DecisionClient, InvalidArgumentError, NotFoundError
from arbiter.server.app import App, Settings
from arbiter.server.config import parse_config
from arbiter.server.metrics import Exploration
from tests.metrics.helpers import (
    CHOOSE,
    CONFIG,
    DECISIONS,
    REWARD,
    choose_all,
    positions_in_log,
    scrape,
    wait_for_scrape,
)
from tests.metrics.helpers import metrics_server as start_metrics_server
from tests.process import ServerProcess

REWARDED = 25


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, str]]:
    """A server subprocess with metrics; (server, metrics URL, database URL)."""
    config = tmp_path / "experiments.toml"
    config.write_text(CONFIG)
    db = f"sqlite:///{tmp_path / 'arbiter.db'}"
    server, url = start_metrics_server(config, db, "--max-queued-writes", "5000")
    yield server, url, db
    server.stop()


def test_the_scrape_counts_exactly_what_was_sent(served: tuple[ServerProcess, str, str]) -> None:
    server, url, db = served
    with DecisionClient(server.target, timeout=10) as client:
        choices = choose_all(client, DECISIONS)
        before = scrape(url)
        for choice in choices[:REWARDED]:
            assert client.reward(choice.event_id, 1.0).learned
        with pytest.raises(AlreadyExistsError):  # a second reward: stored, not learned
            client.reward(choices[0].event_id, 0.0)
        with pytest.raises(InvalidArgumentError):
            client.choose("banner", context={"user": {"age": 1.0}}, actions=[])
        with pytest.raises(NotFoundError):
            client.reward("no-such-event", 1.0)
    after = scrape(url)

    served_by = Counter(choice.variant for choice in choices)
    rewarded_by = Counter(choice.variant for choice in choices[:REWARDED])
    assert set(served_by) == {"a", "b"}  # both variants served: every label pair is checked
    assert after.by("arbiter_decisions_total", "variant", experiment="banner") == served_by
    assert after.by("arbiter_rewards_total", "variant", experiment="banner",
                    learned="true") == rewarded_by
    assert after.by("arbiter_rewards_total", "variant", experiment="banner",
                    learned="false") == {choices[0].variant: 1}
    assert after.by("arbiter_learned_events_total", "variant", experiment="banner") == rewarded_by

    calls = after.by("arbiter_rpc_seconds_count", "code", method=CHOOSE)
    assert calls == {"OK": DECISIONS, "INVALID_ARGUMENT": 1}
    assert after.by("arbiter_rpc_seconds_count", "code", method=REWARD) == {
        "OK": REWARDED, "ALREADY_EXISTS": 1, "NOT_FOUND": 1}
    assert after.value("arbiter_rpc_seconds_bucket", method=CHOOSE, code="OK", le="+Inf") == DECISIONS
    assert after.value("arbiter_rpc_seconds_sum", method=CHOOSE, code="OK") > 0

    assert after.value("arbiter_database_up") == 1
    assert after.value("arbiter_writer_queue_capacity") == 5000
    assert after.value("arbiter_writer_queue_depth") == 0
    assert after.value("arbiter_commit_seconds_count") >= 1
    # Each variant's model is at the last learned event of its own decisions in the log.
    positions = after.by("arbiter_model_position", "variant", experiment="banner")
    assert positions == positions_in_log(db)
    assert all(positions[v] > before.by("arbiter_model_position", "variant")[v] for v in rewarded_by)

    for variant in ("a", "b"):
        health = Exploration.of(c.probability for c in choices if c.variant == variant)
        assert health is not None
        assert after.value("arbiter_chosen_probability_mean", experiment="banner",
                           variant=variant) == pytest.approx(health.mean_probability, rel=1e-9)
        assert after.value("arbiter_effective_sample_fraction", experiment="banner",
                           variant=variant) == pytest.approx(health.effective_sample_fraction,
                                                             rel=1e-9)


def test_windows_closed_with_the_default_reward_count_as_learned_events(tmp_path: Path) -> None:
    """No reward arrives: the coordinator closes each window with the default reward, and each
    such learned event counts for the variant that served the decision."""
    config = tmp_path / "experiments.toml"
    config.write_text(CONFIG.replace("reward_wait_seconds = 600",
                                     "reward_wait_seconds = 0.5\ndefault_reward = 0.0"))
    server, url = start_metrics_server(config, f"sqlite:///{tmp_path / 'arbiter.db'}")
    try:
        with DecisionClient(server.target, timeout=10) as client:
            served_by = Counter(choice.variant for choice in choose_all(client, 12))
        closed = wait_for_scrape(
            url, lambda s: s.by("arbiter_learned_events_total", "variant") == served_by,
            "every window closed and counted")
        assert closed.by("arbiter_rewards_total", "variant") == {}  # none was sent
    finally:
        server.stop()


def test_exploration_health_is_the_documented_formula() -> None:
    uniform = Exploration.of([1 / 3] * 10)
    assert uniform is not None
    assert uniform.mean_probability == pytest.approx(1 / 3)
    assert uniform.effective_sample_fraction == pytest.approx(1.0)
    # 9 decisions at p = 0.9 and one at p = 0.01: w = 1/p; ESS/n = (Σw)² / (n·Σw²)
    skewed = Exploration.of([0.9] * 9 + [0.01])
    assert skewed is not None
    weights = [1 / 0.9] * 9 + [100.0]
    assert skewed.effective_sample_fraction == pytest.approx(
        sum(weights) ** 2 / (10 * sum(w * w for w in weights)))
    assert skewed.effective_sample_fraction < 0.2
    assert Exploration.of([]) is None


def test_the_sample_ratio_gauge_is_the_live_reports_check(tmp_path: Path) -> None:
    config = parse_config({"experiments": {"banner": {
        "control": "a", "reward_wait_seconds": 600,
        "variants": [{"name": "a", "policy": "linucb", "traffic": 0.8},
                     {"name": "b", "policy": "linucb", "traffic": 0.2}]}}})
    app = App(Settings(listen="127.0.0.1:0", db=f"sqlite:///{tmp_path / 'arbiter.db'}",
                       metrics_listen="127.0.0.1:0", tick_seconds=0.05, sample_ratio_seconds=0.1),
              config)
    target = app.start()
    try:
        with DecisionClient(target, timeout=10) as client:
            choose_all(client, DECISIONS)
        report = app.controller.report("banner").sample_ratio
        assert sum(report.observed_units.values()) == DECISIONS
        found = wait_for_scrape(
            f"http://{app.metrics_address}/metrics",
            lambda s: s.value("arbiter_sample_ratio_p_value", experiment="banner") == pytest.approx(
                report.p_value, rel=1e-12), "the coordinator's sample-ratio check")
        p_value = found.value("arbiter_sample_ratio_p_value", experiment="banner")
        assert p_value is not None and 0 <= p_value < 1 and not math.isnan(p_value)
    finally:
        app.stop(grace=1)


def test_a_server_without_metrics_listens_on_no_http_port(tmp_path: Path) -> None:
    """Metrics are off by default: no extra thread, port or cost."""
    app = App(Settings(listen="127.0.0.1:0", db=f"sqlite:///{tmp_path / 'arbiter.db'}"),
              parse_config({"experiments": {"banner": {"policy": "linucb"}}}))
    target = app.start()
    try:
        assert app.metrics is None and app.metrics_address is None
        with grpc.insecure_channel(target) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
    finally:
        app.stop(grace=1)


def test_a_batchs_decisions_are_counted_like_unary_ones(
        served: tuple[ServerProcess, str, str]) -> None:
    server, url, _ = served
    specs = [{"experiment": "banner", "unit_id": f"u{i}", "context": {"user": {"age": 1.0}},
              "actions": ["a1", "a2"]} for i in range(30)]
    with DecisionClient(server.target, timeout=10) as client:
        before = scrape(url)
        results = client.choose_batch([*specs, {**specs[0], "actions": []}])
        retried = client.choose_batch([{**specs[0], "event_id": "e1"}] * 2)
    after = scrape(url)

    decided = Counter(r.variant for r in results[:-1] + retried[:1])  # type: ignore[union-attr]
    counted = {variant: after.by("arbiter_decisions_total", "variant", experiment="banner")
               .get(variant, 0) - before.by("arbiter_decisions_total", "variant",
                                            experiment="banner").get(variant, 0)
               for variant in ("a", "b")}
    assert {v: n for v, n in counted.items() if n} == decided  # the repeat in a batch: once
