"""The command line against a real server: ``experiments``, ``traffic``, ``report --json``,
``export`` to stdout and of an unknown experiment, its progress bar, ``--version`` and help."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from arbiter.client import DecisionClient
from tests.cli.helpers import arbiter, one_line
from tests.process import ROOT, ServerProcess

CONFIG = """
[experiments.homepage]
control = "champion"
reward_wait_seconds = 600

[[experiments.homepage.variants]]
name = "champion"
policy = "linucb"
params = { alpha = 0.5 }
traffic = 0.8

[[experiments.homepage.variants]]
name = "holdout"
policy = "uniform"
traffic = 0.2

[[experiments.homepage.variants]]
name = "candidate"
policy = "lints"
shadow = true

[experiments.checkout]
control = "a"

[[experiments.checkout.variants]]
name = "a"
policy = "epsilon_greedy"
traffic = 0.5

[[experiments.checkout.variants]]
name = "b"
policy = "thompson"
params = { samples = 50 }
traffic = 0.5
"""
REWARDED = 40
UNREWARDED = 10


@dataclass
class Running:
    target: str
    db: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One server for the module, with REWARDED + UNREWARDED decisions of `homepage` logged."""
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "experiments.toml"
    config.write_text(CONFIG)
    db = f"sqlite:///{folder / 'arbiter.db'}"
    server = ServerProcess(config, db)
    try:
        with DecisionClient(server.target, timeout=10) as client:
            for i in range(REWARDED + UNREWARDED):
                choice = client.choose("homepage", unit_id=f"u{i}", actions=["a", "b", "c"],
                                       context={"user": {"tier": "gold" if i % 2 else "free"}})
                if i < REWARDED:
                    client.reward(choice.event_id, 1.0)
        yield Running(server.target, db)
    finally:
        code, _, err = server.stop()
        assert code == 0, err


def test_experiments_lists_every_experiment(running: Running) -> None:
    table = arbiter("experiments", "--target", running.target)
    listed = arbiter("experiments", "--target", running.target, "--json")

    assert table.returncode == 0, table.stderr
    for word in ("homepage", "checkout", "champion", "linucb, uniform, lints", "holdout 20.0%"):
        assert word in table.stdout
    assert listed.returncode == 0, listed.stderr
    experiments = {e["name"]: e for e in json.loads(listed.stdout)["experiments"]}
    assert set(experiments) == {"homepage", "checkout"}
    assert experiments["checkout"]["champion"] == "a"


def test_experiments_name_shows_variants_roles_policies_params_and_traffic(running: Running) -> None:
    shown = arbiter("experiments", "homepage", "--target", running.target, "--json")
    table = arbiter("experiments", "homepage", "--target", running.target)

    assert shown.returncode == 0, shown.stderr
    experiment = json.loads(shown.stdout)
    assert experiment["name"] == "homepage" and experiment["champion"] == "champion"
    assert experiment["reward_wait_seconds"] == 600
    variants = {v["name"]: v for v in experiment["variants"]}
    assert variants["champion"] == {"name": "champion", "role": "champion", "policy": "linucb",
                                    "params": {"alpha": 0.5}, "traffic": pytest.approx(0.8),
                                    "shadow": False, "mode": "online"}
    assert (variants["holdout"]["role"], variants["holdout"]["traffic"]) == ("challenger",
                                                                             pytest.approx(0.2))
    assert (variants["candidate"]["role"], variants["candidate"]["policy"]) == ("shadow", "lints")
    assert table.returncode == 0, table.stderr
    for word in ("champion", "challenger", "shadow", "linucb", '{"alpha": 0.5}', "80.0%"):
        assert word in table.stdout


def test_experiments_of_an_unknown_name_is_one_line_and_exit_1(running: Running) -> None:
    result = arbiter("experiments", "nope", "--target", running.target)
    assert result.returncode == 1
    assert "NOT_FOUND" in one_line(result) and "nope" in one_line(result)


def test_traffic_sets_the_weights_of_the_serving_variants(running: Running) -> None:
    result = arbiter("traffic", "--target", running.target, "--experiment", "checkout", "a=3", "b=1")
    shown = arbiter("experiments", "checkout", "--target", running.target, "--json")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "traffic of checkout: a 75.0%, b 25.0%"
    traffic = {v["name"]: v["traffic"] for v in json.loads(shown.stdout)["variants"]}
    assert traffic == {"a": pytest.approx(0.75), "b": pytest.approx(0.25)}


