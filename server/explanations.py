"""``ChooseResponse.explanations`` written as protobuf wire bytes, merged into the response.

An explained Choose answers some 10 explanations of 11 contributions each; adding them one
message at a time (``explanations.add(...)``, ``contributions.add(...)``) builds some 130
Python-side messages per call. Encoding the same fields directly and merging them with
``MergeFromString`` parses them in C instead, with a cached prefix per feature name (the few
names a model has recur in every call), looked up by the dictionary's own ``__getitem__`` (no
Python call per contribution unless the name is new). The result is the same message as the
one-at-a-time build (tests/server/test_explanations.py checks it).

Layout (decision.proto): ``ChooseResponse.explanations = 7``; ``ActionExplanation { action_id
= 1; score = 2 (double); contributions = 3 }``; ``FeatureContribution { feature = 1;
contribution = 2 (double) }``; strings and messages length-delimited (wire type 2), doubles
fixed 64-bit little-endian (wire type 1).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from arbiter.policies import Explanation

_EXPLANATION = b"\x3a"  # field 7, length-delimited
_ACTION_ID, _SCORE, _CONTRIBUTION = b"\x0a", b"\x11", b"\x1a"  # ActionExplanation 1, 2, 3
_FEATURE, _VALUE = b"\x0a", b"\x11"  # FeatureContribution 1, 2
_DOUBLE = struct.Struct("<d").pack
_CACHE_LIMIT = 4096
_SMALL = [bytes([n]) for n in range(0x80)]  # the varints of one byte


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(tag: bytes, text: str) -> bytes:
    raw = text.encode()
    return tag + _varint(len(raw)) + raw


class _Prefixes(dict[str, bytes]):
    """Feature → a FeatureContribution of it up to its value: the contributions field's tag
    and length (the value is always 8 bytes), the feature, the value's tag. Made on the first
    lookup of a name; at most :data:`_CACHE_LIMIT` kept (a memory bound only)."""

    def __missing__(self, feature: str) -> bytes:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        body = _string(_FEATURE, feature) + _VALUE
        found = self[feature] = _CONTRIBUTION + _varint(len(body) + 8) + body
        return found


_prefix = _Prefixes().__getitem__


def wire(explanations: Sequence[Explanation]) -> bytes:
    """``explanations`` as the wire bytes of ``ChooseResponse.explanations``."""
    parts = []
    for explanation in explanations:
        body = b"".join([_string(_ACTION_ID, explanation.action_id), _SCORE,
                         _DOUBLE(explanation.score),
                         *[_prefix(feature) + _DOUBLE(value)
                           for feature, value in explanation.contributions]])
        parts += [_EXPLANATION, _varint(len(body)), body]
    return b"".join(parts)
