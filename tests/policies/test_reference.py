"""The policy reference is read from the classes: every hyperparameter of every registered policy
carries a range and a meaning, and the range it states is the one its validator enforces."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import PARAMS

from arbiter.policies import POLICIES, PolicyConfigError, create
from arbiter.policies.params import Parameter, describe

NUMBER = r"-?\d+(?:\.\d+)?"
CASES = [(name, p) for name in POLICIES for p in describe(POLICIES[name])]


def _just_below(x: float) -> float:
    return x - 1e-9 * max(1.0, abs(x))


def _just_above(x: float) -> float:
    return x + 1e-9 * max(1.0, abs(x))


def boundaries(parameter: Parameter) -> tuple[list[Any], list[Any]]:
    """Values the stated range accepts and values it refuses, at its edges."""
    text = parameter.range
    if m := re.fullmatch(rf"integer >= ({NUMBER})", text):
        least = int(m[1])
        return [least, least + 1], [least - 1, least + 0.5, True]
    if m := re.fullmatch(rf">= ({NUMBER})", text):
        low = float(m[1])
        return [low, _just_above(low)], [_just_below(low), float("nan"), True]
    if m := re.fullmatch(rf"> ({NUMBER})", text):
        low = float(m[1])
        return [_just_above(low)], [low, _just_below(low), float("nan"), True]
    if m := re.fullmatch(rf"\[({NUMBER}), ({NUMBER})\]", text):
        low, high = float(m[1]), float(m[2])
        return [low, high], [_just_below(low), _just_above(high), True]
    if m := re.fullmatch(rf"\(({NUMBER}), ({NUMBER})\]", text):
        low, high = float(m[1]), float(m[2])
        return [_just_above(low), high], [low, _just_below(low), _just_above(high), True]
    if text == "true or false":
        return [True, False], [1, "true"]
    assert parameter.type == "str", f"range {text!r} of `{parameter.name}` is not one this test reads"
    return [], ["", 1]


@pytest.mark.parametrize(("name", "parameter"), CASES, ids=[f"{n}.{p.name}" for n, p in CASES])
def test_the_stated_range_is_what_the_validator_enforces(name: str, parameter: Parameter) -> None:
    accepted, refused = boundaries(parameter)
    base = {k: v for k, v in PARAMS.get(name, {}).items() if k != parameter.name}
    for value in accepted:
        create(name, {**base, parameter.name: value})
    for value in refused:
        with pytest.raises(PolicyConfigError, match=f"`{parameter.name}`"):
            create(name, {**base, parameter.name: value})


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_parameter_has_a_default_a_range_and_one_line_of_meaning(name: str) -> None:
    cls = POLICIES[name]
    described = describe(cls)
    required = {k: v for k, v in PARAMS.get(name, {}).items() if k in cls.required_parameter_names()}
    defaults = create(name, required).params()
    assert tuple(p.name for p in described) == cls.parameter_names()
    for p in described:
        assert p.range and p.help and "\n" not in p.help
        assert p.required == (p.name in cls.required_parameter_names())
        if not p.required:
            assert defaults[p.name] == p.default
    assert getattr(cls, "summary", ""), f"{name} has no one-line summary"


def test_a_parameter_without_metadata_is_refused_by_the_reference() -> None:
    from dataclasses import dataclass

    from arbiter.policies.params import Hyperparameters

    @dataclass(kw_only=True)
    class Undocumented(Hyperparameters):
        gamma: float = 0.5

    with pytest.raises(TypeError, match=r"Undocumented.gamma has no doc\(\) metadata"):
        describe(Undocumented)