@pytest.mark.parametrize(("weights", "code", "expected"), [
    (["a=lots"], 2, "the weight of 'a' must be a number, got 'lots'"),
    (["a=-1"], 2, "must be a finite number >= 0"),
    (["a"], 2, "expected NAME=WEIGHT"),
    (["a=1", "nosuch=1"], 1, "INVALID_ARGUMENT"),
])
def test_traffic_refuses_bad_weights_in_one_line(running: Running, weights: list[str], code: int,
                                                 expected: str) -> None:
    result = arbiter("traffic", "--target", running.target, "--experiment", "checkout", *weights)
    assert result.returncode == code
    assert expected in one_line(result)


def test_report_json_has_every_variant_with_numbers(running: Running) -> None:
    result = arbiter("report", "--target", running.target, "--experiment", "homepage", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["experiment"] == "homepage" and report["champion"] == "champion"
    variants = {v["variant"]: v for v in report["variants"]}
    assert set(variants) == {"champion", "holdout", "candidate"}
    serving = [variants["champion"], variants["holdout"]]
    assert sum(v["decisions"] for v in serving) == REWARDED + UNREWARDED
    assert all(isinstance(v["decisions"], int) for v in serving)
    assert set(variants["champion"]["mean_reward"]) == {"estimate", "low", "high"}
    assert variants["candidate"]["role"] == "shadow"
    assert isinstance(report["sample_ratio"]["mismatch"], bool)


def test_export_to_stdout(running: Running, tmp_path: Path) -> None:
    dsjson = arbiter("export", "--db", running.db, "--experiment", "homepage", "--format", "dsjson",
                     "--out", "-", cwd=tmp_path)
    parquet = subprocess.run([sys.executable, "-m", "arbiter.cli", "export", "--db", running.db,
                              "--experiment", "homepage", "--format", "parquet", "--out", "-"],
                             cwd=tmp_path, capture_output=True, timeout=90)

    assert dsjson.returncode == 0, dsjson.stderr
    lines = dsjson.stdout.splitlines()
    assert len(lines) == REWARDED  # the learned decisions
    assert all(json.loads(line)["_label_cost"] == -1.0 for line in lines)
    assert f"wrote {REWARDED} decisions of `homepage` to stdout (dsjson)" in dsjson.stderr
    assert parquet.returncode == 0, parquet.stderr
    assert pq.read_table(io.BytesIO(parquet.stdout)).num_rows == REWARDED + UNREWARDED
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_export_of_an_unknown_experiment_is_exit_1_and_writes_nothing(running: Running,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "x.dsjson"
    result = arbiter("export", "--db", running.db, "--experiment", "hompage", "--format", "dsjson",
                     "--out", str(out))
    assert result.returncode == 1
    line = one_line(result)
    assert "no experiment `hompage` in the decision log" in line and "`homepage`" in line
    assert not out.exists()


def test_export_shows_a_progress_bar_on_a_terminal(running: Running, tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arbiter.cli", "export", "--db", running.db, "--experiment",
             "homepage", "--format", "parquet", "--out", str(tmp_path / "x.parquet")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=secondary,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
        os.close(secondary)
        seen = b""
        while True:
            ready, _, _ = select.select([primary], [], [], 90)
            if not ready:
                proc.kill()
                pytest.fail(f"no output within 90 s: {seen!r}")
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed: the process exited
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(primary)
    text = seen.decode(errors="replace")
    assert "exporting" in text and "100%" in text


def test_version_comes_from_the_installed_distribution() -> None:
    result = arbiter("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"arbiter {metadata.version('arbiter')}"


def test_help_has_no_markup_and_shows_defaults() -> None:
    top = arbiter("--help")
    serve = arbiter("serve", "--help")
    simulate = arbiter("simulate", "--help")

    assert top.returncode == serve.returncode == simulate.returncode == 0
    top_text, serve_text, simulate_text = (" ".join(r.stdout.split()) for r in (top, serve, simulate))
    assert "``" not in top_text and "``" not in serve_text
    for command in ("experiments", "traffic", "policies", "report", "export"):
        assert command in top_text
    assert "(default: 127.0.0.1:50051)" in serve_text
    assert "(default: sqlite:///arbiter.db)" in serve_text
    assert "examples/experiments.toml" in serve_text
    assert "(default: 5000)" in simulate_text and "(default: homepage)" in simulate_text
