"""``ChooseRequest.explain`` end to end: a real server on SQLite and PostgreSQL.

The serving policy's explanation of each scored action comes back with the decision: LinUCB's
score is its estimate (the sum of its features' contributions) plus the exploration bonus;
nothing is explained unless asked, by a policy that cannot explain itself, or for a retry.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from arbiter.client import Choice, ChooseSpec, DecisionClient
from arbiter.server.app import App
from tests.server.test_choose_batch import choices
from tests.server.test_choose_reward import target

CONTEXT = {"user": {"age": 30, "country": "DE"}}
ACTIONS = [{"id": a, "features": {"item": {"price": float(k), "kind": ("x", "y")[k % 2]}}}
           for k, a in enumerate("abcd")]


def trained(client: DecisionClient) -> None:
    for i in range(30):
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, unit_id=f"u{i}")
        client.reward(choice.event_id, float(choice.action_id == "c"))


def test_linucb_explains_each_scored_action(start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"homepage": {"policy": "linucb",
                                                     "params": {"alpha": 0.5, "epsilon": 0.0}}}})
    with DecisionClient(target(app)) as client:
        trained(client)
        plain = client.choose("homepage", context=CONTEXT, actions=ACTIONS)
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, explain=True,
                               excluded_action_ids=["d"], event_id="explained")
        retried = client.choose("homepage", context=CONTEXT, actions=ACTIONS, explain=True,
                                excluded_action_ids=["d"], event_id="explained")
        [in_batch] = choices(client.choose_batch([ChooseSpec(
            "homepage", ACTIONS, context=CONTEXT, explain=True, excluded_action_ids=["d"])]))

    assert plain.explanations == []
    assert [e.action_id for e in choice.explanations] == ["a", "b", "c"]  # not the excluded d
    assert retried.explanations == []  # the logged decision; explanations are not logged
    assert retried.action_id == choice.action_id
    for explanation in choice.explanations:
        features = dict(explanation.contributions)
        assert explanation.contributions[-1][0] == "exploration"
        bonus = features.pop("exploration")
        assert bonus > 0
        assert set(features) <= {"intercept", "user.age", "user.country=DE", "item.price",
                                 "item.kind=x", "item.kind=y"}
        assert explanation.score == pytest.approx(sum(features.values()) + bonus, abs=1e-9)
    # epsilon = 0: the chosen action is the one with the highest upper confidence bound.
    best = max(choice.explanations, key=lambda e: e.score)
    assert choice.action_id == best.action_id
    assert in_batch.explanations == choice.explanations  # the same model, the same context


def test_a_policy_that_cannot_explain_answers_without_explanations(
        start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"homepage": {"policy": "uniform"}}})
    with DecisionClient(target(app)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, explain=True)

    assert isinstance(choice, Choice) and choice.explanations == []
