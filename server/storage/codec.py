"""Decisions as JSON for the log, and back: ``[{"name", "numbers", "categories"}]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policies import Decision, Namespace


def namespaces_to_json(items: Sequence[Namespace]) -> list[dict[str, Any]]:
    return [{"name": ns.name, "numbers": dict(ns.numbers), "categories": dict(ns.categories)}
            for ns in items]


def namespaces_from_json(items: Sequence[dict[str, Any]]) -> tuple[Namespace, ...]:
    return tuple(Namespace(name=item["name"], numbers=item.get("numbers", {}),
                           categories=item.get("categories", {})) for item in items)


def actions_to_json(decision: Decision) -> list[dict[str, Any]]:
    return [{"id": action_id, "features": namespaces_to_json(features)}
            for action_id, features in zip(decision.action_ids, decision.action_features,
                                           strict=True)]


def decision_from_json(context: Sequence[dict[str, Any]],
                       actions: Sequence[dict[str, Any]]) -> Decision:
    return Decision(context=namespaces_from_json(context),
                    action_ids=tuple(a["id"] for a in actions),
                    action_features=tuple(namespaces_from_json(a["features"]) for a in actions))
