"""A cache of logged decisions, bounded in bytes: the join's memory, never its truth.

Reward and Activate look a decision up here first and in the log on a miss; a retried Choose
finds its logged answer here. Anything may be dropped at any time (least recently used first):
the log has it.

An entry holds its decision packed (MessagePack, ``msgspec``): a decision of 10 actions x 5
features and a context of 15 takes ~1.8 KB with its entry against ~12.5 KB as Python objects,
so the same ``max_bytes`` keeps about seven times as many decisions waiting for their rewards
(64 MiB: ~38,000). Packing costs ~2 µs when a decision is cached, unpacking ~5 µs when it is
found; an entry's size is its packed length plus :data:`ENTRY_OVERHEAD`, so no request can pin
more than its share.

A decision read back from the log on a miss goes in *cold* (first in line to be dropped): a
backlog of rewards for old decisions, read one by one, cannot flush the recent decisions whose
rewards are still to come. Found again, it is used like any other.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import msgspec

from arbiter.log.store import DecisionRecord

# bytes per entry besides the packed record: the entry (~70), its event id key (~85), the
# ordered dict's slot and links (~100), the bytes object's header (~33)
ENTRY_OVERHEAD = 300

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder(DecisionRecord).decode


class Cached(msgspec.Struct, gc=False):
    """A decision found in (or just put into) the cache, and whether it was activated."""

    record: DecisionRecord
    activated: bool


class _Entry(msgspec.Struct, gc=False):
    """A cached decision, packed. Untracked by the garbage collector (a ``msgspec.Struct``
    with ``gc=False``: nothing it holds refers back to it), so the cache's many entries are
    not walked by every full collection."""

    experiment: str
    packed: bytes  # the DecisionRecord
    activated: bool

    @property
    def size(self) -> int:
        return len(self.packed) + ENTRY_OVERHEAD


class DecisionCache:
    """Least-recently-used, at most ``max_bytes``; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, event_id: str) -> Cached | None:
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is None:
                return None
            self._entries.move_to_end(event_id)
            packed, activated = entry.packed, entry.activated
        return Cached(_unpack(packed), activated)

    def put(self, record: DecisionRecord, activated: bool = False, *,
            cold: bool = False) -> Cached:
        """Cache ``record`` as the most recently used entry, or with ``cold`` as the least
        (a decision read back from the log); then drop the least recently used entries while
        over ``max_bytes``. An entry larger than ``max_bytes`` is not kept."""
        entry = _Entry(record.experiment, _pack(record), activated)
        with self._lock:
            if self._insert(record.event_id, entry) and cold:
                self._entries.move_to_end(record.event_id, last=False)
        return Cached(record, activated)

    def put_all(self, records: Iterable[DecisionRecord]) -> None:
        """:meth:`put` of each record in turn (none activated, none cold): packed before the
        lock is taken, all inserted under it once — a batch's decisions after their commit."""
        entries = [(record.event_id, _Entry(record.experiment, _pack(record), False))
                   for record in records]
        with self._lock:
            for event_id, entry in entries:
                self._insert(event_id, entry)

    def _insert(self, event_id: str, entry: _Entry) -> bool:
        """(Under the lock.) ``entry`` as the most recently used, in place of any other of
        ``event_id``, then the least recently used dropped while over ``max_bytes``; False if
        it is larger than ``max_bytes`` (not kept)."""
        size = entry.size
        old = self._entries.pop(event_id, None)
        if old is not None:
            self.bytes -= old.size
        if size > self.max_bytes:
            return False
        while self.bytes + size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
        self._entries[event_id] = entry
        self.bytes += size
        return True

    def drop_experiment(self, experiment: str) -> int:
        """Forget every decision of ``experiment`` (an erasure may have deleted some of them:
        a Reward must find them gone); returns how many."""
        with self._lock:
            gone = [key for key, entry in self._entries.items() if entry.experiment == experiment]
            for key in gone:
                self.bytes -= self._entries.pop(key).size
        return len(gone)

    def mark_activated(self, event_id: str) -> None:
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is not None:
                entry.activated = True
