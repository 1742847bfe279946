"""What the log's schema costs per decision insert, in raw SQLite, without Arbiter's code.

A ``decisions``-like table (1.4 KB rows, the event-id unique index and the experiment index)
in WAL mode with ``synchronous=FULL``, ``foreign_keys`` and ``secure_delete`` as the server
opens it; ``--per-transaction`` decisions per transaction (3: a unary Choose's group commit
under ``bench.load``; 100: a ChooseBatch). Four schemas: as 588b3f9 had it, with the trigger
that opens each decision's reward window (migration 0006: a ``windows`` row and its two
indexes), with ``ix_decisions_unit_hash`` (random keyed pseudonyms), and with both. Prints the
process CPU (user + system) per decision, the median of ``--repeats`` fresh databases each:

    python -m bench.schema_cost --per-transaction 3
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sqlite3
import statistics
import tempfile
from pathlib import Path

PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "secure_delete=ON")
TABLES = (
    "CREATE TABLE decisions (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, experiment TEXT, "
    "unit_hash TEXT, body TEXT, deferred INT, created_at TEXT)",
    "CREATE INDEX ix_decisions_experiment_created ON decisions (experiment, created_at)",
    "CREATE TABLE windows (event_id TEXT PRIMARY KEY REFERENCES decisions (event_id), "
    "experiment TEXT NOT NULL, opened_at TEXT NOT NULL)",
    "CREATE INDEX ix_windows_experiment_opened ON windows (experiment, opened_at)",
)
UNIT_INDEX = "CREATE INDEX ix_decisions_unit_hash ON decisions (unit_hash)"
WINDOW_TRIGGER = ("CREATE TRIGGER tr_decisions_open_window AFTER INSERT ON decisions "
                  "WHEN NOT new.deferred BEGIN INSERT INTO windows "
                  "VALUES (new.event_id, new.experiment, new.created_at); END")
SCHEMAS = {"588b3f9's": (), "+ window trigger": (WINDOW_TRIGGER,),
           "+ unit index": (UNIT_INDEX,), "+ both": (WINDOW_TRIGGER, UNIT_INDEX)}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cost(extra: tuple[str, ...], decisions: int, per_transaction: int) -> float:
    """Process CPU µs per decision inserting ``decisions`` rows into a fresh database."""
    with tempfile.TemporaryDirectory() as folder:
        connection = sqlite3.connect(Path(folder) / "log.db", isolation_level=None)
        for statement in (*(f"PRAGMA {p}" for p in PRAGMAS), *TABLES, *extra):
            connection.execute(statement)
        rows = [(f"0190{i:012d}", "bench", hashlib.sha256(str(i).encode()).hexdigest(),
                 "x" * 1400, 0, f"2026-11-27T{i:08d}") for i in range(decisions)]
        start = _cpu()
        for first in range(0, decisions, per_transaction):
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany("INSERT INTO decisions (event_id, experiment, unit_hash, body, "
                                   "deferred, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                                   rows[first:first + per_transaction])
            connection.execute("COMMIT")
        spent = _cpu() - start
        connection.close()
    return spent / decisions * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-transaction", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {name: [] for name in SCHEMAS}
    for _ in range(args.repeats):  # interleaved, so a slow minute of the machine hits all four
        for name, extra in SCHEMAS.items():
            runs[name].append(cost(extra, args.decisions, args.per_transaction))
    for name, costs in runs.items():
        print(f"{name:18} {statistics.median(costs):6.1f} µs of CPU per decision "
              f"({', '.join(f'{c:.1f}' for c in costs)})")


if __name__ == "__main__":
    main()
