"""The edge: validate protos and convert them to plain domain values, and back.

Every check raises :class:`~server.errors.InvalidArgument` naming the offending field, before
anything is touched, so bad input changes nothing. Proto types never travel below this layer.

:class:`Limits` bounds what one Choose may hold — name and value lengths, features per
namespace, namespaces and features per request — so the memory one request can pin (in the
request, the decision cache and the policies' lookup caches) is bounded; each is a server flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from arbiter.policies import Decision, Namespace
from arbiter.server.domain import ChooseInput, ChooseOutcome, RewardOutcome
from arbiter.server.errors import ArbiterError, InvalidArgument, shortened, status_of
from arbiter.v1 import decision_pb2 as pb

MAX_ID_LENGTH = 128
MAX_ACTION_ID_LENGTH = 256
DEFAULT_MAX_ACTIONS = 1000
DEFAULT_MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """What one Choose may hold besides its actions (``--max-actions``); each is a server flag
    of the same name (``--max-name-length`` ...), and a request over one is INVALID_ARGUMENT
    naming the field."""

    max_name_length: int = 256  # characters of a namespace name or a feature name
    max_value_length: int = 1024  # characters of a category value
    max_features_per_namespace: int = 1000  # numbers and categories of one namespace
    max_namespaces: int = 10_000  # namespaces of one request: the context's and every action's
    max_features: int = 50_000  # features of one request: the context's and every action's

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")


DEFAULT_LIMITS = Limits()


class SharedActions:
    """The actions converted so far in one ChooseBatch, by their exact wire form: a request
    whose actions serialize to the same bytes as an earlier valid request's, action by action,
    takes that conversion instead of converting them again (a campaign's batch offers every
    user the same actions).

    Same bytes are the same ids, names, values and map order (a map is written in the order
    it is read), so the reused namespaces are the ones converting would build; the request is
    still charged their namespaces and features (:class:`Limits`), and one that goes over is
    converted in full, so its error names the field a unary Choose names. Only the first
    action is serialized unless it matches an earlier request's first action: a batch that
    shares nothing pays for one action's bytes per request."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[bytes, _Converted] = {}  # by the first action's wire form

    def take(self, actions: Sequence[pb.Action], budget: _Budget
             ) -> tuple[tuple[tuple[Namespace, ...], ...] | None, bytes]:
        """The converted features of ``actions`` if an earlier request had the same (charged
        to ``budget``; None if not, or if they bring it over a limit), and the first action's
        wire form (for :meth:`keep`)."""
        first = actions[0].SerializeToString()
        found = self._seen.get(first)
        if found is None or found.wire() != _wire(actions):
            return None, first
        namespaces, features = found.counts()
        if budget.namespaces < namespaces or budget.features < features:
            return None, first
        budget.namespaces -= namespaces
        budget.features -= features
        return found.features, first

    def keep(self, first: bytes, actions: Sequence[pb.Action],
             features: tuple[tuple[Namespace, ...], ...]) -> None:
        """Remember a request's converted actions (the first with this first action)."""
        self._seen.setdefault(first, _Converted(actions, features))


def _wire(actions: Sequence[pb.Action]) -> tuple[bytes, ...]:
    return tuple([action.SerializeToString() for action in actions])


class _Converted:
    """A request's actions and their conversion; wire form and counts computed when needed."""

    __slots__ = ("_counts", "_wire", "actions", "features")

    def __init__(self, actions: Sequence[pb.Action],
                 features: tuple[tuple[Namespace, ...], ...]) -> None:
        self.actions, self.features = actions, features
        self._wire: tuple[bytes, ...] | None = None
        self._counts: tuple[int, int] | None = None

    def wire(self) -> tuple[bytes, ...]:
        if self._wire is None:
            self._wire = _wire(self.actions)
        return self._wire

    def counts(self) -> tuple[int, int]:
        """Namespaces and features of the actions (what they charge to a :class:`_Budget`)."""
        if self._counts is None:
            self._counts = (sum(map(len, self.features)),
                            sum([len(ns.numbers) + len(ns.categories)
                                 for group in self.features for ns in group]))
        return self._counts


