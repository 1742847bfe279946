"""deploy/: the example Prometheus configuration and alert rules read as Prometheus reads them
(YAML, the documented keys), and every metric an alert reads is one a live server exports."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from arbiter.cli.checks import listen_problem
from arbiter.client import DecisionClient
from arbiter.server.app import App, Settings
from arbiter.server.config import parse_config
from tests.metrics.helpers import CONFIG, choose_all, wait_for_scrape
from tests.process import ROOT

DEPLOY = ROOT / "deploy"
REQUIRED = {"ArbiterDatabaseDown", "ArbiterWriterQueueNearFull", "ArbiterExplorationCollapsed",
            "ArbiterSampleRatioMismatch", "ArbiterFoldLagHigh"}
METRIC = re.compile(r"\barbiter_[a-z_]+\b")


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load("alerts.yml")["groups"] for rule in group["rules"]]


def test_the_scrape_config_loads_the_rules_and_scrapes_arbiter() -> None:
    config = load("prometheus.yml")
    assert all((DEPLOY / name).is_file() for name in config["rule_files"])
    assert "alerts.yml" in config["rule_files"]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "arbiter"]
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert targets and all(listen_problem(t) is None for t in targets)


def test_every_alert_the_issue_asks_for_is_there_with_a_severity_and_a_summary() -> None:
    found = rules()
    assert {rule["alert"] for rule in found} >= REQUIRED
    for rule in found:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_every_metric_an_alert_reads_is_exported(tmp_path: Path) -> None:
    app = App(Settings(listen="127.0.0.1:0", db=f"sqlite:///{tmp_path / 'arbiter.db'}",
                       metrics_listen="127.0.0.1:0", tick_seconds=0.05),
              parse_config(tomllib.loads(CONFIG)))
    target = app.start()
    try:
        with DecisionClient(target, timeout=10) as client:
            choose_all(client, 5)  # the labelled series exist once something was decided
        exported = wait_for_scrape(
            f"http://{app.metrics_address}/metrics",
            lambda s: s.value("arbiter_sample_ratio_p_value", experiment="banner") is not None,
            "the coordinator's first sample-ratio check").names()
    finally:
        app.stop(grace=1)
    read = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    assert read >= {"arbiter_database_up", "arbiter_writer_queue_depth",
                    "arbiter_chosen_probability_mean", "arbiter_sample_ratio_p_value",
                    "arbiter_fold_lag_seconds_bucket"}
    assert read - exported == set()


@pytest.mark.parametrize("name", ["prometheus.yml", "alerts.yml"])
def test_the_readme_points_at_the_deploy_files(name: str) -> None:
    assert f"deploy/{name}" in (ROOT / "README.md").read_text()
