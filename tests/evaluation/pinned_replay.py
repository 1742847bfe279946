"""A fixed synthetic decision log and the replay's results on it, pinned in a JSON fixture.

The log (:func:`write_log`, 3,000 learned decisions written straight into a SQLite log) is
built to walk every path of the replay and of the linear policies' learning: two variants;
3 to 5 of 7 articles offered per round, in shuffled order, each with features of its own (a
topic and a number); a number feature in the context; a context feature that first appears
at round 1,000 (the vocabulary grows mid-log); logged probabilities below ``NEAR_ZERO`` (the
unsupported mass); and at round 2,000 a collapse of every click rate, which raises the linear
policies' Page-Hinkley drift alarm (so their models reset). The candidates add a uniform
policy, LinUCB as ``bench-evaluate`` runs it and with its defaults, with a vocabulary small
enough to hash, with forgetting, and the other linear policies.

:func:`fingerprint` reduces a :class:`ReplayLog` to what pins it: each column's sum, a
cosine-weighted sum (order-sensitive) and every 37th value, and every estimator's value per
candidate. ``fixtures/replay_reference.json`` holds it as computed by the replay of commit
a02eb13 (before the replay was made faster), written by::

    python -m tests.evaluation.pinned_replay tests/evaluation/fixtures/replay_reference.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from arbiter.evaluation import ESTIMATORS
from arbiter.evaluation.logdata import LogQuery, read_rounds
from arbiter.evaluation.replay import ReplayLog, parse_candidate, replay
from arbiter.log.engine import create_engine
from arbiter.log.migrate import upgrade

EXPERIMENT = "pinned"
ROWS = 3000
NEW_FEATURE_AT = 1000
DRIFT_AT = 2000
CANDIDATES = (
    "u=uniform",
    'lin=linucb:{"alpha": 0.5}',
    "lin_default=linucb",
    'lin_hashed=linucb:{"alpha": 0.5, "max_features": 8}',
    'lin_decay=linucb:{"alpha": 0.5, "decay": 0.995}',
    "ts=lints",
    "greedy=epsilon_greedy",
)
FIXTURE = Path(__file__).parent / "fixtures" / "replay_reference.json"
_EVERY = 37

_ARTICLES = [f"article-{i}" for i in range(7)]
_TOPICS = ["news", "sport", "culture"]
_COUNTRIES = ["de", "fr", "us", "jp"]
_DEVICES = ["mobile", "desktop", "tablet"]


def write_log(url: str, seed: int = 7) -> None:
    """Write the module docstring's log to the (new, empty) database at ``url``."""
    engine = create_engine(url)
    upgrade(engine)
    rng = np.random.default_rng(seed)
    appeal = rng.normal(size=(len(_COUNTRIES), len(_ARTICLES)))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    decisions, learnings = [], []
    for i in range(ROWS):
        country, device = int(rng.integers(len(_COUNTRIES))), int(rng.integers(len(_DEVICES)))
        categories = {"country": _COUNTRIES[country], "device": _DEVICES[device]}
        if i >= NEW_FEATURE_AT:
            categories["plan"] = "pro" if rng.random() < 0.3 else "free"
        context = [{"name": "user", "numbers": {"age": float(rng.integers(18, 70))},
                    "categories": categories}]
        offered = rng.permutation(len(_ARTICLES))[: int(rng.integers(3, 6))]
        actions = [{"id": _ARTICLES[a], "features": [
            {"name": "item", "numbers": {"length": float(a % 3) + 0.5},
             "categories": {"topic": _TOPICS[a % len(_TOPICS)]}}]} for a in offered]
        k = len(offered)
        favourite = int(np.argmax(appeal[country, offered]))
        dist = np.full(k, 0.3 / k)
        dist[favourite] += 0.7
        if k >= 4:  # one action (the last, or the first if the last is the favourite) almost never shown
            rare = k - 1 if favourite != k - 1 else 0
            dist[favourite] += dist[rare] - 0.0005
            dist[rare] = 0.0005
        chosen = int(rng.choice(k, p=dist))
        logit = appeal[country, offered[chosen]] + 0.3 * (device - 1)
        p_click = 1.0 / (1.0 + np.exp(-logit))
        if i >= DRIFT_AT:
            p_click *= 0.05
        reward = float(rng.random() < p_click)
        event = f"pin-{i:05d}"
        at = (start + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        decisions.append((event, EXPERIMENT, "a" if i % 3 else "b", "m@0", None, json.dumps(context),
                          json.dumps(actions), json.dumps(dist.tolist()), chosen,
                          actions[chosen]["id"], float(dist[chosen]), "{}", 0, at))
        learnings.append((i + 1, event, EXPERIMENT, reward, at))
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO decisions (event_id, experiment, variant, model_version, unit_hash, "
            "context, actions, distribution, chosen_index, chosen_action, probability, shadow, "
            "deferred, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", decisions)
        connection.exec_driver_sql(
            "INSERT INTO learnings (seq, event_id, experiment, value, learned_at) "
            "VALUES (?, ?, ?, ?, ?)", learnings)
    engine.dispose()


def replay_log(url: str) -> ReplayLog:
    """The replay of :data:`CANDIDATES` over the log at ``url``, as ``arbiter evaluate`` reads it."""
    engine = create_engine(url)
    try:
        return replay(read_rounds(engine, LogQuery(experiment=EXPERIMENT)),
                      [parse_candidate(c) for c in CANDIDATES])
    finally:
        engine.dispose()


def _column(values: np.ndarray) -> dict[str, Any]:
    weights = np.cos(np.arange(values.size))
    return {"sum": float(values.sum()), "cos_sum": float(values @ weights),
            "every": [float(v) for v in values[::_EVERY]]}


def fingerprint(log: ReplayLog) -> dict[str, Any]:
    """Column summaries and every estimator's value per candidate (see the module docstring)."""
    columns = {"reward": _column(log.reward), "pscore": _column(log.pscore),
               "q_logged": _column(log.q_logged)}
    candidates = {}
    for c, name in enumerate(log.names):
        inputs = log.estimator_inputs(c)
        candidates[name] = {
            "prob": _column(log.prob[c]), "q_policy": _column(log.q_policy[c]),
            "unsupported": _column(log.unsupported[c]),
            "estimates": {key: cls().estimate_policy_value(**inputs) for key, cls in ESTIMATORS.items()},
        }
    return {"n": log.n, "variants": list(log.variants), "columns": columns, "candidates": candidates}


def main(out: str) -> int:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/log.db"
        write_log(url)
        result = fingerprint(replay_log(url))
    Path(out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
