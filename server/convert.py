"""The edge: validate protos and convert them to plain domain values, and back.

Every check raises :class:`~server.errors.InvalidArgument` naming the offending field, before
anything is touched, so bad input changes nothing. Proto types never travel below this layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from arbiter.policies import Decision, Namespace
from arbiter.server.domain import ChooseInput, ChooseOutcome, RewardOutcome
from arbiter.server.errors import InvalidArgument
from arbiter.v1 import decision_pb2 as pb

MAX_ID_LENGTH = 128
MAX_ACTION_ID_LENGTH = 256
DEFAULT_MAX_ACTIONS = 1000


def choose_input(request: pb.ChooseRequest, *, max_actions: int = DEFAULT_MAX_ACTIONS) -> ChooseInput:
    """Validate a ChooseRequest: experiment, ids, action count and ids, finite numbers.

    The checks run in bulk (one set of ids, one sum of a namespace's numbers) and only a
    request that fails one is walked again to name the offending field: this runs on every
    Choose, so a valid request pays for as few Python steps as possible.
    """
    experiment = _required_id(request.experiment, "experiment")
    event_id = _optional_id(request.event_id, "event_id")
    unit_id = _optional_id(request.unit_id, "unit_id", limit=1024)
    actions = request.actions
    if not actions:
        raise InvalidArgument("actions", "must not be empty")
    if len(actions) > max_actions:
        raise InvalidArgument("actions", f"has {len(actions)} entries, more than the "
                              f"cap of {max_actions}")
    action_ids = tuple([action.id for action in actions])
    if len(set(action_ids)) < len(action_ids) or not all(action_ids) \
            or max(map(len, action_ids)) > MAX_ACTION_ID_LENGTH:
        _name_bad_action_id(action_ids)
    decision = Decision(
        context=namespaces(request.context, "context"), action_ids=action_ids,
        action_features=tuple([namespaces(action.features, f"actions[{k}].features")
                               for k, action in enumerate(actions)]))
    return ChooseInput(experiment=experiment, event_id=event_id, unit_id=unit_id,
                       decision=decision, deferred=request.deferred)


def _name_bad_action_id(action_ids: tuple[str, ...]) -> None:
    """Raise for the first action id that is empty, too long or a repeat."""
    seen: set[str] = set()
    for k, action_id in enumerate(action_ids):
        where = f"actions[{k}].id"
        if not action_id:
            raise InvalidArgument(where, "must not be empty")
        if len(action_id) > MAX_ACTION_ID_LENGTH:
            raise InvalidArgument(where, f"must be at most {MAX_ACTION_ID_LENGTH} characters")
        if action_id in seen:
            raise InvalidArgument(where, f"duplicates the action id {action_id!r}")
        seen.add(action_id)


def namespaces(items: Sequence[pb.Namespace], where: str) -> tuple[Namespace, ...]:
    """Validated namespaces: non-empty unique names, finite numbers."""
    result: list[Namespace] = []
    for item in items:
        numbers = {key: item.numbers[key] for key in item.numbers}  # one copy, checked and kept
        if not math.isfinite(sum(numbers.values())):  # a NaN or an infinity makes it so
            _name_non_finite(numbers, f"{where}[{len(result)}]")
        categories = item.categories
        result.append(Namespace(item.name, numbers, {key: categories[key] for key in categories}))
    if len(result) > 1 or (result and not result[0].name):
        _check_names(result, where)
    return tuple(result)


def _name_non_finite(numbers: dict[str, float], where: str) -> None:
    """Raise for the first NaN or infinity (a sum can also overflow with finite terms: fine)."""
    for key, value in numbers.items():
        if not math.isfinite(value):
            raise InvalidArgument(f"{where}.numbers[{key!r}]", f"must be a finite number, got {value}")


def _check_names(items: list[Namespace], where: str) -> None:
    names: set[str] = set()
    for i, item in enumerate(items):
        if not item.name:
            raise InvalidArgument(f"{where}[{i}].name", "must not be empty")
        if item.name in names:
            raise InvalidArgument(f"{where}[{i}].name", f"repeats the namespace {item.name!r}")
        names.add(item.name)


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
    response = pb.ChooseResponse(event_id=outcome.event_id, action_id=outcome.action_id,
                                 probability=outcome.probability, variant=outcome.variant,
                                 model_version=outcome.model_version)
    add = response.ranking.add  # in place: a third cheaper than building RankedActions first
    for action_id, probability in outcome.ranking():
        add(action_id=action_id, probability=probability)
    return response


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
