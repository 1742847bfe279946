"""The edge: validate protos and convert them to plain domain values, and back.

Every check raises :class:`~server.errors.InvalidArgument` naming the offending field, before
anything is touched, so bad input changes nothing. Proto types never travel below this layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from policies import Decision, Namespace
from protos.arbiter.v1 import decision_pb2 as pb
from server.domain import ChooseInput, ChooseOutcome, RewardOutcome
from server.errors import InvalidArgument

MAX_ID_LENGTH = 128
DEFAULT_MAX_ACTIONS = 1000


def choose_input(request: pb.ChooseRequest, *, max_actions: int = DEFAULT_MAX_ACTIONS) -> ChooseInput:
    """Validate a ChooseRequest: experiment, ids, action count and ids, finite numbers."""
    experiment = _required_id(request.experiment, "experiment")
    event_id = _optional_id(request.event_id, "event_id")
    unit_id = _optional_id(request.unit_id, "unit_id", limit=1024)
    if not request.actions:
        raise InvalidArgument("actions", "must not be empty")
    if len(request.actions) > max_actions:
        raise InvalidArgument("actions", f"has {len(request.actions)} entries, more than the "
                              f"cap of {max_actions}")
    seen: set[str] = set()
    action_ids: list[str] = []
    action_features: list[tuple[Namespace, ...]] = []
    for k, action in enumerate(request.actions):
        where = f"actions[{k}].id"
        if not action.id:
            raise InvalidArgument(where, "must not be empty")
        if len(action.id) > 256:
            raise InvalidArgument(where, "must be at most 256 characters")
        if action.id in seen:
            raise InvalidArgument(where, f"duplicates the action id {action.id!r}")
        seen.add(action.id)
        action_ids.append(action.id)
        action_features.append(namespaces(action.features, f"actions[{k}].features"))
    decision = Decision(context=namespaces(request.context, "context"),
                        action_ids=tuple(action_ids), action_features=tuple(action_features))
    return ChooseInput(experiment=experiment, event_id=event_id, unit_id=unit_id,
                       decision=decision, deferred=request.deferred)


def namespaces(items: Iterable[pb.Namespace], where: str) -> tuple[Namespace, ...]:
    """Validated namespaces: non-empty unique names, finite numbers."""
    result: list[Namespace] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        if not item.name:
            raise InvalidArgument(f"{where}[{i}].name", "must not be empty")
        if item.name in names:
            raise InvalidArgument(f"{where}[{i}].name", f"repeats the namespace {item.name!r}")
        names.add(item.name)
        numbers = dict(item.numbers)  # one copy out of the proto map, checked and kept
        for key, value in numbers.items():
            if not math.isfinite(value):
                raise InvalidArgument(f"{where}[{i}].numbers[{key!r}]",
                                      f"must be a finite number, got {value}")
        result.append(Namespace(name=item.name, numbers=numbers,
                                categories=dict(item.categories)))
    return tuple(result)


def reward_input(request: pb.RewardRequest) -> tuple[str, float]:
    """Validate a RewardRequest: a non-empty event id and a finite value."""
    event_id = _required_id(request.event_id, "event_id")
    _optional_id(request.reward_id, "reward_id")
    if not math.isfinite(request.value):
        raise InvalidArgument("value", f"must be a finite number, got {request.value}")
    return event_id, request.value


def activate_input(request: pb.ActivateRequest) -> str:
    return _required_id(request.event_id, "event_id")


def choose_response(outcome: ChooseOutcome) -> pb.ChooseResponse:
    return pb.ChooseResponse(
        event_id=outcome.event_id,
        action_id=outcome.action_id,
        probability=outcome.probability,
        ranking=[pb.RankedAction(action_id=a, probability=p) for a, p in outcome.ranking()],
        variant=outcome.variant,
        model_version=outcome.model_version,
    )


def reward_response(outcome: RewardOutcome) -> pb.RewardResponse:
    return pb.RewardResponse(learned=outcome.learned)


def _required_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "must not be empty")
    return _optional_id(value, field)


def _optional_id(value: str, field: str, limit: int = MAX_ID_LENGTH) -> str:
    if len(value) > limit:
        raise InvalidArgument(field, f"must be at most {limit} characters")
    return value
