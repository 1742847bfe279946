"""``arbiter simulate`` against a real server: the policy visibly learns."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from arbiter.cli.main import main
from arbiter.cli.simulate import HiddenPreferences
from arbiter.server.app import App, Settings
from arbiter.server.config import parse_config

EVENTS = 2000


def test_simulate_shows_the_last_tenth_clearly_above_uniform(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = App(Settings(listen="127.0.0.1:0", db=f"sqlite:///{tmp_path / 'a.db'}"),
              parse_config({"experiments": {"homepage": {"policy": "linucb",
                                                         "params": {"alpha": 0.5}}}}))
    app.start()
    try:
        assert main(["simulate", "--target", f"127.0.0.1:{app.port}",
                     "--experiment", "homepage", "--events", str(EVENTS)]) == 0
    finally:
        app.stop(grace=1)

    out = capsys.readouterr().out
    last = float(re.search(r"last 10% mean reward:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    uniform = float(re.search(r"uniform-random rate:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert uniform == pytest.approx(HiddenPreferences(0).uniform_rate(), abs=1e-3)
    # The last tenth's mean has standard error <= sqrt(0.25 / n); ask for 4 of them above uniform.
    margin = 4 * math.sqrt(0.25 / (EVENTS // 10))
    assert last > uniform + margin
