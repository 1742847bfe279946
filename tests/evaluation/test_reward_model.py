"""Cross-fitted reward model: no leakage, correct fits, seeded folds, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arbiter.evaluation import EvaluationInputError, RewardModel, fold_assignment


def _pair_features(seed: int, n: int = 400, k: int = 4, d: int = 3) -> dict[str, Any]:
    """Features (n, K, d), logged actions and rewards from a linear truth plus noise 0.1."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, k, d))
    beta = np.array([0.5, -1.0, 2.0])[:d]
    action = rng.integers(0, k, size=n)
    truth = 0.3 + features @ beta
    reward = truth[np.arange(n), action] + rng.normal(scale=0.1, size=n)
    return {"features": features, "action": action, "reward": reward, "truth": truth}


def _binary_context(seed: int, n: int = 600, k: int = 3, d: int = 2) -> dict[str, Any]:
    """Contexts (n, d), and 0/1 rewards from a logistic truth per action."""
    rng = np.random.default_rng(seed)
    context = rng.normal(size=(n, d))
    coef = rng.normal(size=(k, d))
    action = rng.integers(0, k, size=n)
    p = 1.0 / (1.0 + np.exp(-(context @ coef.T)))
    reward = (rng.random(n) < p[np.arange(n), action]).astype(np.float64)
    return {"context": context, "action": action, "reward": reward, "truth": p}


# --------------------------------------------------------------------------- no leakage


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_a_rows_prediction_ignores_its_own_reward(kind: str) -> None:
    data = _binary_context(0)
    model = RewardModel(kind=kind, n_folds=4, seed=3)  # type: ignore[arg-type]
    extreme = 1e6 if kind == "ridge" else 1.0 - data["reward"][17]
    before_pairs = model.fit_predict(
        features=np.repeat(data["context"][:, None, :], 3, axis=1),
        action=data["action"],
        reward=data["reward"],
    )
    before = model.fit_predict_per_action(
        context=data["context"], action=data["action"], reward=data["reward"], n_actions=3
    )
    changed = data["reward"].copy()
    changed[17] = extreme
    after_pairs = model.fit_predict(
        features=np.repeat(data["context"][:, None, :], 3, axis=1),
        action=data["action"],
        reward=changed,
    )
    after = model.fit_predict_per_action(
        context=data["context"], action=data["action"], reward=changed, n_actions=3
    )

    fold = fold_assignment(600, 4, 3)
    same_fold = fold == fold[17]
    for old, new in ((before, after), (before_pairs, after_pairs)):
        np.testing.assert_array_equal(new[same_fold], old[same_fold])  # incl. row 17 itself
        assert not np.allclose(new[~same_fold], old[~same_fold])  # the others did learn it


# --------------------------------------------------------------------------- fits


def test_ridge_recovers_a_linear_truth() -> None:
    data = _pair_features(1, n=2000)
    q_hat = RewardModel(kind="ridge", l2=1e-3).fit_predict(
        features=data["features"], action=data["action"], reward=data["reward"]
    )
    assert q_hat.shape == data["truth"].shape
    # With noise sd 0.1 and 1600 training rows per fold the coefficients are within ~0.01;
    # the predictions' error (features ~ N(0, 1) in 3 dimensions) is a few hundredths at most.
    assert np.max(np.abs(q_hat - data["truth"])) < 0.1


def test_ridge_matches_scikit_learn_fold_by_fold() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    data = _pair_features(2)
    n, k, d = data["features"].shape
    q_hat = RewardModel(kind="ridge", l2=2.5, n_folds=3, seed=9).fit_predict(
        features=data["features"], action=data["action"], reward=data["reward"]
    )
    folds = fold_assignment(n, 3, 9)
    logged = data["features"][np.arange(n), data["action"]]
    for f in range(3):
        train, test = folds != f, folds == f
        reference = linear_model.Ridge(alpha=2.5).fit(logged[train], data["reward"][train])
        expected = reference.predict(data["features"][test].reshape(-1, d)).reshape(-1, k)
        np.testing.assert_allclose(q_hat[test], expected, atol=1e-9)


def test_logistic_matches_scikit_learn_per_action() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    data = _binary_context(3)
    l2 = 0.5
    q_hat = RewardModel(kind="logistic", l2=l2, n_folds=2, seed=1).fit_predict_per_action(
        context=data["context"], action=data["action"], reward=data["reward"], n_actions=3
    )
    folds = fold_assignment(600, 2, 1)
    for f in range(2):
        for a in range(3):
            rows = (folds != f) & (data["action"] == a)
            reference = linear_model.LogisticRegression(C=1.0 / l2, tol=1e-12, max_iter=10_000)
            reference.fit(data["context"][rows], data["reward"][rows])
            expected = reference.predict_proba(data["context"][folds == f])[:, 1]
            np.testing.assert_allclose(q_hat[folds == f, a], expected, atol=1e-6)
    assert np.all((q_hat > 0) & (q_hat < 1))


def test_action_never_logged_in_the_other_folds_gets_their_mean_reward() -> None:
    context = np.arange(8, dtype=np.float64).reshape(8, 1)
    action = np.zeros(8, dtype=np.int64)
    reward = np.linspace(0, 1, 8)
    q_hat = RewardModel(n_folds=2, seed=0).fit_predict_per_action(
        context=context, action=action, reward=reward, n_actions=2
    )
    folds = fold_assignment(8, 2, 0)
    for f in range(2):
        np.testing.assert_allclose(q_hat[folds == f, 1], reward[folds != f].mean())


# --------------------------------------------------------------------------- folds


def test_fold_assignment_is_balanced_seeded_and_shuffled() -> None:
    folds = fold_assignment(103, 5, seed=4)
    counts = np.bincount(folds, minlength=5)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103
    np.testing.assert_array_equal(folds, fold_assignment(103, 5, seed=4))
    assert not np.array_equal(folds, fold_assignment(103, 5, seed=5))
    assert not np.array_equal(folds, np.arange(103) % 5)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"kind": "forest"}, "`kind`"),
        ({"l2": -1.0}, "`l2`"),
        ({"l2": float("nan")}, "`l2`"),
        ({"n_folds": 1}, "`n_folds`"),
        ({"max_iter": 0}, "`max_iter`"),
        ({"tol": 0.0}, "`tol`"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, Any], argument: str) -> None:
    with pytest.raises(EvaluationInputError, match=argument):
        RewardModel(**settings)


def test_bad_inputs_name_the_argument() -> None:
    data = _pair_features(4, n=20)
    model = RewardModel()
    good = {k: data[k] for k in ("features", "action", "reward")}
    cases = [
        ({**good, "features": data["features"][:, 0]}, "`features` must be 3-dimensional"),
        ({**good, "features": data["features"][:10]}, "`features` has 10 rows"),
        ({**good, "action": data["action"] + 10}, "`action` at row 0"),
        ({**good, "reward": np.where(np.arange(20) == 3, np.nan, 0.0)}, "`reward` contains NaN"),
        ({**good, "reward": np.zeros(3)}, "`reward` has 3 rows, fewer than `n_folds`"),
    ]
    for inputs, argument in cases:
        with pytest.raises(EvaluationInputError, match=argument):
            model.fit_predict(**inputs)
    with pytest.raises(EvaluationInputError, match="`reward` must be in \\[0, 1\\]"):
        RewardModel(kind="logistic").fit_predict(**good)
    with pytest.raises(EvaluationInputError, match="`n_actions`"):
        model.fit_predict_per_action(
            context=np.zeros((20, 2)), action=data["action"], reward=data["reward"], n_actions=0
        )
