"""The Python client: plain dicts in, typed results and exceptions out."""

from __future__ import annotations

import numpy as np
import pytest

from arbiter.client import DecisionClient, InvalidArgumentError, NotFoundError
from arbiter.client.client import to_actions, to_namespaces
from arbiter.server.app import App


def test_numbers_and_categories_are_inferred_from_the_value_type() -> None:
    [user] = to_namespaces({"user": {"country": "DE", "age": 31, "premium": True, "score": 0.5}})
    assert user.name == "user"
    assert dict(user.numbers) == {"age": 31.0, "score": 0.5}
    assert dict(user.categories) == {"country": "DE", "premium": "true"}


def test_actions_are_ids_or_dicts_with_features() -> None:
    plain, rich = to_actions(["a", {"id": "b", "features": {"item": {"price": 2}}}])
    assert plain.id == "a" and not plain.features
    assert rich.id == "b" and dict(rich.features[0].numbers) == {"price": 2.0}


def test_status_codes_become_typed_exceptions_with_the_server_message(server: App) -> None:
    with DecisionClient(f"127.0.0.1:{server.port}", timeout=5) as client:
        with pytest.raises(InvalidArgumentError) as invalid:
            client.choose("homepage", actions=[])
        with pytest.raises(NotFoundError):
            client.choose("missing", actions=["a"])
    assert "`actions`" in invalid.value.message


@pytest.mark.parametrize(("value", "kind"), [
    ({"country": "DE"}, "a dict"), (["x", "y"], "a list"), (None, "None"), (b"DE", "a bytes"),
])
def test_a_context_value_that_is_not_a_number_string_or_boolean_is_refused_by_name(
        value: object, kind: str) -> None:
    with pytest.raises(ValueError, match="numbers, strings or booleans") as refused:
        to_namespaces({"user": {"age": 31, "geo": value}})
    assert "namespace 'user' feature 'geo'" in str(refused.value)
    assert kind in str(refused.value)


def test_an_action_feature_that_is_not_a_number_string_or_boolean_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="numbers, strings or booleans") as refused:
        to_actions(["a", {"id": "b", "features": {"item": {"tags": ["new", "sale"]}}}])
    assert "`actions[1].features` namespace 'item' feature 'tags' is a list" in str(refused.value)


def test_numpy_numbers_are_numbers() -> None:
    [item] = to_namespaces({"item": {"price": np.float32(9.5), "stock": np.int64(3)}})
    assert dict(item.numbers) == {"price": 9.5, "stock": 3.0}


@pytest.mark.parametrize("context", [{"country": "DE"}, {"user": ["DE"]}, ["user"], "user"])
def test_a_context_that_is_not_a_mapping_of_namespaces_says_the_expected_shape(
        context: object) -> None:
    with pytest.raises(TypeError, match="`context` must be a mapping of namespaces to features") as refused:
        to_namespaces(context)  # type: ignore[arg-type]
    assert '{"user": {"country": "DE", "age": 31}}' in str(refused.value)


def test_action_features_that_are_not_a_mapping_of_namespaces_say_the_expected_shape() -> None:
    with pytest.raises(TypeError, match=r"`actions\[0\].features` must be a mapping of namespaces"):
        to_actions([{"id": "a", "features": {"price": 9.5}}])
    with pytest.raises(TypeError, match=r"`actions\[1\]` must be an action id or"):
        to_actions(["a", 7])  # type: ignore[list-item]


def test_choose_raises_them_and_still_serves_a_well_formed_context(server: App) -> None:
    with DecisionClient(f"127.0.0.1:{server.port}", timeout=5) as client:
        with pytest.raises(TypeError, match="mapping of namespaces"):
            client.choose("homepage", context={"country": "DE"}, actions=["a", "b"])  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="namespace 'user' feature 'geo' is a dict"):
            client.choose("homepage", context={"user": {"geo": {"country": "DE"}}},
                          actions=["a", "b"])
        assert client.choose("homepage", context={"user": {"country": "DE"}},
                             actions=["a", "b"]).action_id in {"a", "b"}
