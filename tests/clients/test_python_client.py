"""The Python client: plain dicts in, typed results and exceptions out."""

from __future__ import annotations

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
