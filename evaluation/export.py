"""``arbiter export``: the decision log as DSJson (for Vowpal Wabbit) or Parquet (for analytics).

Both stream the log (:func:`evaluation.logdata.read_log`) and write as they go.

DSJson (:func:`dsjson_line`): one line per learned decision, in Vowpal Wabbit's contextual-bandit
DSJson format (what ``vw --dsjson --cb_adf`` and ``vowpal_wabbit_next.DSJsonFormatParser`` read)::

    {"_label_cost": -r, "_label_probability": p, "_label_Action": chosen + 1,
     "_labelIndex": chosen, "Timestamp": "...Z", "Version": "1", "EventId": "...",
     "a": [chosen + 1, then the other 1-based actions by decreasing probability],
     "c": {"<namespace>": {"<number>": 1.5, "<category>": "value"}, ...,
           "_multi": [{"id": {"id": "<action id>"}, "<action namespace>": {...}}, ...]},
     "p": [the probabilities in the order of "a"], "VWState": {"m": "<model version>"}}

The cost is the negated learned reward (VW minimises cost). Every action carries its id in the
namespace ``id`` so actions without features of their own stay distinguishable.

Orders. In the log and in Parquet, ``distribution[k]`` is the logging policy's probability of
``actions[k]``: the **offered order** (the order of the request's actions), and ``chosen_index``
indexes it. In DSJson, ``"a"`` is the **ranking order** VW expects: the chosen action first,
then the others by decreasing probability (ties keep the offered order); ``"p"[j]`` is the
probability of action ``"a"[j]`` (1-based offered index), and ``"c"._multi`` stays in offered
order (``_multi[a - 1]`` is action ``a``).

Parquet (:func:`write_parquet`): one row per decision (learned or not), see
:data:`PARQUET_SCHEMA`: scalar columns, the nested parts as typed columns (``context`` and
``actions`` as lists of structs, ``shadow`` as a map from shadow variant to its distribution in
offered order) and, next to them, the same as JSON text (``*_json``) for engines without nested
types. pyarrow, DuckDB, Spark and pandas read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from arbiter.evaluation.logdata import LoggedRow

__all__ = ["ACTION", "NAMESPACE", "PARQUET_SCHEMA", "dsjson_line", "write_dsjson", "write_parquet"]

ACTION_ID_NAMESPACE = "id"
_BATCH = 10_000

NAMESPACE = pa.struct([
    ("name", pa.string()),
    ("numbers", pa.map_(pa.string(), pa.float64())),
    ("categories", pa.map_(pa.string(), pa.string())),
])
"""A logged namespace: its name, numeric features and categorical features."""
ACTION = pa.struct([("id", pa.string()), ("features", pa.list_(NAMESPACE))])
"""An offered action: its id and its own feature namespaces."""

PARQUET_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("experiment", pa.string()),
    ("variant", pa.string()),
    ("model_version", pa.string()),
    ("unit_hash", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("deferred", pa.bool_()),
    ("activated_at", pa.timestamp("us", tz="UTC")),
    ("learned", pa.bool_()),
    ("reward", pa.float64()),
    ("learned_at", pa.timestamp("us", tz="UTC")),
    ("n_actions", pa.int32()),
    ("chosen_index", pa.int32()),
    ("chosen_action", pa.string()),
    ("probability", pa.float64()),
    ("distribution", pa.list_(pa.float64())),
    ("context", pa.list_(NAMESPACE)),
    ("actions", pa.list_(ACTION)),
    ("shadow", pa.map_(pa.string(), pa.list_(pa.float64()))),
    ("context_json", pa.string()),
    ("actions_json", pa.string()),
    ("shadow_json", pa.string()),
])
"""One row per decision; ``reward`` and ``learned_at`` are null until the reward is learned;
``distribution`` and each ``shadow`` value are in the offered order of ``actions``."""


def _vw_namespaces(namespaces: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Logged namespaces as VW JSON: numbers stay numbers, categories become string features."""
    return {ns["name"]: {**ns.get("numbers", {}), **ns.get("categories", {})} for ns in namespaces}


