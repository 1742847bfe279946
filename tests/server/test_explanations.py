"""``ChooseRequest.explain`` end to end: a real server on SQLite and PostgreSQL.

The serving policy's explanation of each scored action comes back with the decision: LinUCB's
score is its estimate (the sum of its features' contributions) plus the exploration bonus;
nothing is explained unless asked, by a policy that cannot explain itself, or for a retry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import vowpal_wabbit_next as vw

from arbiter.client import Choice, ChooseSpec, DecisionClient
from arbiter.log.engine import create_engine
from arbiter.policies import Decision, Explanation, ExplanationTable, Namespace, create
from arbiter.policies.vw import _SHARED_TO_PREDICT, VowpalWabbit
from arbiter.server.app import App
from arbiter.server.clock import utc_now
from arbiter.server.config import parse_config
from arbiter.server.convert import choose_answer, choose_response
from arbiter.server.domain import ChooseOutcome
from arbiter.server.experiments import Experiment
from arbiter.server.explanations import wire
from arbiter.server.fold import Fold
from arbiter.v1 import decision_pb2 as pb
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


VW = {"experiments": {"homepage": {"policy": "vw"}}}


def replayed_vw(db: str) -> VowpalWabbit:
    """The VW policy of a from-scratch fold of the log (the reference for the live model)."""
    engine = create_engine(db)
    try:
        experiments = {name: Experiment(c) for name, c in parse_config(VW).items()}
        Fold(engine, experiments, utc_now).restore(use_snapshots=False)
        [variant] = experiments["homepage"].variants.values()
        assert isinstance(variant.policy, VowpalWabbit)
        return variant.policy
    finally:
        engine.dispose()


def vw_costs(policy: VowpalWabbit, decision: Decision) -> list[float]:
    """VW's own cost estimate of each action: the partial predictions of its bottom learner,
    read from the debug tree of a copy of the model (the policy's workspace is not touched)."""
    copy = vw.Workspace([], model_data=policy._workspace.serialize(), enable_debug_tree=True)
    _, tree = copy.predict_one(policy._examples(decision, _SHARED_TO_PREDICT))
    while tree.name != "cb_adf":
        [tree] = tree.children
    costs = tree.partial_prediction
    assert isinstance(costs, list)
    return costs


def test_vw_explains_with_weight_times_value(start_server: Callable[..., App]) -> None:
    app = start_server(VW)
    rng = np.random.default_rng(17)
    with DecisionClient(target(app)) as client:
        for i in range(120):  # the reward is the user's age for action c: a model to explain
            age = float(rng.normal())
            context: dict[str, Any] = {"user": {"age": age, "country": ("DE", "FR")[i % 2]}}
            choice = client.choose("homepage", context=context, actions=ACTIONS, unit_id=f"u{i}",
                                   event_id=f"vw{i}")  # the same draws every run
            client.reward(choice.event_id, age if choice.action_id == "c" else 0.0)
        for _ in range(100):  # until every reward is folded into the serving model
            plain = client.choose("homepage", context=CONTEXT, actions=ACTIONS)
            if plain.model_version == "vw@120":
                break
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, explain=True)
    assert choice.model_version == "vw@120"
    app.stop(grace=1)

    decision = Decision(
        (Namespace("user", numbers={"age": 30.0}, categories={"country": "DE"}),),
        tuple("abcd"),
        tuple((Namespace("item", numbers={"price": float(k)}, categories={"kind": ("x", "y")[k % 2]}),)
              for k in range(4)))
    costs = vw_costs(replayed_vw(app.settings.db), decision)
    assert [e.action_id for e in choice.explanations] == list("abcd")
    for explanation, cost in zip(choice.explanations, costs, strict=True):
        features = dict(explanation.contributions)
        # default args: -q sa (user x action features and id), --ignore_linear s, the constant
        # 10 terms, all listed: the constant, the action's 3 (id, price, kind) and the 2 x 3
        # user x action pairs; the user's own are not (--ignore_linear s)
        assert len(features) == 10
        assert "intercept" in features and f"id={explanation.action_id}" in features
        assert "user.age*item.price" in features
        assert not {"user.age", "user.country=DE"} & set(features)
        magnitudes = [abs(c) for _, c in explanation.contributions]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert sum(features.values()) == pytest.approx(explanation.score, rel=1e-12)
        # VW multiplies and sums in float32, the explanation in float64 (of the same float32
        # weights and values): each of the n = 10 products and additions rounds by at most
        # 2^-24 relative, so the two sums differ by at most 2 n 2^-24 sum |terms|.
        bound = 2 * 10 * 2.0**-24 * sum(magnitudes)
        assert explanation.score == pytest.approx(-cost, rel=0, abs=bound)
    # c is rewarded by age, and the user here is 30: c's largest term is the age interaction
    [c] = [e for e in choice.explanations if e.action_id == "c"]
    assert c.contributions[0][0] == "user.age*id=c"
    assert c.score == max(e.score for e in choice.explanations)