def choose_input(request: pb.ChooseRequest, *, max_actions: int = DEFAULT_MAX_ACTIONS,
                 limits: Limits = DEFAULT_LIMITS, shared: SharedActions | None = None
                 ) -> ChooseInput:
    """Validate a ChooseRequest: experiment, ids, action count and ids, finite numbers, and
    the :class:`Limits`.

    The checks run in bulk (one set of ids; the context's and the actions' namespaces in one
    loop, :func:`_bulk`) and only a request that fails one is walked again to name the
    offending field: this runs on every Choose, so a valid request pays for as few Python steps
    as possible. ``shared``: a batch's :class:`SharedActions`.
    """
    experiment = _required_id(request.experiment, "experiment")
    event_id = _optional_id(request.event_id, "event_id")
    unit_id = _optional_id(request.unit_id, "unit_id", limit=1024)
    given_actions = request.actions
    if not given_actions:
        raise InvalidArgument("actions", "must not be empty")
    if len(given_actions) > max_actions:
        raise InvalidArgument("actions", f"has {len(given_actions)} entries, more than the "
                              f"cap of {max_actions}")
    actions = list(given_actions)  # one wrapper per action, read twice: ids, then features
    action_ids = tuple([action.id for action in actions])
    if len(set(action_ids)) < len(action_ids) or not all(action_ids) \
            or max(map(len, action_ids)) > MAX_ACTION_ID_LENGTH:
        _name_bad_action_id(action_ids)
    budget = _Budget(limits)
    given = request.context
    context = bulk[0] if (bulk := _bulk([given], budget)) else namespaces(given, "context", budget)
    features, first = shared.take(actions, budget) if shared is not None else (None, b"")
    if features is None:
        features = action_namespaces(actions, budget)
        if shared is not None:
            shared.keep(first, actions, features)
    decision = Decision(context=context, action_ids=action_ids, action_features=features)
    excluded = _excluded(request.excluded_action_ids, action_ids) \
        if request.excluded_action_ids else ()
    return ChooseInput(experiment=experiment, event_id=event_id, unit_id=unit_id,
                       decision=decision, deferred=request.deferred, excluded=excluded,
                       explain=request.explain,
                       baseline=_baseline(request.baseline_action_id, action_ids, excluded))


def _baseline(baseline_id: str, action_ids: tuple[str, ...], excluded: tuple[int, ...]) -> int:
    """The index of the baseline action: the one named, which must be offered and not
    excluded, or else the first action not excluded."""
    if not baseline_id:
        return next(k for k in range(len(action_ids)) if k not in excluded) if excluded else 0
    try:
        baseline = action_ids.index(baseline_id)
    except ValueError:
        raise InvalidArgument("baseline_action_id", f"{baseline_id!r} is not one of the offered "
                              "actions") from None
    if baseline in excluded:
        raise InvalidArgument("baseline_action_id", f"{baseline_id!r} is excluded "
                              "(excluded_action_ids)")
    return baseline


def _excluded(excluded_ids: Sequence[str], action_ids: tuple[str, ...]) -> tuple[int, ...]:
    """Indices of the excluded actions, increasing: each id must name an offered action, once,
    and at least one action must remain."""
    index = {action_id: k for k, action_id in enumerate(action_ids)}
    found: set[int] = set()
    for i, action_id in enumerate(excluded_ids):
        where = f"excluded_action_ids[{i}]"
        k = index.get(action_id)
        if k is None:
            if len(action_id) > MAX_ACTION_ID_LENGTH:
                raise InvalidArgument(where, f"must be at most {MAX_ACTION_ID_LENGTH} characters")
            raise InvalidArgument(where, f"names no offered action: {action_id!r}")
        if k in found:
            raise InvalidArgument(where, f"repeats the action id {action_id!r}")
        found.add(k)
    if len(found) == len(action_ids):
        raise InvalidArgument("excluded_action_ids", f"excludes all {len(action_ids)} offered "
                                                     "actions; at least one must remain")
    return tuple(sorted(found))


def batch_size(request: pb.ChooseBatchRequest, max_batch: int) -> int:
    """The number of requests of a ChooseBatch, at most ``max_batch`` (``--max-batch``)."""
    size = len(request.requests)
    if size > max_batch:
        raise InvalidArgument("requests", f"has {size} entries, more than the cap of {max_batch} "
                                          "(--max-batch)")
    return size


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


