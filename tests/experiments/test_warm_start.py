"""``warm_start``: a variant added to an experiment with a log learns that log before it serves.

A warm variant learns every logged decision, as a shadow does, until a set-up version lists it
(the configuration that adds it is merged at start); a cold one (the default) learns nothing
before that. Through real server processes on SQLite and PostgreSQL, a ``kill -9`` and a
restart: the warm shadow's model is byte-identical to a shadow's that was there all along, and
every model after recovery equals a from-scratch replay of the log.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from arbiter.client import DecisionClient
from tests.process import ServerProcess
from tests.replay import latest_snapshots, replayed_states

BEFORE = """
[experiments.shop]
control = "a"
variants = [
  { name = "a", policy = "linucb" },
  { name = "s", policy = "linucb", shadow = true },
]
"""
AFTER = """
[experiments.shop]
control = "a"
variants = [
  { name = "a", policy = "linucb" },
  { name = "s", policy = "linucb", shadow = true },
  { name = "warm", policy = "linucb", shadow = true, warm_start = true },
  { name = "cold", policy = "linucb", shadow = true },
]
"""
ACTIONS = ["x", "y", "z"]


def drive(target: str, count: int, seed: int) -> None:
    """``count`` Choose + Reward pairs."""
    rng = random.Random(seed)
    with DecisionClient(target, timeout=10) as client:
        for _ in range(count):
            choice = client.choose("shop", actions=ACTIONS, unit_id=f"u{rng.randrange(30)}",
                                   context={"user": {"tier": rng.choice("abc"), "x": rng.random()}})
            client.reward(choice.event_id, float(rng.random() < 0.4))


@pytest.mark.slow
def test_a_warm_variant_learns_the_whole_log_and_a_cold_one_only_what_follows(
        db_url: str, tmp_path: Path) -> None:
    before, after = tmp_path / "before.toml", tmp_path / "after.toml"
    before.write_text(BEFORE)
    after.write_text(AFTER)
    server = ServerProcess(before, db_url)
    drive(server.target, 60, seed=1)
    code, _, err = server.stop()
    assert code == 0, err

    server = ServerProcess(after, db_url)  # adds `warm` and `cold`
    drive(server.target, 40, seed=2)
    server.kill()  # kill -9: recovery must rebuild the same models

    replay = replayed_states(db_url, after)
    warm, shadow, cold = (replay[("shop", name)] for name in ("warm", "s", "cold"))
    assert shadow[2] == 100  # every learned decision
    assert warm[0] == shadow[0] and warm[2] == shadow[2]  # byte-identical models
    assert cold[2] == 40  # only what came after the set-up that lists it

    server = ServerProcess(after, db_url)  # recovery from snapshots + the log after them
    code, _, err = server.stop()  # the last snapshot holds the recovered models
    assert code == 0, err
    snapshots = latest_snapshots(db_url, after)
    for key, (state, _, updates) in replay.items():
        stored = snapshots[key]
        assert stored is not None, key
        assert stored[0] == state and stored[2] == updates, key
