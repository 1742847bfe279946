"""``ChooseResponse.explanations`` written as protobuf wire bytes: encoded when the decision is
made (``DecisionLoop._records``), merged into the response when answered (``convert``).

An explained Choose answers some 10 explanations of 11 contributions each; adding them one
message at a time (``explanations.add(...)``, ``contributions.add(...)``) builds some 130
Python-side messages per call. Encoding the same fields directly and merging them with
``MergeFromString`` parses them in C instead. The fields come from the policy's
:class:`~policies.base.ExplanationTable` in whole steps: all its doubles as 8-byte ``bytes``
by one ``tolist``, each feature's bytes up to its value cached by name (the few names a model
has recur in every call) and looked up by the dictionary's own ``__getitem__`` in a ``map``,
a row's fields interleaved by slice assignments and joined once — no Python step per
contribution, and no Python object per contribution made to get there. The result is the
same message as the one-at-a-time build (tests/server/test_explanations.py checks it).

Layout (decision.proto): ``ChooseResponse.explanations = 7``; ``ActionExplanation { action_id
= 1; score = 2 (double); contributions = 3 }``; ``FeatureContribution { feature = 1;
contribution = 2 (double) }``; strings and messages length-delimited (wire type 2), doubles
fixed 64-bit little-endian (wire type 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from arbiter.policies import Explanation, ExplanationTable

_EXPLANATION = b"\x3a"  # field 7, length-delimited
_ACTION_ID, _SCORE, _CONTRIBUTION = b"\x0a", b"\x11", b"\x1a"  # ActionExplanation 1, 2, 3
_FEATURE, _VALUE = b"\x0a", b"\x11"  # FeatureContribution 1, 2
_CACHE_LIMIT = 4096
_SMALL = [bytes([n]) for n in range(0x80)]  # the varints of one byte


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(tag: bytes, text: str) -> bytes:
    """A string field; nothing for the empty string (proto3's default, not serialized)."""
    raw = text.encode()
    return tag + _varint(len(raw)) + raw if raw else b""


class _Encoded(dict[str, bytes]):
    """Text → its bytes by ``make``, made on the first lookup of the text; at most
    :data:`_CACHE_LIMIT` kept (a memory bound only)."""

    def __init__(self, make: Callable[[str], bytes]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, text: str) -> bytes:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        found = self[text] = self._make(text)
        return found


def _contribution(feature: str) -> bytes:
    """A FeatureContribution of ``feature`` up to its value: the contributions field's tag and
    length (the value is always 8 bytes), the feature, the value's tag."""
    body = _string(_FEATURE, feature) + _VALUE
    return _CONTRIBUTION + _varint(len(body) + 8) + body


def _zero(feature: str) -> bytes:
    """A FeatureContribution of ``feature`` worth +0.0: the value is not serialized."""
    body = _string(_FEATURE, feature)
    return _CONTRIBUTION + _varint(len(body)) + body


_prefix = _Encoded(_contribution).__getitem__
_zero_prefix = _Encoded(_zero).__getitem__
_head = _Encoded(lambda action_id: _string(_ACTION_ID, action_id) + _SCORE).__getitem__
"""An ActionExplanation up to its score's value: the action id and the score's tag."""
_id = _Encoded(lambda action_id: _string(_ACTION_ID, action_id)).__getitem__
"""An ActionExplanation whose score is +0.0: the action id alone."""
_EXPLORATION = _contribution("exploration")
_ZERO = bytes(8)  # +0.0 (-0.0 is not a default: it is serialized)


def wire(explanations: Sequence[Explanation]) -> bytes:
    """``explanations`` as the wire bytes of ``ChooseResponse.explanations``, from an
    :class:`~policies.base.ExplanationTable` (any other sequence is made one first)."""
    table = explanations if isinstance(explanations, ExplanationTable) \
        else ExplanationTable.of(explanations)
    values = table.values.astype("<f8", copy=False)
    width = values.shape[1] if values.ndim == 2 else 0
    doubles = values.reshape(-1).view("V8").tolist()
    scores = table.scores.astype("<f8", copy=False).view("V8").tolist()
    extra = (table.exploration.astype("<f8", copy=False).view("V8").tolist()
             if table.exploration is not None else None)
    tail = 2 if extra is not None else 0
    parts = []
    for k, (action_id, names) in enumerate(zip(table.action_ids, table.features, strict=True)):
        n = len(names)
        row = doubles[k * width:k * width + n]
        if _ZERO in row or scores[k] == _ZERO or (extra is not None and extra[k] == _ZERO):
            data = _canonical(action_id, scores[k], names, row,
                              extra[k] if extra is not None else None)
        else:
            body: list[bytes] = [_head(action_id)] * (2 + 2 * n + tail)
            body[1] = scores[k]
            body[2:2 + 2 * n:2] = map(_prefix, names)
            body[3:3 + 2 * n:2] = row
            if extra is not None:
                body[-2:] = _EXPLORATION, extra[k]
            data = b"".join(body)
        parts += [_EXPLANATION, _varint(len(data)), data]
    return b"".join(parts)


def _canonical(action_id: str, score: bytes, names: list[str], values: list[bytes],
               exploration: bytes | None) -> bytes:
    """One ActionExplanation's bytes, value by value: a value of +0.0 (the score's, a
    contribution's) is left out, as protobuf leaves out defaults — so that these are the bytes
    serializing the message gives. The rows :func:`wire` takes this path for are those with
    such a value (features no model has learned yet)."""
    body = [_head(action_id), score] if score != _ZERO else [_id(action_id)]
    if exploration is not None:
        names, values = [*names, "exploration"], [*values, exploration]
    for name, value in zip(names, values, strict=True):
        body += [_zero_prefix(name)] if value == _ZERO else [_prefix(name), value]
    return b"".join(body)