class _Budget:
    """What is left of one request's :class:`Limits` while its namespaces are converted."""

    __slots__ = ("features", "limits", "namespaces")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.namespaces = limits.max_namespaces
        self.features = limits.max_features


def namespaces(items: Sequence[pb.Namespace], where: str | int,
               budget: _Budget | None = None) -> tuple[Namespace, ...]:
    """Validated namespaces: non-empty unique names, finite numbers, within the limits; the
    first that breaks one raises, naming its field.

    The reference conversion, one namespace and one check at a time: requests go through
    :func:`_bulk` (the same result, in one loop) and come here only when a check failed
    there, to name it. ``where`` names them in messages: a field, or the index of the action
    they belong to."""
    budget = budget or _Budget(DEFAULT_LIMITS)
    limits = budget.limits
    budget.namespaces -= len(items)
    if budget.namespaces < 0:
        raise InvalidArgument(_field(where), f"brings the request over {limits.max_namespaces} "
                                             "namespaces (--max-namespaces)")
    result: list[Namespace] = []
    for item in items:
        given, source, name = item.numbers, item.categories, item.name
        numbers = {key: given[key] for key in given}  # one copy, checked and kept
        categories = {key: source[key] for key in source}
        budget.features -= len(numbers) + len(categories)
        where_here = f"{_field(where)}[{len(result)}]"
        _name_non_finite(numbers, where_here)
        _name_over_limit(name, numbers, categories, where_here, budget)
        result.append(Namespace(name, numbers, categories))
    _check_names(result, _field(where))
    return tuple(result)


def action_namespaces(actions: Sequence[pb.Action], budget: _Budget
                      ) -> tuple[tuple[Namespace, ...], ...]:
    """The validated features of each action, charged to ``budget``: :func:`namespaces` of
    each, in order — in bulk (:func:`_bulk`) unless a check fails; then each again with
    :func:`namespaces`, from the budget the actions started with, so the error names the
    first offending field as a one-by-one conversion does."""
    converted = _bulk([action.features for action in actions], budget)
    if converted is not None:
        return converted
    return tuple([namespaces(given, k, budget) if (given := action.features) else ()
                  for k, action in enumerate(actions)])


def _bulk(groups: Sequence[Sequence[pb.Namespace]], budget: _Budget
          ) -> tuple[tuple[Namespace, ...], ...] | None:
    """Each group of namespaces converted (what :func:`namespaces` of each gives, in order,
    charged to ``budget``), or None — ``budget`` untouched — if any check fails or cannot be
    settled in bulk (the caller converts them again one by one, naming the field).

    One loop, no call or field name per group, and one sum of every number, checked once at
    the end (a NaN or an infinity anywhere makes it non-finite). The lengths of a namespace's
    names and values are settled by its wire size where that is small enough: a string has
    no more characters than UTF-8 bytes, and the namespace's bytes hold all of them
    (``ByteSize``, one C call, cheaper than joining them). In-process, ``bench.load``'s
    requests (a context of 15 features, 10 actions of 5): context and actions 38.8 -> 34.7 us
    per request."""
    limits = budget.limits
    most, longest, longest_value = (limits.max_features_per_namespace, limits.max_name_length,
                                    limits.max_value_length)
    small = min(longest, longest_value)  # wire bytes that settle every length
    rooms, left = budget.namespaces, budget.features
    join = "".join
    total = 0.0
    out: list[tuple[Namespace, ...]] = []
    append = out.append
    for items in groups:
        rooms -= len(items)
        if rooms < 0:
            return None
        converted = []
        for item in items:
            given, source, name = item.numbers, item.categories, item.name
            numbers = {key: given[key] for key in given}
            categories = {key: source[key] for key in source}
            count = len(numbers) + len(categories)
            left -= count
            total += sum(numbers.values())
            if count > most or left < 0 or not name or (item.ByteSize() > small and (
                    len(name) + len(join(numbers)) + len(join(categories)) > longest
                    or len(join(categories.values())) > longest_value)):
                return None
            converted.append(Namespace(name, numbers, categories))
        if len(converted) > 1 and len({ns.name for ns in converted}) < len(converted):
            return None  # a repeated name
        append(tuple(converted))
    if not math.isfinite(total):
        return None
    budget.namespaces, budget.features = rooms, left
    return tuple(out)


