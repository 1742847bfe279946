"""A request's features validated in bulk (``convert._bulk``) give what validating each
namespace group on its own (``convert.namespaces``, context first, then each action) gives:
the same namespaces (the same JSON, map order included) and budget left when valid, else the
same INVALID_ARGUMENT naming the same field — across NaNs, infinities, overflowing sums, long
and multi-byte names and values, empty and repeated names, and every limit (made small so that
they trip)."""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbiter.policies import Namespace
from arbiter.server import convert
from arbiter.server.errors import InvalidArgument
from arbiter.v1 import decision_pb2 as pb

NAMES = st.sampled_from(["", "u", "item", "é" * 5, "n" * 9, "m" * 30])
KEYS = st.sampled_from(["a", "b", "price", "ü" * 4, "k" * 8, "j" * 20])
NUMBERS = st.sampled_from([0.0, -1.5, 2.0, 1e308, -1e308, float("nan"), float("inf"),
                           float("-inf")])
VALUES = st.sampled_from(["", "x", "blue", "ß" * 6, "v" * 12, "w" * 30])
NAMESPACES = st.builds(lambda name, numbers, categories: pb.Namespace(
    name=name, numbers=numbers, categories=categories),
    NAMES, st.dictionaries(KEYS, NUMBERS, max_size=4), st.dictionaries(KEYS, VALUES, max_size=3))
GROUPS = st.lists(NAMESPACES, max_size=3)
LIMITS = st.builds(convert.Limits, max_name_length=st.integers(8, 40),
                   max_value_length=st.integers(8, 40), max_features_per_namespace=st.integers(2, 6),
                   max_namespaces=st.integers(2, 10), max_features=st.integers(4, 30))


def one_by_one(request: pb.ChooseRequest, budget: convert._Budget
               ) -> tuple[tuple[Namespace, ...], tuple[tuple[Namespace, ...], ...]]:
    """What the features of ``request`` were converted to before the bulk path: each group
    with :func:`convert.namespaces`, in order."""
    context = convert.namespaces(request.context, "context", budget)
    return context, tuple(convert.namespaces(action.features, k, budget) if action.features
                          else () for k, action in enumerate(request.actions))


def outcome(convert_features: object, request: pb.ChooseRequest,
            limits: convert.Limits) -> object:
    budget = convert._Budget(limits)
    try:
        converted = convert_features(request, budget)  # type: ignore[operator]
    except InvalidArgument as error:
        return str(error)
    # as JSON: the log's text, so the order of every map counts too (``==`` would ignore it)
    return msgspec.json.encode(converted), budget.namespaces, budget.features


def in_bulk(request: pb.ChooseRequest, budget: convert._Budget) -> object:
    bulk = convert._bulk([request.context], budget)
    context = bulk[0] if bulk else convert.namespaces(request.context, "context", budget)
    return context, convert.action_namespaces(request.actions, budget)


@settings(max_examples=1500, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(context=GROUPS, actions=st.lists(GROUPS, min_size=1, max_size=4), limits=LIMITS)
def test_bulk_validation_answers_as_one_group_at_a_time(
        context: list[pb.Namespace], actions: list[list[pb.Namespace]],
        limits: convert.Limits) -> None:
    request = pb.ChooseRequest(context=context, actions=[
        pb.Action(id=f"a{k}", features=features) for k, features in enumerate(actions)])

    assert outcome(in_bulk, request, limits) == outcome(one_by_one, request, limits)


def test_the_first_bad_field_is_named_even_when_a_later_action_fails_the_bulk_check() -> None:
    """The bulk path checks every number's finiteness once, at the end: a NaN in action 0 and a
    name over the limit in action 2 name action 0's number, as one group at a time does."""
    request = pb.ChooseRequest(actions=[
        pb.Action(id="a", features=[pb.Namespace(name="i", numbers={"p": float("nan")})]),
        pb.Action(id="b", features=[pb.Namespace(name="i", numbers={"p": 1.0})]),
        pb.Action(id="c", features=[pb.Namespace(name="i" * 300, numbers={"p": 1.0})])])

    assert outcome(in_bulk, request, convert.DEFAULT_LIMITS) == (
        "`actions[0].features[0].numbers['p']` must be a finite number, got nan")
