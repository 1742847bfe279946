"""Every policy is a pure fold of the learned events applied to it (DESIGN.md, "Many servers, one log").

Replicas predict different amounts, and a recovery replays the learned events with none of the
predictions the crashed process made; both must end in exactly the state of a policy that only
learned. So for the same learned events, predictions interleaved anywhere (on the decision about
to be learned, on unseen features and actions) and a ``to_bytes``/``from_bytes`` round trip
midway leave ``to_bytes()`` and every later distribution bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import PARAMS, VARIANTS, decision

from arbiter.policies import POLICIES, Decision, Namespace, Policy, create, restore
from arbiter.policies.linear import LinearPolicy

VW_VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("vw", {"args": "--cb_explore_adf --squarecb -q sa"}),
    ("vw", {"args": "--cb_explore_adf --epsilon 0.1 --sgd -q sa"}),
]
"""Other VW reductions, and plain SGD, whose learning rate reads VW's counter ``t``."""

DRIFT_VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("lints", {"decay": 0.95, "drift_threshold": 3.0}),
    ("linucb", {"drift_threshold": 3.0}),
]
"""A drift test so touchy that these reset their models now and then within the events."""

CONFIGS = ([(name, PARAMS.get(name, {})) for name in sorted(POLICIES)] + VARIANTS + VW_VARIANTS
           + DRIFT_VARIANTS)
IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in CONFIGS]

EVENTS = 240
CHECK_EVERY = 60
"""``to_bytes()`` is compared after every ``CHECK_EVERY`` learned events."""


@dataclass(frozen=True)
class Learned:
    """One learned event, as the log holds it: the decision, the chosen index, reward, propensity."""

    decision: Decision
    chosen: int
    reward: float
    probability: float


def some_decision(rng: np.random.Generator, *, unseen: bool = False) -> Decision:
    """2-5 of the actions a0..a5 in any order, some with a price; ``unseen`` adds parts never learned."""
    ids = tuple(f"a{j}" for j in rng.permutation(6)[: rng.integers(2, 6)])
    price = {a: float(rng.integers(1, 9)) for a in ids if rng.random() < 0.5}
    if not unseen:
        return decision(rng.random(3), ids, segment=str(rng.choice(["web", "app"])), price=price)
    d = decision(rng.random(4), (*ids, f"new{rng.integers(1000)}"), segment="kiosk", price=price)
    extra = Namespace("device", numbers={"battery": float(rng.random())}, categories={"os": "x"})
    return Decision((*d.context, extra), d.action_ids, d.action_features)


def learned_events(seed: int, n: int) -> list[Learned]:
    """Fixed events, independent of any policy's predictions (the log decided them)."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        d = some_decision(rng)
        chosen = int(rng.integers(d.size))
        reward = float(rng.random() < 0.4 + 0.1 * chosen)
        events.append(Learned(d, chosen, reward, float(rng.uniform(0.05, 1.0))))
    return events


def probes(seed: int, n: int) -> list[Decision]:
    rng = np.random.default_rng(seed)
    return [some_decision(rng, unseen=bool(i % 2)) for i in range(n)]


History = Callable[[Policy, str, list[Learned]], Iterator[Policy]]


def only_learn(policy: Policy, name: str, events: list[Learned]) -> Iterator[Policy]:
    """Apply ``events``; yield the policy every ``CHECK_EVERY`` events."""
    for i, e in enumerate(events, 1):
        policy.update(e.decision, e.chosen, e.reward, e.probability)
        if i % CHECK_EVERY == 0:
            yield policy


def learn_and_predict(policy: Policy, name: str, events: list[Learned]) -> Iterator[Policy]:
    """The same events with 0-4 predictions before each: on it and on the one just learned (the same
    objects) and on decisions with unseen parts."""
    rng = np.random.default_rng(99)
    chatter = iter(probes(100, 5 * len(events)))
    previous = events[0].decision
    for i, e in enumerate(events, 1):
        for _ in range(rng.integers(5)):
            u = rng.random()
            d = e.decision if u < 0.2 else previous if u < 0.4 else next(chatter)
            policy.distribution(d, np.random.default_rng(int(rng.integers(1 << 30))))
        policy.update(e.decision, e.chosen, e.reward, e.probability)
        previous = e.decision
        if i % CHECK_EVERY == 0:
            yield policy


def restore_midway(policy: Policy, name: str, events: list[Learned]) -> Iterator[Policy]:
    """The same events and predictions; at every check the policy is replaced by its restored snapshot."""
    for start in range(0, len(events), CHECK_EVERY):
        for _ in learn_and_predict(policy, name, events[start : start + CHECK_EVERY]):
            policy = restore(name, policy.to_bytes())
            yield policy


HISTORIES = [pytest.param(h, id=h.__name__) for h in (learn_and_predict, restore_midway)]


@pytest.mark.parametrize("history", HISTORIES)
@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_state_is_a_pure_fold_of_the_learned_events(
    name: str, params: dict[str, object], history: History
) -> None:
    events = learned_events(7, EVENTS)
    checks = 0
    for folded, other in zip(
        only_learn(create(name, params), name, events),
        history(create(name, params), name, events),
        strict=True,
    ):
        checks += 1
        assert other.to_bytes() == folded.to_bytes(), f"to_bytes differs after {checks * CHECK_EVERY} events"
    assert checks == EVENTS // CHECK_EVERY
    if (name, params) in DRIFT_VARIANTS:
        assert isinstance(folded, LinearPolicy) and isinstance(other, LinearPolicy)
        assert folded.resets > 0, "the drift test never reset the models: no reset was folded"
        assert other.resets == folded.resets

    # Later distributions (themselves predictions, on seen and unseen parts) are bit-identical, and
    # learning more after them still gives the same state.
    for i, d in enumerate(probes(5, 40)):
        np.testing.assert_array_equal(
            other.distribution(d, np.random.default_rng(i)), folded.distribution(d, np.random.default_rng(i))
        )
    for e in learned_events(8, 30):
        for policy in (folded, other):
            policy.update(e.decision, e.chosen, e.reward, e.probability)
    assert other.to_bytes() == folded.to_bytes()
    for i, d in enumerate(probes(6, 20)):
        np.testing.assert_array_equal(
            other.distribution(d, np.random.default_rng(i)), folded.distribution(d, np.random.default_rng(i))
        )