def _field(where: str | int) -> str:
    """The field of :func:`namespaces`' ``where``: itself, or action ``where``'s features."""
    return where if isinstance(where, str) else f"actions[{where}].features"


def _name_over_limit(name: str, numbers: dict[str, float], categories: dict[str, str],
                     where: str, budget: _Budget) -> None:
    """Raise for the first limit a namespace breaks (none if it breaks none)."""
    limits = budget.limits
    if len(numbers) + len(categories) > limits.max_features_per_namespace:
        raise InvalidArgument(where, f"has {len(numbers) + len(categories)} features, more than "
                                     f"{limits.max_features_per_namespace} "
                                     "(--max-features-per-namespace)")
    if budget.features < 0:
        raise InvalidArgument(where, f"brings the request over {limits.max_features} features "
                                     "(--max-features)")
    if len(name) > limits.max_name_length:
        raise InvalidArgument(f"{where}.name", f"must be at most {limits.max_name_length} "
                                               "characters (--max-name-length)")
    for kind, keys in (("numbers", numbers), ("categories", categories)):
        for key in keys:
            if len(key) > limits.max_name_length:
                raise InvalidArgument(f"{where}.{kind}", f"has a name of {len(key)} characters, "
                                      f"more than {limits.max_name_length} (--max-name-length)")
    for key, value in categories.items():
        if len(value) > limits.max_value_length:
            raise InvalidArgument(f"{where}.categories[{key!r}]",
                                  f"must be at most {limits.max_value_length} characters "
                                  "(--max-value-length)")


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


def choose_response(outcome: ChooseOutcome,
                    response: pb.ChooseResponse | None = None) -> pb.ChooseResponse:
    """``outcome`` as a ChooseResponse, written into ``response`` if given (a batch's result:
    in place, not copied into it)."""
    response = _unexplained(outcome, response)
    if outcome.explanations:
        response.MergeFromString(outcome.explanations)
    return response


def choose_answer(outcome: ChooseOutcome) -> pb.ChooseResponse | bytes:
    """A unary Choose's answer: :func:`choose_response`, or — with explanations — its wire
    bytes: the response without them, serialized, and theirs after it. ``explanations`` is the
    message's last field (7), so these are the bytes that serializing the whole message gives,
    without parsing the explanations into it (``MergeFromString``) only to serialize them
    again (in-process, 10 x 11: 15 -> 8.5 us). The server's serializer passes bytes
    through (:mod:`server.decoding`)."""
    if not outcome.explanations:
        return choose_response(outcome)
    return _unexplained(outcome).SerializeToString() + outcome.explanations


def _unexplained(outcome: ChooseOutcome,
                 response: pb.ChooseResponse | None = None) -> pb.ChooseResponse:
    """Every field of ``outcome``'s ChooseResponse but the explanations."""
    if response is None:
        response = pb.ChooseResponse()
    ids, distribution, chosen = outcome.action_ids, outcome.distribution, outcome.chosen
    response.event_id = outcome.event_id
    response.action_id = ids[chosen]
    response.probability = distribution[chosen]
    response.variant = outcome.variant
    response.model_version = outcome.model_version
    # In place, from the ranked indices: a third cheaper than building RankedActions first,
    # and 6.0 -> 5.0 us per batched decision against (action id, probability) pairs.
    add = response.ranking.add
    for k in outcome.ranking():
        add(action_id=ids[k], probability=distribution[k])
    return response


def batch_response(results: Sequence[ChooseOutcome | ArbiterError]) -> pb.ChooseBatchResponse:
    """One result per request, in order: the response, or the status code and message a
    unary Choose would have answered."""
    response = pb.ChooseBatchResponse()
    add = response.results.add
    for result in results:
        if isinstance(result, ArbiterError):
            add(code=status_of(result).value[0], message=shortened(str(result)))
        else:
            choose_response(result, add().response)
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
