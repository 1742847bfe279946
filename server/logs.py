"""How ``arbiter serve`` logs: text for people (the default) or one JSON object per line.

``--log-format json`` writes each record as one line of JSON, for a log shipper::

    {"time": "2026-11-27T06:02:46.123Z", "level": "INFO", "logger": "arbiter.server.fold",
     "message": "restored: 0 learned events replayed, log position 0", "pid": 4242}

``time`` is UTC (ISO 8601, milliseconds); ``event_id`` is there when the record concerns one
decision (``log.warning(..., extra={"event_id": ...})``); ``exception`` holds a traceback,
newlines escaped like every other string, so a record never spans two lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

LOG_FORMATS: Final = ("text", "json")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time, level, logger, message, pid, and where present
    event_id, exception and stack."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        event_id = getattr(record, "event_id", None)
        if event_id:
            entry["event_id"] = str(event_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: str = "text", *, show_pid: bool = False) -> None:
    """Log to stderr at ``level`` (a name such as ``INFO``) in ``log_format`` (text or json).

    Text lines are ``time [pid] LEVEL logger: message`` (the pid only with ``show_pid``, when
    several processes share stderr). JSON also takes Python's warnings, so nothing else
    reaches stderr as plain text while the server runs.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"`log_format` must be one of {', '.join(LOG_FORMATS)}, "
                         f"got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        logging.captureWarnings(True)
    else:
        pid = " [%(process)d]" if show_pid else ""
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s{pid} %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
