"""Replay internals: candidate specs, the exact two-column log, the progressive reward model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from arbiter.evaluation import ESTIMATORS
from arbiter.evaluation.logdata import Round
from arbiter.evaluation.progressive_model import ProgressiveRidge
from arbiter.evaluation.replay import (
    CandidateError,
    CandidateSpec,
    ReplayLog,
    number_buckets,
    parse_candidate,
    replay,
)
from arbiter.policies import Decision, Namespace


def test_candidate_specs_parse_with_and_without_params() -> None:
    assert parse_candidate("u=uniform") == CandidateSpec("u", "uniform", {})
    assert parse_candidate('lin=linucb:{"alpha": 0.25}') == CandidateSpec("lin", "linucb", {"alpha": 0.25})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("linucb", "must look like"),
        ("x=", "must look like"),
        ("x=nope", "unknown policy `nope`"),
        ('x=linucb:{"alpha": -1}', "`alpha`"),
        ('x=linucb:{"beta": 1}', "unknown parameter `beta`"),
        ("x=linucb:{oops", "not valid JSON"),
        ("x=linucb:[1]", "JSON object"),
    ],
)
def test_bad_candidate_specs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(CandidateError, match=message):
        parse_candidate(text)


def _variable_k_log(seed: int, n: int) -> tuple[ReplayLog, dict[str, Any]]:
    """A log whose rounds offer 2..5 actions, as a ReplayLog and as (n, 5) zero-padded arrays."""
    rng = np.random.default_rng(seed)
    k_max = 5
    dist, q_hat = np.zeros((n, k_max)), np.zeros((n, k_max))
    action, pscore = np.zeros(n, dtype=np.intp), np.zeros(n)
    for i in range(n):
        k = int(rng.integers(2, k_max + 1))
        logging = rng.dirichlet(np.ones(k))
        action[i] = rng.choice(k, p=logging)
        pscore[i] = logging[action[i]]
        dist[i, :k] = rng.dirichlet(np.ones(k) * 0.5)
        q_hat[i, :k] = rng.random(k)
    reward = (rng.random(n) < 0.4).astype(float)
    index = np.arange(n)
    log = ReplayLog(
        names=("c",), reward=reward, pscore=pscore, q_logged=q_hat[index, action],
        prob=(dist[index, action],), q_policy=((dist * q_hat).sum(axis=1),), unsupported=(np.zeros(n),),
        variant=np.zeros(n, dtype=np.intp), variants=("default",),
        segment=np.zeros(0, dtype=np.intp), segments=(),
    )
    padded = {"reward": reward, "action": action, "pscore": pscore, "action_dist": dist,
              "estimated_rewards": q_hat}
    return log, padded


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_two_column_log_gives_every_estimator_exactly_the_padded_result(name: str) -> None:
    log, padded = _variable_k_log(seed=3, n=500)
    estimator = ESTIMATORS[name]()

    collapsed = estimator.estimate_policy_value(**log.estimator_inputs(0))
    full = estimator.estimate_policy_value(**padded)
    low_c, high_c = estimator.estimate_interval(**log.estimator_inputs(0), method="normal")
    low_f, high_f = estimator.estimate_interval(**padded, method="normal")

    assert collapsed == pytest.approx(full, rel=1e-12, abs=1e-12)
    assert (low_c, high_c) == pytest.approx((low_f, high_f), rel=1e-9, abs=1e-12)


def _decision(country: str, k: int) -> Decision:
    return Decision(context=(Namespace("user", numbers={"age": 0.5}, categories={"country": country}),),
                    action_ids=tuple(f"a{j}" for j in range(k)),
                    action_features=tuple(
                        (Namespace("item", numbers={"price": float(j)}),) if j % 2 else () for j in range(k)))


def _dense(model: ProgressiveRidge, decision: Decision) -> np.ndarray:
    rows = model.features(decision)
    out = np.zeros((decision.size, model.dim_cap))
    for k in range(decision.size):
        np.add.at(out[k], *rows.action(k))
    return out


def test_progressive_ridge_predicts_from_a_ridge_fit_on_earlier_rounds_only() -> None:
    rng = np.random.default_rng(0)
    model = ProgressiveRidge(l2=0.5, first_refit=100)
    seen_x, seen_r = [], []
    for i in range(400):  # refits after rounds 100, 200 and 400
        decision = _decision(("DE", "FR", "JP")[i % 3], k=2 + i % 3)
        chosen, reward = int(rng.integers(decision.size)), float(rng.random())
        seen_x.append(_dense(model, decision)[chosen])
        seen_r.append(reward)
        model.learn(model.features(decision), chosen, reward)

    probe = _decision("FR", 4)
    x, y = np.array(seen_x), np.array(seen_r)
    d = int(np.flatnonzero(x.any(axis=0)).max()) + 1
    penalty = np.full(d, 0.5)
    penalty[0] = 0.0
    beta = np.linalg.solve(x[:, :d].T @ x[:, :d] + np.diag(penalty), x[:, :d].T @ y)
    expected = _dense(model, probe)[:, :d] @ beta

    np.testing.assert_allclose(model.predict(model.features(probe)), expected, rtol=1e-9, atol=1e-12)


def test_progressive_ridge_predicts_the_running_mean_before_its_first_fit() -> None:
    model = ProgressiveRidge(first_refit=10)
    decision = _decision("DE", 3)
    assert model.predict(model.features(decision)).tolist() == [0.0, 0.0, 0.0]
    model.learn(model.features(decision), 0, 1.0)
    model.learn(model.features(decision), 1, 0.0)
    assert model.predict(model.features(decision)).tolist() == [0.5, 0.5, 0.5]


def _row(k: int, chosen: int, reward: float, device: str) -> Round:
    return Round(
        context=json.dumps([{"name": "user", "numbers": {}, "categories": {"device": device}}]),
        actions=json.dumps([{"id": f"a{j}", "features": []} for j in range(k)]),
        distribution=json.dumps([1.0 / k] * k), chosen_index=chosen, probability=1.0 / k, reward=reward,
        variant="v",
    )


def test_replay_scores_each_round_before_learning_it_and_segments_rounds() -> None:
    rows = [_row(k, 0, 1.0, device) for k, device in [(2, "mobile"), (4, "desktop"), (5, "mobile")]]
    fixed = CandidateSpec("first", "fixed", {"action": "a0"})

    log = replay(rows, [CandidateSpec("u", "uniform"), fixed], segment_by="user.device")

    assert log.prob[0].tolist() == [0.5, 0.25, 0.2]
    assert log.prob[1].tolist() == [1.0, 1.0, 1.0]
    assert log.pscore.tolist() == [0.5, 0.25, 0.2]
    assert log.segments == ("mobile", "desktop") and log.segment.tolist() == [0, 1, 0]
    assert log.q_logged[0] == 0.0  # nothing learned before the first round
    assert log.q_logged[1] == 1.0  # the running mean of the rewards before it


def test_replay_rejects_duplicate_candidate_names() -> None:
    with pytest.raises(CandidateError, match="distinct"):
        replay([], [CandidateSpec("x", "uniform"), CandidateSpec("x", "uniform")])


def _aged(age: float | None, chosen: int = 0) -> Round:
    numbers = {} if age is None else {"age": age}
    return Round(context=json.dumps([{"name": "user", "numbers": numbers, "categories": {}}]),
                 actions=json.dumps([{"id": "a", "features": []}, {"id": "b", "features": []}]),
                 distribution="[0.5, 0.5]", chosen_index=chosen, probability=0.5, reward=1.0, variant="v")


def test_segment_by_a_number_feature_buckets_rounds_by_its_quartiles() -> None:
    ages = [float(a) for a in range(1, 101)]  # quartiles 25.75, 50.5, 75.25
    rounds = [_aged(a) for a in ages] + [_aged(None)]

    log = replay(rounds, [CandidateSpec("u", "uniform")], segment_by="user.age")

    assert log.segments == ("(missing)", "[1.00, 25.8)", "[25.8, 50.5)", "[50.5, 75.2)", "[75.2, 100]")
    counts = np.bincount(log.segment, minlength=len(log.segments))
    assert counts.tolist() == [1, 25, 25, 25, 25]
    assert log.segments[log.segment[0]] == "[1.00, 25.8)" and log.segments[log.segment[99]] == "[75.2, 100]"


def test_number_buckets_merge_repeated_quartiles() -> None:
    buckets, labels = number_buckets(np.array([0.0] * 9 + [1.0]))
    assert labels == ["[0, 1.00]"] and buckets.tolist() == [0] * 10
