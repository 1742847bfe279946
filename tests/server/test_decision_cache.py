"""The decision cache: the same decisions back, bounded in bytes, and a backlog of old decisions
read from the log cannot flush the recent ones still waiting for their rewards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from arbiter.log.store import DecisionRecord
from arbiter.policies import Decision, Namespace
from arbiter.server.cache import DecisionCache


def record(n: int, experiment: str = "exp", features: int = 5) -> DecisionRecord:
    actions = tuple(f"a{k}" for k in range(3))
    return DecisionRecord(
        event_id=f"event-{n}", experiment=experiment, variant="linucb", model_version="linucb@7",
        unit_hash=f"{n:064x}",
        decision=Decision(
            context=(Namespace("user", {f"x{i}": n + i / 7 for i in range(features)},
                               {"country": "fr"}),),
            action_ids=actions,
            action_features=tuple((Namespace("item", {"price": k + 0.5}),) for k in range(3))),
        distribution=(0.2, 0.5, 0.3), chosen=1, shadow={"lints": [0.1, 0.8, 0.1]},
        deferred=n % 2 == 0, created_at=datetime(2026, 11, 27, 13, n % 60, tzinfo=UTC))


def test_a_cached_decision_comes_back_equal() -> None:
    cache = DecisionCache(1 << 20)
    original = record(3)
    cache.put(original, activated=True)
    found = cache.get("event-3")
    assert found is not None
    assert found.record == original
    assert found.record.created_at.tzinfo is not None
    assert found.activated
    assert cache.get("event-4") is None


def test_the_cache_stays_within_its_bytes_and_drops_the_least_recently_used() -> None:
    probe = DecisionCache(1 << 20)
    probe.put(record(0))
    one = probe.bytes
    cache = DecisionCache(10 * one + one // 2)  # room for ten
    for n in range(10):
        cache.put(record(n))
    assert len(cache) == 10
    cache.get("event-0")  # used again: now the most recent
    cache.put(record(10))
    assert cache.bytes <= cache.max_bytes
    assert cache.get("event-1") is None  # the least recently used went
    assert cache.get("event-0") is not None
    for n in range(11, 200):
        cache.put(record(n))
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 10


def test_a_decision_larger_than_the_whole_cache_is_not_kept() -> None:
    cache = DecisionCache(4096)
    cache.put(record(1))
    answered = cache.put(record(2, features=2000))
    assert answered.record.event_id == "event-2"  # the caller still gets it
    assert cache.get("event-2") is None
    assert cache.get("event-1") is not None
    assert cache.bytes <= cache.max_bytes


@pytest.mark.parametrize("backlog", [5, 50])
def test_decisions_read_back_from_the_log_do_not_flush_recent_ones(backlog: int) -> None:
    probe = DecisionCache(1 << 20)
    probe.put(record(0))
    cache = DecisionCache(10 * probe.bytes + probe.bytes // 2)  # room for ten
    recent = range(1000, 1009)  # nine recent decisions, waiting for their rewards
    for n in recent:
        cache.put(record(n))
    for n in range(backlog):  # rewards for old decisions: each read from the log
        cache.put(record(n), cold=True)
    assert all(cache.get(f"event-{n}") is not None for n in recent)
    last = cache.get(f"event-{backlog - 1}")  # kept for a repeated reward right after
    assert last is not None and last.record == record(backlog - 1)


def test_activation_and_dropping_an_experiment() -> None:
    cache = DecisionCache(1 << 20)
    for n in range(6):
        cache.put(record(n, experiment="a" if n < 4 else "b"))
    cache.mark_activated("event-5")
    found = cache.get("event-5")
    assert found is not None and found.activated
    assert cache.drop_experiment("a") == 4
    assert len(cache) == 2 and cache.get("event-0") is None
    assert cache.get("event-4") is not None
    probe = DecisionCache(1 << 20)
    probe.put(record(4, experiment="b"))
    probe.put(record(5, experiment="b"))
    assert cache.bytes == probe.bytes


def test_a_batch_put_at_once_leaves_the_cache_as_putting_each_in_turn() -> None:
    """``put_all`` (a batch's decisions after their commit) keeps, orders, replaces and drops
    exactly what ``put`` of each record in turn would: over a bound that evicts, a record put
    again, and one too large to keep."""
    probe = DecisionCache(1 << 20)
    probe.put(record(0))
    one = probe.bytes
    huge = record(99, features=5000)
    batch = [record(n) for n in range(4, 12)] + [record(5), huge, record(12)]

    def filled() -> DecisionCache:
        cache = DecisionCache(6 * one + one // 2)
        for n in range(4):
            cache.put(record(n))
        cache.get("event-1")
        return cache

    each, together = filled(), filled()
    for made in batch:
        each.put(made)
    together.put_all(batch)

    assert list(together._entries) == list(each._entries)
    assert together.bytes == each.bytes <= together.max_bytes
    assert together.get("event-99") is None and together.get("event-5") is not None
    assert {n: together.get(f"event-{n}") for n in range(13)} == \
        {n: each.get(f"event-{n}") for n in range(13)}
