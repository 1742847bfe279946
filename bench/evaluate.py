"""Speed and memory of ``arbiter evaluate`` on a large synthetic log (default 1M decisions).

Synthesizes a decision log straight into SQLite with bulk inserts (the users of
``server.simulate``: 4 countries by 3 devices, 5 articles, hidden click model; the logging policy
is ε-greedy on the favourite article with ε = 0.5, so every action keeps probability ≥ 0.1),
then times ``arbiter evaluate`` as a subprocess for each candidate set, side by side with a
read-only pass over the same log (``read_rounds``, what the replay reads: the streaming floor),
and prints wall and CPU seconds, rounds per second and the peak RSS of each run::

    python -m bench.evaluate                          # 1M decisions, uniform then uniform+linucb
    python -m bench.evaluate --rows 100000 --db /tmp/log.db --keep
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from arbiter.cli.simulate import ARTICLES, COUNTRIES, DEVICES, HiddenPreferences
from arbiter.log.engine import create_engine
from arbiter.log.migrate import upgrade

EXPERIMENT = "homepage"
EPSILON = 0.5
CANDIDATE_SETS = (
    ("uniform", ["u=uniform"]),
    ("uniform + linucb", ["u=uniform", 'lin=linucb:{"alpha": 0.5}']),
)
_BATCH = 50_000


def synthesize(url: str, rows: int, seed: int = 0) -> None:
    """Write ``rows`` learned decisions (decisions + learnings + rewards) to the database."""
    engine = create_engine(url)
    upgrade(engine)
    model = HiddenPreferences(seed)
    rng = np.random.default_rng(seed + 1)
    k = len(ARTICLES)
    actions = json.dumps([{"id": a, "features": []} for a in ARTICLES])
    contexts = [[json.dumps([{"name": "user", "numbers": {}, "categories": {"country": c, "device": d}}])
                 for d in DEVICES] for c in COUNTRIES]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        for first in range(0, rows, _BATCH):
            n = min(_BATCH, rows - first)
            country = rng.integers(len(COUNTRIES), size=n)
            device = rng.integers(len(DEVICES), size=n)
            favourite = model.fav_country[country]
            dist = np.full((n, k), EPSILON / k)
            dist[np.arange(n), favourite] += 1.0 - EPSILON
            chosen = (rng.random((n, 1)) > dist.cumsum(axis=1)).sum(axis=1)
            chosen = np.minimum(chosen, k - 1)
            p_click = np.array([model.click_probability(c, d, a)
                                for c, d, a in zip(country, device, chosen, strict=True)])
            reward = (rng.random(n) < p_click).astype(float)
            decision_rows, learning_rows, reward_rows = [], [], []
            for j in range(n):
                i = first + j
                event = f"ev-{i:08d}"
                at = (start + timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
                c = int(chosen[j])
                decision_rows.append((event, EXPERIMENT, "default", "default@0", None,
                                      contexts[country[j]][device[j]], actions,
                                      json.dumps(dist[j].tolist()), c, ARTICLES[c], float(dist[j, c]),
                                      "{}", 0, at))
                learning_rows.append((i + 1, event, EXPERIMENT, float(reward[j]), at))
                reward_rows.append((event, None, float(reward[j]), 1, at))
            connection.exec_driver_sql(
                "INSERT INTO decisions (event_id, experiment, variant, model_version, unit_hash, "
                "context, actions, distribution, chosen_index, chosen_action, probability, shadow, "
                "deferred, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", decision_rows)
            connection.exec_driver_sql(
                "INSERT INTO learnings (seq, event_id, experiment, value, learned_at) "
                "VALUES (?, ?, ?, ?, ?)", learning_rows)
            connection.exec_driver_sql(
                "INSERT INTO rewards (event_id, reward_id, value, learned, received_at) "
                "VALUES (?, ?, ?, ?, ?)", reward_rows)
    engine.dispose()


def timed(command: list[str]) -> tuple[float, float, float, str]:
    """Run ``command``; ``(wall seconds, CPU seconds, peak RSS in MiB, stdout)``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # wait4, unlike wait(), reports the child's rusage
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", help="SQLite file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the database (and reuse it if present)")
    args = parser.parse_args()
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="arbiter-bench-")) / "log.db"
    url = f"sqlite:///{path}"
    if not (args.keep and path.exists()):
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        synthesize(url, args.rows)
        print(f"synthesized {args.rows:,} decisions in {time.perf_counter() - started:.1f} s -> {path}")
    print(f"{'run':<22}{'wall s':>10}{'CPU s':>10}{'rounds/s':>12}{'peak RSS':>12}")
    read_only = [sys.executable, "-c",
                 "import sys; from arbiter.evaluation.logdata import LogQuery, read_rounds; "
                 "from arbiter.log.engine import create_engine; "
                 "query = LogQuery(experiment=sys.argv[2]); "
                 "print(sum(1 for _ in read_rounds(create_engine(sys.argv[1]), query)))",
                 url, EXPERIMENT]
    runs = [("read only", read_only)]
    for label, candidates in CANDIDATE_SETS:
        command = [sys.executable, "-m", "arbiter.cli", "evaluate", "--db", url, "--experiment", EXPERIMENT]
        for candidate in candidates:
            command += ["--candidate", candidate]
        runs.append((label, command))
    for label, command in runs:
        seconds, cpu, rss, out = timed(command)
        print(f"{label:<22}{seconds:>10.1f}{cpu:>10.1f}{args.rows / seconds:>12,.0f}{rss:>9.0f} MiB",
              flush=True)
        if label != "read only":
            print("    " + out.strip().splitlines()[0])  # the verdict opens the output
    if not args.keep:
        path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