def dsjson_line(row: LoggedRow) -> str:
    """One learned decision as a DSJson line (no trailing newline)."""
    if row.reward is None:
        raise ValueError("only learned decisions have a DSJson label")
    chosen = row.chosen_index
    others = sorted((k for k in range(len(row.actions)) if k != chosen), key=lambda k: -row.distribution[k])
    order = [chosen, *others]
    actions = [{ACTION_ID_NAMESPACE: {"id": a["id"]}, **_vw_namespaces(a["features"])} for a in row.actions]
    event = {
        "_label_cost": -row.reward,
        "_label_probability": row.probability,
        "_label_Action": chosen + 1,
        "_labelIndex": chosen,
        "Timestamp": row.created_at.isoformat().replace("+00:00", "Z"),
        "Version": "1",
        "EventId": row.event_id,
        "a": [k + 1 for k in order],
        "c": {**_vw_namespaces(row.context), "_multi": actions},
        "p": [row.distribution[k] for k in order],
        "VWState": {"m": row.model_version},
    }
    return json.dumps(event, separators=(",", ":"))


def write_dsjson(rows: Iterable[LoggedRow], path: str | Path | IO[str]) -> int:
    """Write learned ``rows`` as DSJson lines to ``path`` (a file name, or an open text stream
    such as ``sys.stdout``, left open); returns the number of lines."""
    if not isinstance(path, str | Path):
        return _dsjson_lines(rows, path)
    with open(path, "w", encoding="utf-8") as out:
        return _dsjson_lines(rows, out)


def _dsjson_lines(rows: Iterable[LoggedRow], out: IO[str]) -> int:
    count = 0
    for row in rows:
        out.write(dsjson_line(row) + "\n")
        count += 1
    return count


def _record(row: LoggedRow) -> dict[str, Any]:
    return {
        "event_id": row.event_id, "experiment": row.experiment, "variant": row.variant,
        "model_version": row.model_version,
        "unit_hash": row.unit_hash, "created_at": row.created_at, "deferred": row.deferred,
        "activated_at": row.activated_at, "learned": row.reward is not None, "reward": row.reward,
        "learned_at": row.learned_at, "n_actions": len(row.actions), "chosen_index": row.chosen_index,
        "chosen_action": row.chosen_action, "probability": row.probability,
        "distribution": row.distribution, "context": [_namespace(ns) for ns in row.context],
        "actions": [{"id": a["id"], "features": [_namespace(ns) for ns in a["features"]]}
                    for a in row.actions],
        "shadow": row.shadow, "context_json": json.dumps(row.context),
        "actions_json": json.dumps(row.actions), "shadow_json": json.dumps(row.shadow),
    }


def _namespace(ns: Mapping[str, Any]) -> dict[str, Any]:
    """A logged namespace for :data:`NAMESPACE` (absent parts are empty maps; categories as text)."""
    return {"name": ns["name"], "numbers": ns.get("numbers", {}),
            "categories": {k: str(v) for k, v in ns.get("categories", {}).items()}}


def write_parquet(rows: Iterable[LoggedRow], path: str | Path | IO[bytes]) -> int:
    """Write ``rows`` as Parquet (:data:`PARQUET_SCHEMA`) in batches to ``path`` (a file name,
    or an open binary stream such as ``sys.stdout.buffer``: Parquet is written front to back,
    no seeking); returns the count."""
    count = 0
    batch: list[dict[str, Any]] = []
    with pq.ParquetWriter(str(path) if isinstance(path, str | Path) else path, PARQUET_SCHEMA) as writer:
        for row in rows:
            batch.append(_record(row))
            if len(batch) >= _BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
                count, batch = count + len(batch), []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
            count += len(batch)
    return count
