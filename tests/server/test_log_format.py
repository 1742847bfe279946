"""``arbiter serve --log-format json``: every stderr line is one JSON object; text by default."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from arbiter.client import DecisionClient
from arbiter.server.logs import JsonFormatter
from tests.process import ServerProcess

# thompson refuses rewards outside [0, 1]: the fold skips such a learned event with a warning
# about that one decision, the line that carries an event id.
CONFIG = """\
[experiments.homepage]
policy = "thompson"
"""


def serve_and_skip_one_reward(tmp_path: Path, *log_args: str) -> tuple[str, str]:
    """Serve at INFO, Choose, Reward 5.0 (a skipped learning), stop: (event id, stderr)."""
    config = tmp_path / "experiments.toml"
    config.write_text(CONFIG)
    server = ServerProcess(config, f"sqlite:///{tmp_path / 'a.db'}", "--log-level", "info",
                           *log_args)
    try:
        with DecisionClient(server.target, timeout=10) as client:
            choice = client.choose("homepage", actions=["a", "b"])
            assert client.reward(choice.event_id, 5.0).learned
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    return choice.event_id, err


def test_json_logs_are_one_object_per_line_with_time_level_logger_message_and_event_id(
        tmp_path: Path) -> None:
    event_id, err = serve_and_skip_one_reward(tmp_path, "--log-format", "json")

    lines = err.splitlines()
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line parses
    assert records, "nothing was logged at INFO"
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert datetime.fromisoformat(record["time"]).utcoffset() is not None  # UTC, explicit
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    messages = {record["message"] for record in records}
    assert any(message.startswith("restored: ") for message in messages)  # a start-up line
    [skipped] = [r for r in records if "skipped learned event" in r["message"]]
    assert skipped["level"] == "WARNING" and skipped["event_id"] == event_id
    assert skipped["logger"] == "arbiter.server.experiments"
    assert all("event_id" not in r for r in records if r is not skipped)


def test_text_stays_the_default(tmp_path: Path) -> None:
    _, err = serve_and_skip_one_reward(tmp_path)

    assert not err.lstrip().startswith("{")
    assert " INFO arbiter.server.fold: restored: " in err
    assert " WARNING arbiter.server.experiments: variant " in err


def test_a_traceback_stays_on_its_one_line() -> None:
    try:
        raise RuntimeError("boom\non two lines")
    except RuntimeError:
        record = logging.LogRecord("arbiter.server.guard", logging.ERROR, __file__, 1,
                                   "unexpected error in %s", ("Choose",), sys.exc_info())

    line = JsonFormatter().format(record)

    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "unexpected error in Choose"
    assert "RuntimeError: boom\non two lines" in parsed["exception"]
