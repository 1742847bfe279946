"""Decisions as JSON for the log, and back: ``[{"name", "numbers", "categories"}]``.

:class:`~policies.Namespace` is a ``msgspec.Struct``, which the engine's JSON serializer
(msgspec) writes as exactly that object, so a decision's context goes into the log as it is and
its actions only need their ids wrapped around them — no per-request copy into dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from arbiter.policies import Decision, Namespace


class LoggedAction(msgspec.Struct, frozen=True, gc=False):
    """An action as the log's JSON holds it: ``{"id", "features": [namespace, ...]}`` (a
    ``msgspec.Struct`` is written as that object, fields in this order: the same text as the
    dict, built in a third of its time)."""

    id: str
    features: tuple[Namespace, ...]


def actions_to_json(decision: Decision) -> list[LoggedAction]:
    """``[{"id", "features": [namespace, ...]}]`` in offer order."""
    return list(map(LoggedAction, decision.action_ids, decision.action_features))


def namespaces_from_json(items: Sequence[dict[str, Any]]) -> tuple[Namespace, ...]:
    return tuple(Namespace(name=item["name"], numbers=item.get("numbers", {}),
                           categories=item.get("categories", {})) for item in items)


def decision_from_json(context: Sequence[dict[str, Any]],
                       actions: Sequence[dict[str, Any]]) -> Decision:
    return Decision(context=namespaces_from_json(context),
                    action_ids=tuple(a["id"] for a in actions),
                    action_features=tuple(namespaces_from_json(a["features"]) for a in actions))