def test_a_policy_that_cannot_explain_answers_without_explanations(
        start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"homepage": {"policy": "uniform"}}})
    with DecisionClient(target(app)) as client:
        choice = client.choose("homepage", context=CONTEXT, actions=ACTIONS, explain=True)

    assert isinstance(choice, Choice) and choice.explanations == []


def built(explained: Sequence[Explanation]) -> pb.ChooseResponse:
    """A ChooseResponse with ``explained`` added message by message, field by field."""
    response = pb.ChooseResponse(event_id="e")
    for e in explained:
        response.explanations.add(action_id=e.action_id, score=e.score, contributions=[
            pb.FeatureContribution(feature=f, contribution=c) for f, c in e.contributions])
    return response


def test_explanations_on_the_wire_are_the_message_built_field_by_field() -> None:
    # -0.0 is serialized, +0.0 and the empty string are defaults that are not
    explained = [Explanation("a", 0.75, (("user.age", 0.5), ("é.x=ü", -0.0), ("exploration", 1e300))),
                 Explanation("", 0.0, ()),
                 Explanation("c", -0.0, (("", 1.0), ("user.age", 0.0), ("", 0.0))),
                 Explanation("b" * 300, -2.5, tuple((f"f{i}" * 40, float(i)) for i in range(12)))]

    outcome = ChooseOutcome("e", ("a", "b"), (0.5, 0.5), 0, "v", "m", wire(explained))
    merged = choose_response(outcome)  # a ChooseBatch result's
    answered = choose_answer(outcome)  # a unary Choose's: the bytes

    assert list(merged.explanations) == list(built(explained).explanations)
    assert answered == merged.SerializeToString()
    assert pb.ChooseResponse.FromString(answered) == merged


def test_long_explanations_on_the_wire_are_the_message_built_field_by_field() -> None:
    # lengths of one, two and three varint bytes: an explanation past 16,383 bytes
    explained = (Explanation("a" * 127, 1.0, (("f" * 200, 2.0),)),
                 Explanation("b" * 20_000, -1.0, tuple((f"g{i}" * 3_000, -float(i)) for i in range(3))))

    outcome = ChooseOutcome("e", ("a",), (1.0,), 0, "v", "m", wire(explained))
    merged = choose_response(outcome)

    assert list(merged.explanations) == list(built(explained).explanations)
    assert choose_answer(outcome) == merged.SerializeToString()


@pytest.mark.parametrize("policy", ["linucb", "lints"])
def test_a_linear_policys_columns_on_the_wire_are_its_explanations_built_field_by_field(
        policy: str) -> None:
    # rows of different lengths (own features: 1, 1, 3), a value of -0.0, a contribution of
    # +0.0 (a's model has not learned item.w: left out on the wire), a top that cuts some rows
    # and not others; LinUCB adds its bonus to the score, LinTS not
    linear = create(policy, {})

    def decision(k: int, own: tuple[Namespace, ...] = ()) -> Decision:
        return Decision(
            (Namespace("user", numbers={"age": 0.5 * k, "x": -0.0}, categories={"country": "DE"}),),
            ("a", "b", "c"),
            (own, (Namespace("item", numbers={"price": 1.0 + k}),),
             (Namespace("item", numbers={"price": 2.0, "w": -3.0}, categories={"kind": "x"}),)))
    for k in range(20):
        linear.update(decision(k), k % 3, float(k % 2), 1 / 3)
    made = decision(3, (Namespace("item", numbers={"w": 2.0}),))
    for top in (1, 4, 100):
        table = linear.explain(linear.score([made]), made, 0, top)
        assert isinstance(table, ExplanationTable)
        explained = list(table)
        assert [len(e.contributions) for e in explained] == [min(top, n) + 1 for n in (5, 5, 7)]

        outcome = ChooseOutcome("e", ("a",), (1.0,), 0, "v", "m", wire(table))
        merged = choose_response(outcome)

        assert list(merged.explanations) == list(built(explained).explanations)
        assert choose_answer(outcome) == merged.SerializeToString()
    [a_w] = [value for name, value in explained[0].contributions if name == "item.w"]
    assert a_w == 0.0 and math.copysign(1.0, a_w) == 1.0
