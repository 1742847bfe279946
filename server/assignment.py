"""Sticky traffic split: a unit hashes to one of ``BUCKETS`` buckets; buckets map to variants.

``bucket(salt, unit) = int(sha256(salt + ":" + unit)[:8]) mod BUCKETS`` — the same in every
process. The bucket is never stored; the unit is logged only as its keyed :func:`pseudonym`.
:func:`allocate` turns traffic weights into a bucket → variant table; given the previous table
it moves the fewest buckets that reach the new weights (a bucket stays where it is while its
variant still needs it), so changing weights moves as few units as possible.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence

BUCKETS = 10_000


def bucket(salt: str, unit: str) -> int:
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def pseudonym(key: bytes, salt: str, unit: str) -> str:
    """The unit id as stored in the log: HMAC-SHA256 under the server's secret ``key`` (64 hex
    characters), per experiment (``salt``). Without the key nobody can compute it for a guessed
    id, so a dictionary of ids does not reverse it; with the key it is the same in every process
    and every run, so a unit's decisions stay linked (and can be erased) within an experiment."""
    return hmac.new(key, f"unit:{salt}:{unit}".encode(), hashlib.sha256).hexdigest()


def legacy_pseudonym(salt: str, unit: str) -> str:
    """The form releases before keyed pseudonyms stored (32 hex characters, no key): a plain
    hash that a dictionary of ids reverses. Erasure looks for it too, so old rows are found."""
    return hashlib.sha256(f"unit:{salt}:{unit}".encode()).hexdigest()[:32]


def quotas(weights: Mapping[str, float]) -> dict[str, int]:
    """Buckets per variant by largest remainder: ``round(BUCKETS * w / sum(w))``, summing to BUCKETS."""
    total = sum(weights.values())
    # BUCKETS * w overflows for w > 1.8e304 (finite weights a caller may send): divide first
    # then, and only then, so every table allocated before stays the same to the last bit.
    exact = {name: BUCKETS * w / total if BUCKETS * w < math.inf else BUCKETS * (w / total)
             for name, w in weights.items()}
    counts = {name: int(x) for name, x in exact.items()}
    spare = BUCKETS - sum(counts.values())
    for name in sorted(exact, key=lambda n: counts[n] - exact[n])[:spare]:
        counts[name] += 1
    return counts


def allocate(weights: Mapping[str, float], previous: Sequence[str] | None = None) -> list[str]:
    """The bucket → variant table for ``weights`` that moves the fewest buckets from ``previous``."""
    target = quotas(weights)
    if previous is None or len(previous) != BUCKETS:
        table: list[str] = []
        for name, count in target.items():
            table.extend([name] * count)
        return table
    kept = dict.fromkeys(target, 0)
    result: list[str | None] = []
    for owner in previous:
        if owner in kept and kept[owner] < target[owner]:
            kept[owner] += 1
            result.append(owner)
        else:
            result.append(None)
    needy = iter([name for name in target for _ in range(target[name] - kept[name])])
    return [owner if owner is not None else next(needy) for owner in result]
