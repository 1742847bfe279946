"""End to end: a real server logs a simulation to SQLite; ``arbiter evaluate`` and ``export`` read it.

The simulated users are ``server.simulate``'s (hidden click model, so every policy's true value
is computable). The experiment serves a uniform control and an ε-greedy variant, and scores a
shadow ``lin`` (LinUCB). Besides the rewarded decisions the log holds decisions still inside
their reward window and deferred decisions that were never activated (both must be left out)
and deferred decisions that were activated and rewarded (kept).
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import grpc
import numpy as np
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from vowpal_wabbit_next import DSJsonFormatParser, Workspace

from arbiter.cli.simulate import ARTICLES, COUNTRIES, DEVICES, HiddenPreferences
from arbiter.client import DecisionClient
from arbiter.evaluation.logdata import LogQuery, read_log
from arbiter.evaluation.replay import CandidateSpec, parse_candidate
from arbiter.evaluation.summary import summarize, to_json
from arbiter.log.engine import create_engine
from arbiter.log.schema import decisions, learnings
from arbiter.server.app import App, Settings
from arbiter.server.config import parse_config
from arbiter.v1 import experiments_pb2, experiments_pb2_grpc
from tests import browser
from tests.evaluation.reference_replay import reference_replay
from tests.postgres import free_port

EVENTS = 1500
OPEN, HIDDEN, SHOWN = 20, 10, 5
SEED = 11
CONFIG = {"experiments": {"homepage": {
    "control": "control",
    "variants": [
        {"name": "control", "policy": "uniform", "traffic": 1.0},
        {"name": "greedy", "policy": "epsilon_greedy", "traffic": 1.0},
        {"name": "lin", "policy": "linucb", "params": {"alpha": 0.5}, "shadow": True},
    ],
}}}


@dataclass(frozen=True)
class Logged:
    app: App
    db: str
    model: HiddenPreferences

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"


def _context(rng: np.random.Generator) -> tuple[int, int, dict[str, dict[str, str]]]:
    country, device = int(rng.integers(len(COUNTRIES))), int(rng.integers(len(DEVICES)))
    return country, device, {"user": {"country": COUNTRIES[country], "device": DEVICES[device]}}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    db = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'arbiter.db'}"
    app = App(Settings(listen="127.0.0.1:0", db=db), parse_config(CONFIG))
    app.start()
    model = HiddenPreferences(SEED)
    rng = np.random.default_rng(SEED)
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        for i in range(EVENTS + OPEN + HIDDEN + SHOWN):
            country, device, context = _context(rng)
            deferred = i >= EVENTS + OPEN
            choice = client.choose("homepage", unit_id=f"user-{i % 300}", context=context,
                                   actions=list(ARTICLES), deferred=deferred, event_id=f"ev-{i}")
            article = ARTICLES.index(choice.action_id)
            clicked = rng.random() < model.click_probability(country, device, article)
            if EVENTS <= i < EVENTS + OPEN:
                continue  # no reward yet: the hour-long window is still open
            if i >= EVENTS + OPEN + HIDDEN:
                client.activate(choice.event_id)
            client.reward(choice.event_id, float(clicked))  # unactivated deferred: stored, not learned
    try:
        yield Logged(app, db, model)
    finally:
        app.stop(grace=1)


def _true_value_of_fixed(model: HiddenPreferences, article: int) -> float:
    return float(np.mean([model.click_probability(c, d, article)
                          for c in range(len(COUNTRIES)) for d in range(len(DEVICES))]))


def _arbiter(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``arbiter`` command, as a subprocess."""
    return subprocess.run([sys.executable, "-m", "arbiter.cli", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def _evaluate(logged: Logged, *extra: str) -> subprocess.CompletedProcess[str]:
    return _arbiter("evaluate", "--db", logged.db, "--experiment", "homepage", *extra)


def test_evaluate_ranks_the_better_candidate_first(logged: Logged, tmp_path: Path,
) -> None:
    worst = min(range(len(ARTICLES)), key=lambda a: _true_value_of_fixed(logged.model, a))
    out = tmp_path / "result.json"

    run = _evaluate(logged, "--candidate", 'good=linucb:{"alpha": 0.5}',
                    "--candidate", f'bad=fixed:{{"action": "{ARTICLES[worst]}"}}', "--json", str(out))

    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["n_rounds"] == EVENTS + SHOWN  # open windows and unshown decisions left out
    by_name = {c["name"]: c for c in result["candidates"]}
    good, bad = by_name["good"]["estimates"], by_name["bad"]["estimates"]
    for name in ("ips", "snips", "dm", "dr", "sndr", "switch-dr"):
        assert good[name]["value"] > bad[name]["value"], name
    assert good["dr"]["low"] > bad["dr"]["high"]
    assert result["winner"] == "good"
    # The fixed policy's value is known exactly: IPS must cover it within 3.5 standard errors.
    truth = _true_value_of_fixed(logged.model, worst)
    standard_error = (bad["ips"]["high"] - bad["ips"]["low"]) / (2 * 1.959964)
    assert abs(bad["ips"]["value"] - truth) < 3.5 * standard_error
    printed = run.stdout
    assert "logging policy" in printed and "uniform baseline" in printed
    assert "Candidate good beats the logging policy by" in printed


def test_report_has_the_plots_and_only_aggregates(logged: Logged, tmp_path: Path) -> None:
    report = tmp_path / "report.html"

    run = _evaluate(logged, "--candidate", "lin=linucb", "--candidate", "u=uniform",
                    "--segment-by", "user.device", "--report", str(report))

    assert run.returncode == 0, run.stderr
    page = report.read_text()
    for heading in ("Expected change", "Paired differences behind the verdict", "Evaluability",
                    "Estimated policy value", "Running estimates over time", "Importance weights",
                    "Per-segment estimates", "Feature importance"):
        assert heading in page
    # the expected change, paired differences, estimates, running estimates, 3 weight histograms,
    # segments
    assert page.count("<svg") == 1 + 1 + 1 + 1 + 3 + 1
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "mobile" in page  # a segment label is an aggregate's name
    verdict = run.stdout.splitlines()[0]  # the console opens with the verdict the page shows
    assert verdict.startswith("Candidate lin beats the logging policy") and html.escape(verdict) in page
    engine = sa.create_engine(logged.db)
    with engine.connect() as connection:
        identifiers = connection.execute(sa.select(decisions.c.event_id, decisions.c.unit_hash)).all()
    engine.dispose()
    leaked = [value for row in identifiers for value in row if value and value in page]
    assert leaked == []
    assert '"categories"' not in page and "numbers" not in page


@pytest.mark.parametrize(
    ("candidate", "message"),
    [("x=nope", "unknown policy `nope`"), ('x=linucb:{"beta": 2}', "unknown parameter `beta`")],
)
def test_a_bad_candidate_exits_2_with_a_clear_message(logged: Logged, candidate: str, message: str) -> None:
    run = _evaluate(logged, "--candidate", candidate)
    assert run.returncode == 2 and message in run.stderr


def _learned(logged: Logged) -> dict[str, float]:
    engine = sa.create_engine(logged.db)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(learnings.c.event_id, learnings.c.value)
                                  .where(learnings.c.event_id.is_not(None))).all()
    engine.dispose()
    return dict(rows)


def test_export_dsjson_is_read_by_vowpal_wabbit_and_trains_cb_adf(logged: Logged, tmp_path: Path) -> None:
    out = tmp_path / "log.dsjson"

    run = _arbiter("export", "--db", logged.db, "--experiment", "homepage", "--format", "dsjson",
                   "--out", str(out))

    assert run.returncode == 0, run.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == EVENTS + SHOWN
    learned = _learned(logged)
    workspace = Workspace(["--cb_adf", "-q", "ui", "--quiet"])
    parser = DSJsonFormatParser(workspace)
    for line in lines:
        event = json.loads(line)
        assert event["_label_cost"] == -learned[event["EventId"]]
        assert event["a"][0] == event["_label_Action"] and sorted(event["a"]) == [1, 2, 3, 4, 5]
        # "a" is the ranking order: the chosen action, then by decreasing probability; "p" follows it.
        assert event["p"][0] == event["_label_probability"] and event["p"][1:] == sorted(event["p"][1:],
                                                                                           reverse=True)
        examples = parser.parse_json(line)
        assert len(examples) == 1 + len(ARTICLES)  # the shared example, then one per action
        workspace.learn_one(examples)
    # The trained model's greedy choice per context beats choosing at random.
    chosen_value = []
    for c, country in enumerate(COUNTRIES):
        for d, device in enumerate(DEVICES):
            probe = json.dumps({"c": {"user": {"country": country, "device": device},
                                      "_multi": [{"id": {"id": a}} for a in ARTICLES]}})
            scores: list[tuple[int, float]] = workspace.predict_one(parser.parse_json(probe))  # type: ignore[assignment]
            best = min(scores, key=lambda pair: pair[1])[0]  # lowest predicted cost
            chosen_value.append(logged.model.click_probability(c, d, best))
    assert np.mean(chosen_value) > logged.model.uniform_rate() + 0.1


def test_export_parquet_round_trips_every_decision(logged: Logged, tmp_path: Path) -> None:
    out = tmp_path / "log.parquet"

    run = _arbiter("export", "--db", logged.db, "--experiment", "homepage", "--format", "parquet",
                   "--out", str(out))

    assert run.returncode == 0, run.stderr
    table = pq.read_table(out).to_pylist()
    engine = sa.create_engine(logged.db)
    with engine.connect() as connection:
        logged_rows = {r.event_id: r for r in connection.execute(sa.select(decisions))}
    engine.dispose()
    assert len(table) == len(logged_rows) == EVENTS + OPEN + HIDDEN + SHOWN
    learned = _learned(logged)
    for row in table:
        original = logged_rows[row["event_id"]]
        assert row["reward"] == learned.get(row["event_id"])
        assert row["learned"] == (row["event_id"] in learned)
        assert row["distribution"] == original.distribution
        assert json.loads(row["context_json"]) == original.context
        assert (row["experiment"], row["chosen_index"], row["probability"], row["variant"]) == (
            "homepage", original.chosen_index, original.probability, original.variant)
        # The typed columns hold what the JSON ones do: maps read back as (key, value) pairs.
        assert [(ns["name"], dict(ns["categories"]), dict(ns["numbers"])) for ns in row["context"]] == [
            (ns["name"], ns.get("categories", {}), ns.get("numbers", {})) for ns in original.context]
        assert [a["id"] for a in row["actions"]] == [a["id"] for a in original.actions]
        assert row["actions"][row["chosen_index"]]["id"] == original.chosen_action
        assert dict(row["shadow"]) == original.shadow
    assert sum(not r["learned"] for r in table) == OPEN + HIDDEN
    assert all(len(r["shadow"]) == 1 and dict(r["shadow"])["lin"] for r in table)  # the shadow variant


def test_duckdb_reads_the_parquet_export_with_its_nested_columns(logged: Logged, tmp_path: Path) -> None:
    out = tmp_path / "log.parquet"
    assert _arbiter("export", "--db", logged.db, "--experiment", "homepage", "--format", "parquet",
                    "--out", str(out)).returncode == 0
    learned = _learned(logged)

    with duckdb.connect() as con:
        per_device = dict(con.execute(
            "SELECT context[1].categories['device'], count(*) FROM read_parquet(?) "
            "WHERE experiment = 'homepage' AND learned GROUP BY 1", [str(out)]).fetchall())
        chosen = con.execute(
            "SELECT bool_and(actions[chosen_index + 1].id = chosen_action), "
            "bool_and(abs(list_sum(shadow['lin']) - 1) < 1e-9), "
            "bool_and(distribution[chosen_index + 1] = probability) FROM read_parquet(?)",
            [str(out)]).fetchone()

    engine = sa.create_engine(logged.db)
    with engine.connect() as connection:
        contexts = [json.loads(c) if isinstance(c, str) else c for c in connection.execute(
            sa.select(decisions.c.context).where(decisions.c.event_id.in_(list(learned)))).scalars()]
    engine.dispose()
    expected: dict[str, int] = {}
    for context in contexts:
        device = context[0]["categories"]["device"]
        expected[device] = expected.get(device, 0) + 1
    assert per_device == expected
    assert chosen == (True, True, True)


def _control(logged: Logged) -> str:
    with grpc.insecure_channel(logged.target) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        return str(stub.GetExperiment(experiments_pb2.GetExperimentRequest(experiment="homepage")).control)


def _toml(path: Path) -> Path:
    """CONFIG as an experiments TOML file."""
    lines = ['[experiments.homepage]', f'control = "{CONFIG["experiments"]["homepage"]["control"]}"']
    for variant in CONFIG["experiments"]["homepage"]["variants"]:
        lines.append("[[experiments.homepage.variants]]")
        lines += [f"{key} = {json.dumps(value) if not isinstance(value, dict) else _inline(value)}"
                  for key, value in variant.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _inline(table: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + "}"


def test_candidates_from_config_replays_every_variant_as_configured(logged: Logged, tmp_path: Path) -> None:
    out = tmp_path / "result.json"

    run = _evaluate(logged, "--candidates-from-config", "--config", str(_toml(tmp_path / "exp.toml")),
                    "--json", str(out))

    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    replayed = {c["name"]: (c["policy"], c["params"]) for c in result["candidates"]}
    assert replayed == {"control": ("uniform", {}), "greedy": ("epsilon_greedy", {}),
                        "lin": ("linucb", {"alpha": 0.5}), "uniform baseline": ("uniform", {})}
    # Two serving variants: each candidate is also compared with each of them on its own rounds.
    references = {c["reference"] for c in result["candidates"][2]["comparisons"]}
    assert references == {"logging policy", "variant control", "variant greedy"}


def test_no_verdict_below_the_effective_sample_size_threshold_and_it_says_why(
        logged: Logged, tmp_path: Path) -> None:
    out = tmp_path / "result.json"

    run = _evaluate(logged, "--candidate", "u=uniform", "--min-ess", "5000", "--json", str(out))

    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["winner"] is None
    u = result["candidates"][0]
    assert not u["evaluable"] and u["effective_sample_size"] < 5000
    assert run.stdout.startswith("No verdict: candidate u cannot be judged from this log: its effective "
                                 "sample size is")
    assert "(below --min-ess 5000)" in run.stdout and "raise the serving variants' exploration" in run.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [(("--min-effect", "lots"), "--min-effect must be a number or a percentage like 1%, got 'lots'"),
     (("--min-effect=-1%",), "--min-effect must be a finite number >= 0, got '-1%'"),
     (("--max-unsupported", "1.5"), "--max-unsupported must be in [0, 1], got 1.5"),
     (("--min-ess", "-3"), "--min-ess must be >= 0, got -3.0")],
)
def test_bad_verdict_thresholds_exit_2_naming_the_flag(logged: Logged, flags: tuple[str, ...],
                                                       message: str) -> None:
    run = _evaluate(logged, "--candidate", "u=uniform", *flags)
    assert run.returncode == 2 and message in run.stderr and run.stdout == ""


def test_an_unreachable_server_exits_1_saying_so_and_evaluates_nothing(
        logged: Logged, tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    out = tmp_path / "result.json"

    run = _evaluate(logged, "--candidates-from-config", "--target", target, "--json", str(out))

    assert run.returncode == 1 and not out.exists()
    assert f"cannot read experiment `homepage` from {target}: UNAVAILABLE" in run.stderr


def test_candidates_from_config_needs_a_source(logged: Logged) -> None:
    run = _evaluate(logged, "--candidates-from-config")
    assert run.returncode == 2 and "from --config FILE or from the server at --target" in run.stderr


def test_promote_if_better_promotes_only_the_evaluated_configuration_when_better(
        logged: Logged, tmp_path: Path) -> None:
    promote = ("--promote-if-better", "--target", logged.target)

    run = _evaluate(logged, "--candidate", 'offline=linucb:{"alpha": 0.5}', *promote)
    assert run.returncode == 0, run.stderr
    said = run.stdout
    assert "nothing promoted: the winner `offline` is not a variant" in said
    assert "variant `lin` serves that configuration" in said
    assert _control(logged) == "control"

    # `lin` serves LinUCB with alpha 0.5; a LinUCB with the default alpha is another policy.
    run = _evaluate(logged, "--candidate", "lin=linucb", *promote)
    assert run.returncode == 0, run.stderr
    said = run.stdout
    assert 'variant `lin` serves linucb {"alpha": 0.5} but the evaluated candidate `lin` is linucb' in said
    assert _control(logged) == "control"

    out = tmp_path / "result.json"
    run = _evaluate(logged, "--candidates-from-config", "--json", str(out), *promote)
    assert run.returncode == 0, run.stderr
    winner = json.loads(out.read_text())["winner"]
    assert winner in {"lin", "greedy"}
    assert f"promoted `{winner}`" in run.stdout
    assert _control(logged) == winner


def _numbers(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a JSON document by its path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _numbers(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _numbers(item, f"{path}/{i}").items()}
    return {path: value}


def test_the_replay_gives_the_reference_replays_estimates_to_1e_12(logged: Logged, tmp_path: Path) -> None:
    """The optimized replay (decoded once, cached decisions, stateless candidates shared) against
    the plain loop of tests/evaluation/reference_replay.py, on the real server's log."""
    candidates = ["u=uniform", 'lin=linucb:{"alpha": 0.5}', "greedy=epsilon_greedy",
                  f'first=fixed:{{"action": "{ARTICLES[0]}"}}', "ts=lints"]
    out = tmp_path / "result.json"
    run = _evaluate(logged, *(a for c in candidates for a in ("--candidate", c)),
                    "--segment-by", "user.device", "--json", str(out))
    assert run.returncode == 0, run.stderr

    specs = [*(parse_candidate(c) for c in candidates), CandidateSpec("uniform baseline", "uniform")]
    engine = create_engine(logged.db)
    try:
        log = reference_replay(read_log(engine, LogQuery(experiment="homepage")), specs,
                               segment_by="user.device")
    finally:
        engine.dispose()
    expected = _numbers(to_json(summarize(log, experiment="homepage", candidates=specs,
                                          baselines={"uniform baseline"}, segment_by="user.device")))
    actual = _numbers(json.loads(out.read_text()))
    assert actual.keys() == expected.keys()
    for path, value in expected.items():
        if isinstance(value, float):
            assert actual[path] == pytest.approx(value, rel=1e-12, abs=1e-12), path
        else:
            assert actual[path] == value, path


@pytest.mark.skipif(browser.CHROMIUM is None, reason=browser.MISSING)
def test_report_renders_in_a_headless_browser_with_every_label_inside_its_chart(
        logged: Logged, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    run = _evaluate(logged, "--candidates-from-config", "--config", str(_toml(tmp_path / "exp.toml")),
                    "--candidate", "u=uniform", "--segment-by", "user.device", "--report", str(report))
    assert run.returncode == 0, run.stderr
    # Where the screenshot goes: ARBITER_SCREENSHOTS (to look at it), else the test's folder.
    folder = Path(os.environ.get("ARBITER_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "evaluation-report.png"

    console = browser.screenshot(report, shot, height=8000)

    assert console == []
    assert browser.png_size(shot) == (1000, 8000)
    assert browser.clipped_labels(report, tmp_path) == []
