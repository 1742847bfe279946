"""The log's JSON of a decision's actions: ``[{"id", "features": [{"name", "numbers",
"categories"}]}]`` — the text readers of the log (exports, SQL's JSON functions, older
builds) rely on — and back to the same decision."""

from __future__ import annotations

import json

import msgspec

from arbiter.log.codec import actions_to_json, decision_from_json
from arbiter.policies import Decision, Namespace


def test_actions_are_logged_as_objects_of_id_and_features_and_read_back() -> None:
    made = Decision(
        context=(Namespace("user", {"age": 31.0}, {"country": "DE"}),),
        action_ids=("a", "b", "c"),
        action_features=((Namespace("item", {"price": 9.5, "n": -1e-300}, {"kind": "x"}),
                          Namespace("extra", categories={"é": "ü\"\\"})),
                         (), (Namespace("item", {"price": 2.0}),)))

    text = msgspec.json.encode(actions_to_json(made)).decode()

    assert json.loads(text) == [
        {"id": "a", "features": [
            {"name": "item", "numbers": {"price": 9.5, "n": -1e-300}, "categories": {"kind": "x"}},
            {"name": "extra", "numbers": {}, "categories": {"é": "ü\"\\"}}]},
        {"id": "b", "features": []},
        {"id": "c", "features": [{"name": "item", "numbers": {"price": 2.0}, "categories": {}}]}]
    assert text.startswith('[{"id":"a","features":[{"name":"item",')  # the keys in this order
    context = msgspec.json.decode(msgspec.json.encode(made.context))
    assert decision_from_json(context, msgspec.json.decode(text)) == made
