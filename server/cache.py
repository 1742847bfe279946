"""A cache of logged decisions, bounded in bytes: the join's memory, never its truth.

Reward and Activate look a decision up here first and in the log on a miss; a retried Choose
finds its logged answer here. Anything may be dropped at any time (least recently used first):
the log has it. The size of an entry is estimated from what it holds — ids, feature names and
values, the distribution — which is what grows with a request, so no request can pin more than
its share of ``max_bytes``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from itertools import chain

from arbiter.log.store import DecisionRecord

ENTRY_OVERHEAD = 600  # bytes: the record, its outcome and the dict slot
FEATURE_BYTES = 120  # one number or category: key, value, dict slot


@dataclass(slots=True)
class Cached:
    record: DecisionRecord
    activated: bool
    size: int


def estimate_bytes(record: DecisionRecord) -> int:
    """Rough bytes held by a cached decision (Python objects, not the JSON): per namespace 64
    and its name, per feature :data:`FEATURE_BYTES`, per action 96 and its id, 40 per
    probability logged. Counted in bulk (one list of every namespace): this runs once per
    decision."""
    decision = record.decision
    namespaces = [*decision.context, *chain.from_iterable(decision.action_features)]
    features = sum([len(ns.numbers) + len(ns.categories) for ns in namespaces])
    names = sum(map(len, [ns.name for ns in namespaces])) + sum(map(len, decision.action_ids))
    return (ENTRY_OVERHEAD + 64 * len(namespaces) + FEATURE_BYTES * features + names
            + 96 * len(decision.action_ids) + 40 * len(record.distribution) * (1 + len(record.shadow)))


class DecisionCache:
    """Least-recently-used, at most ``max_bytes`` (estimated); thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, event_id: str) -> Cached | None:
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is not None:
                self._entries.move_to_end(event_id)
            return entry

    def put(self, record: DecisionRecord, activated: bool = False) -> Cached:
        entry = Cached(record, activated, estimate_bytes(record))
        with self._lock:
            old = self._entries.pop(record.event_id, None)
            if old is not None:
                self.bytes -= old.size
            self._entries[record.event_id] = entry
            self.bytes += entry.size
            while self.bytes > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.size
        return entry

    def drop_experiment(self, experiment: str) -> int:
        """Forget every decision of ``experiment`` (an erasure may have deleted some of them:
        a Reward must find them gone); returns how many."""
        with self._lock:
            gone = [key for key, entry in self._entries.items()
                    if entry.record.experiment == experiment]
            for key in gone:
                self.bytes -= self._entries.pop(key).size
        return len(gone)

    def mark_activated(self, event_id: str) -> None:
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is not None:
                entry.activated = True
