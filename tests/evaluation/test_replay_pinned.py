"""The replay's results on a fixed log equal, to 1e-12, those of the replay before it was made
faster (commit a02eb13; see tests/evaluation/pinned_replay.py for the log and the fixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.evaluation.pinned_replay import FIXTURE, fingerprint, replay_log, write_log


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}/{i}").items()}
    return {path: value}


def test_replay_of_the_pinned_log_gives_the_estimates_of_the_replay_before_the_speed_up(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    write_log(url)
    expected = _leaves(json.loads(FIXTURE.read_text(encoding="utf-8")))
    actual = _leaves(fingerprint(replay_log(url)))
    assert actual.keys() == expected.keys()
    for path, value in expected.items():
        if isinstance(value, float):
            assert actual[path] == pytest.approx(value, rel=1e-12, abs=1e-12), path
        else:
            assert actual[path] == value, path
