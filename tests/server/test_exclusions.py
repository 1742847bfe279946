"""``ChooseRequest.excluded_action_ids`` end to end: a real server on SQLite and PostgreSQL.

Excluded actions are offered (logged with every other action, probability 0) but never chosen;
the policies score the remaining actions, so the rest of the distribution sums to 1; shadows
get the same exclusions; excluding every action, an action not offered, or one twice is
INVALID_ARGUMENT naming the field, and logs nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import pytest

from arbiter.client import Choice, ChooseSpec, DecisionClient, InvalidArgumentError
from arbiter.log.schema import decisions
from arbiter.server.app import App
from tests.conftest import count_rows
from tests.server.test_choose_batch import choices
from tests.server.test_choose_reward import logged_rows, target

ACTIONS = ["a", "b", "c", "d", "e"]
EXCLUDED = ["b", "d"]


def test_excluded_actions_are_never_chosen_and_the_rest_is_uniform_exactly(
        start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"homepage": {"policy": "uniform"}}})
    draws = 600
    with DecisionClient(target(app)) as client:
        made = [choice for start in range(0, draws, 200) for choice in choices(client.choose_batch(
            [ChooseSpec("homepage", ACTIONS, event_id=f"ex-{start + i}",
                        excluded_action_ids=EXCLUDED) for i in range(200)]))]

    counts = Counter(choice.action_id for choice in made)
    assert set(counts) <= {"a", "c", "e"}
    # Each remaining action is drawn Binomial(n, 1/3) times: within 5 standard deviations.
    sd = math.sqrt(draws * (1 / 3) * (2 / 3))
    assert all(abs(counts[a] - draws / 3) <= 5 * sd for a in "ace"), counts
    for choice in made:
        ranking = dict(choice.ranking)
        assert ranking == {"a": 1 / 3, "c": 1 / 3, "e": 1 / 3, "b": 0.0, "d": 0.0}
        assert choice.ranking[-2:] == [("b", 0.0), ("d", 0.0)]  # offered, last
    rows = logged_rows(app, decisions)
    assert len(rows) == draws
    for row in rows:
        assert [a["id"] for a in row["actions"]] == ACTIONS  # every offered action is logged
        assert row["distribution"] == [1 / 3, 0.0, 1 / 3, 0.0, 1 / 3]


def test_a_policy_scores_the_remaining_actions_as_if_only_they_were_offered(
        start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {"homepage": {
        "control": "main",
        "variants": [{"name": "main", "policy": "linucb", "params": {"alpha": 0.5}},
                     {"name": "ts", "policy": "lints", "shadow": True}]}}})
    context = {"user": {"age": 30, "country": "DE"}}
    actions = [{"id": a, "features": {"item": {"price": float(k)}}} for k, a in enumerate(ACTIONS)]
    with DecisionClient(target(app)) as client:
        for i in range(40):  # something learned, so the scores differ between actions
            choice = client.choose("homepage", context=context, actions=actions, unit_id=f"u{i}")
            client.reward(choice.event_id, float(choice.action_id in {"b", "c"}))
        excluded = client.choose("homepage", context=context, actions=actions,
                                 excluded_action_ids=EXCLUDED)
        remaining = client.choose("homepage", context=context,
                                  actions=[a for a in actions if a["id"] not in EXCLUDED])

    assert excluded.action_id not in EXCLUDED
    assert excluded.model_version == remaining.model_version
    # LinUCB is deterministic given the model: the same distribution over a, c, e, and 0s.
    assert dict(excluded.ranking) == {**dict(remaining.ranking), "b": 0.0, "d": 0.0}
    [row] = [r for r in logged_rows(app, decisions) if r["event_id"] == excluded.event_id]
    shadow = row["shadow"]["ts"]
    assert shadow[1] == shadow[3] == 0.0  # the shadow got the same exclusions
    assert math.isclose(sum(shadow), 1.0, abs_tol=1e-12)
    assert row["probability"] == excluded.probability > 0


def test_a_decision_with_exclusions_is_learned(server: App) -> None:
    with DecisionClient(target(server)) as client:
        choice = client.choose("homepage", actions=ACTIONS, excluded_action_ids=["a"])
        assert client.reward(choice.event_id, 1.0).learned
        after = client.choose("homepage", actions=ACTIONS)

    assert after.model_version != choice.model_version


@pytest.mark.parametrize(("excluded", "field", "problem"), [
    (ACTIONS, "`excluded_action_ids`", "excludes all 5 offered actions; at least one must remain"),
    (["a", "z"], "`excluded_action_ids[1]`", "names no offered action: 'z'"),
    (["c", "c"], "`excluded_action_ids[1]`", "repeats the action id 'c'"),
    (["x" * 300], "`excluded_action_ids[0]`", "must be at most 256 characters"),
])
def test_bad_exclusions_are_invalid_argument_and_change_nothing(
        server: App, excluded: list[str], field: str, problem: str) -> None:
    before = count_rows(server.settings.db)
    with DecisionClient(target(server)) as client:
        with pytest.raises(InvalidArgumentError) as refused:
            client.choose("homepage", actions=ACTIONS, excluded_action_ids=excluded)
        [in_batch] = client.choose_batch([ChooseSpec("homepage", ACTIONS,
                                                     excluded_action_ids=excluded)])

    assert refused.value.message == f"{field} {problem}"
    assert isinstance(in_batch, InvalidArgumentError) and in_batch.message == refused.value.message
    assert not isinstance(in_batch, Choice)
    assert count_rows(server.settings.db) == before


def test_apprentice_and_logging_modes_serve_only_actions_not_excluded(
        start_server: Callable[..., App]) -> None:
    app = start_server({"experiments": {
        "apprentice": {"policy": "linucb", "mode": "apprentice"},
        "logging": {"policy": "linucb", "mode": "logging", "logging_epsilon": 0.3}}})
    with DecisionClient(target(app)) as client:
        # No baseline named: the first action not excluded is the baseline.
        [served] = choices(client.choose_batch([ChooseSpec("apprentice", ACTIONS,
                                                           excluded_action_ids=["a"])]))
        logged = choices(client.choose_batch([ChooseSpec("logging", ACTIONS, event_id=f"l{i}",
                                                         excluded_action_ids=EXCLUDED)
                                              for i in range(100)]))
        with pytest.raises(InvalidArgumentError) as refused:
            client.choose("apprentice", actions=ACTIONS, excluded_action_ids=["a"],
                          baseline_action_id="a")

    assert (served.action_id, served.probability) == ("b", 1.0)
    assert dict(served.ranking)["a"] == 0.0
    floor = 0.3 / 3  # over the 3 actions not excluded
    for choice in logged:
        assert choice.action_id not in EXCLUDED
        assert dict(choice.ranking) == pytest.approx(
            {"a": 1 - 0.3 + floor, "c": floor, "e": floor, "b": 0.0, "d": 0.0})
    assert refused.value.message == "`baseline_action_id` 'a' is excluded (excluded_action_ids)"
