"""A small, deterministic, pickle-free container for policy snapshots.

Layout::

    b"ARBP" | version (uint8) | header length (uint32 LE) | header (UTF-8 JSON) | array bytes

The header is ``{"policy", "params", "state", "arrays"}`` serialised with sorted keys, where
``arrays`` lists ``[name, dtype, shape]`` in order and the array bytes follow back to back, in C
order and little-endian. The same state therefore always gives the same bytes, and loading runs
no code from the data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

_MAGIC = b"ARBP"
_VERSION = 1
_PREFIX = struct.Struct("<4sBI")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a policy writes: its registry name, hyperparameters, JSON state and arrays."""

    policy: str
    params: Mapping[str, Any]
    state: Mapping[str, Any]
    arrays: Mapping[str, NDArray[Any]]


def dump(snapshot: Snapshot) -> bytes:
    """Encode ``snapshot`` (arrays in insertion order) to bytes."""
    arrays = [
        (name, np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")))
        for name, a in snapshot.arrays.items()
    ]
    header = json.dumps(
        {
            "policy": snapshot.policy,
            "params": dict(snapshot.params),
            "state": dict(snapshot.state),
            "arrays": [[name, a.dtype.str, list(a.shape)] for name, a in arrays],
        },
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    body = b"".join(a.tobytes() for _, a in arrays)
    return _PREFIX.pack(_MAGIC, _VERSION, len(header)) + header + body


def load(data: bytes, policy: str) -> Snapshot:
    """Decode bytes written by :func:`dump` for the policy named ``policy``.

    Raises ``ValueError`` if the data is not a snapshot of that policy or is truncated.
    """
    if len(data) < _PREFIX.size:
        raise ValueError("policy snapshot is truncated")
    magic, version, header_size = _PREFIX.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise ValueError("data is not an Arbiter policy snapshot of a known version")
    start = _PREFIX.size
    if start + header_size > len(data):
        raise ValueError("policy snapshot is truncated")
    header = json.loads(data[start : start + header_size])
    if header["policy"] != policy:
        raise ValueError(f"snapshot is of policy `{header['policy']}`, expected `{policy}`")
    offset = start + header_size
    arrays: dict[str, NDArray[Any]] = {}
    for name, dtype_str, shape in header["arrays"]:
        dtype = np.dtype(dtype_str)
        size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        if offset + size > len(data):
            raise ValueError("policy snapshot is truncated")
        flat = np.frombuffer(data, dtype=dtype, count=size // dtype.itemsize, offset=offset)
        arrays[name] = flat.reshape(shape).astype(dtype.newbyteorder("="))
        offset += size
    if offset != len(data):
        raise ValueError("policy snapshot has trailing bytes")
    return Snapshot(header["policy"], header["params"], header["state"], arrays)
