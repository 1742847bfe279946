"""Creating and restoring policies by registry name, with hyperparameter validation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import decision

from arbiter.policies import POLICIES, PolicyConfigError, create, restore


def test_unknown_policy_lists_the_known_ones() -> None:
    with pytest.raises(PolicyConfigError, match="unknown policy `linucbb`") as error:
        create("linucbb", {})
    for name in POLICIES:
        assert name in str(error.value)


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(PolicyConfigError, match="unknown parameter `alpah` for policy `linucb`"):
        create("linucb", {"alpah": 1.0})


def test_missing_required_parameter_is_named() -> None:
    with pytest.raises(PolicyConfigError, match="missing parameter `action` for policy `fixed`"):
        create("fixed", {})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("linucb", {"alpha": -1.0}, "`alpha` must be >= 0, got -1.0"),
        ("linucb", {"epsilon": 1.5}, "`epsilon` must be <= 1, got 1.5"),
        ("linucb", {"l2": 0}, "`l2` must be > 0 and finite, got 0"),
        ("linucb", {"alpha": "high"}, "`alpha` must be a number, got 'high'"),
        ("linucb", {"alpha": True}, "`alpha` must be a number, got True"),
        ("linucb", {"alpha": float("nan")}, "`alpha` must be >= 0, got nan"),
        ("linucb", {"max_features": 1}, "`max_features` must be >= 2, got 1"),
        ("lints", {"samples": 0}, "`samples` must be >= 1, got 0"),
        ("lints", {"samples": 2.5}, "`samples` must be an integer, got 2.5"),
        ("lints", {"v": -0.1}, "`v` must be >= 0, got -0.1"),
        ("thompson", {"prior_alpha": 0.0}, "`prior_alpha` must be > 0 and finite, got 0.0"),
        ("epsilon_greedy", {"epsilon": -0.1}, "`epsilon` must be >= 0, got -0.1"),
        ("fixed", {"action": ""}, "`action` must be a non-empty string, got ''"),
        ("fixed", {"action": "a", "floor": 2}, "`floor` must be <= 1, got 2"),
        ("vw", {"args": "--cb_adf"}, "`args` must contain --cb_explore_adf"),
        ("vw", {"args": "--cb_explore_adf --no_such_option"}, "`args` rejected by VW"),
    ],
)
def test_invalid_values_are_rejected_with_field_and_value(
    name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(PolicyConfigError) as error:
        create(name, params)
    assert message in str(error.value)


def test_integers_are_accepted_for_real_parameters() -> None:
    policy = create("linucb", {"alpha": 1, "l2": 2})
    assert policy.params()["alpha"] == 1.0
    assert isinstance(policy.params()["alpha"], float)


def test_params_report_every_hyperparameter() -> None:
    assert create("linucb", {"alpha": 0.5}).params() == {
        "l2": 1.0, "max_features": 256, "decay": 1.0, "reset_on_drift": True, "drift_delta": 0.1,
        "drift_threshold": 50.0, "alpha": 0.5, "epsilon": 0.01, "hybrid": False
    }  # fmt: skip
    assert create("fixed", {"action": "a"}).params() == {"action": "a", "floor": 0.0}


def test_restore_refuses_a_snapshot_of_another_policy() -> None:
    data = create("linucb", {}).to_bytes()
    with pytest.raises(ValueError, match="snapshot is of policy `linucb`, expected `lints`"):
        restore("lints", data)


def test_restore_refuses_truncated_data() -> None:
    fresh = create("lints", {})
    trained = create("lints", {})
    trained.update(decision(np.array([0.1]), ("a",)), 0, 1.0, 1.0)
    for data in (fresh.to_bytes(), trained.to_bytes()):
        with pytest.raises(ValueError, match="truncated"):
            restore("lints", data[:-3])
        with pytest.raises(ValueError, match="trailing"):
            restore("lints", data + b"\0")
    with pytest.raises(ValueError, match="not an Arbiter"):
        restore("lints", b"garbage-garbage")


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_invalid_feedback_leaves_the_policy_unchanged(name: str) -> None:
    policy = create(name, {"action": "a"} if name == "fixed" else {})
    d = decision(np.array([0.1, 0.2]), ("a", "b"))
    before = policy.to_bytes()

    for chosen, reward in ((2, 1.0), (-1, 1.0), (0, float("nan")), (0, float("inf"))):
        with pytest.raises(ValueError):
            policy.update(d, chosen, reward, 0.5)

    assert policy.to_bytes() == before
