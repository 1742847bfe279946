"""Block scoring (``score(decisions)``, what ChooseBatch uses) gives each decision the
distribution ``distribution(decision, rng)`` gives it, with the same draws from the same RNG —
for every linear policy, over decisions with unknown actions, features without a column, no
features of their own and different numbers of actions — and changes no learned state."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from conftest import decision, linear_rounds

from arbiter.policies import BlockScoring, Decision, Explaining, Namespace, create
from arbiter.policies.explore import (
    checked,
    checked_blocks,
    greedy_with_floor,
    greedy_with_floor_blocks,
)

LINEAR = [("linucb", {}), ("linucb", {"hybrid": True}), ("linucb", {"alpha": 0.0}),
          ("lints", {}), ("epsilon_greedy", {})]


def mixed_decisions(seed: int, n: int) -> list[Decision]:
    """Decisions of 1 to 6 actions, some never learned from, some with features never seen."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 7))
        ids = tuple(f"a{j}" if j < 4 else f"new{j}" for j in rng.permutation(6)[:k])
        price = {a: float(rng.normal()) for a in ids} if i % 2 else None
        made = decision(rng.random(4), ids, segment=("web", "app", "tv")[i % 3], price=price)
        if i % 5 == 0:  # a namespace the models have never seen
            made = Decision((*made.context, Namespace("fresh", numbers={"z": 2.0})),
                            made.action_ids, made.action_features)
        out.append(made)
    return out


def trained(name: str, params: dict[str, object]) -> BlockScoring:
    """Policy ``name`` after 200 rounds of learning."""
    policy = create(name, params)
    assert isinstance(policy, BlockScoring)
    train = np.random.default_rng(1)
    for r in linear_rounds(0, 200):
        chosen = int(train.integers(r.decision.size))
        policy.update(r.decision, chosen, float(train.random() < r.success[chosen]), 0.25)
    return policy


@pytest.mark.parametrize(("name", "params"), LINEAR,
                         ids=[f"{n}-{p}" if p else n for n, p in LINEAR])
def test_a_block_gives_each_decision_its_own_distribution(name: str, params: dict[str, object]) -> None:
    policy = trained(name, params)
    state = policy.to_bytes()
    decisions = mixed_decisions(2, 60)

    block = policy.score(decisions)
    together = [block.distribution(i, np.random.default_rng(100 + i)) for i in range(len(decisions))]
    alone = [policy.distribution(d, np.random.default_rng(100 + i)) for i, d in enumerate(decisions)]

    for mine, expected in zip(together, alone, strict=True):
        assert mine.shape == expected.shape
        np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-15)
    assert policy.to_bytes() == state  # scoring learned nothing


@pytest.mark.parametrize(("name", "params"), LINEAR,
                         ids=[f"{n}-{p}" if p else n for n, p in LINEAR])
def test_decisions_sharing_their_actions_score_as_if_each_had_its_own(
        name: str, params: dict[str, object]) -> None:
    """A batch's requests that share their actions hold one ``action_features`` object
    (ChooseBatch converts them once), which the block encodes once: bit for bit the scores
    of the same decisions each holding a copy."""
    policy = trained(name, params)
    offers = mixed_decisions(4, 3)  # three sets of actions, one never seen among them
    contexts = mixed_decisions(5, 24)

    def copied(features: tuple[tuple[Namespace, ...], ...]) -> tuple[tuple[Namespace, ...], ...]:
        return tuple(tuple(Namespace(ns.name, dict(ns.numbers), dict(ns.categories))
                           for ns in group) for group in features)

    offered = [offers[i % 3] for i in range(len(contexts))]
    shared = [Decision(c.context, o.action_ids, o.action_features)
              for c, o in zip(contexts, offered, strict=True)]
    own = [Decision(c.context, o.action_ids, copied(o.action_features))
           for c, o in zip(contexts, offered, strict=True)]
    assert shared[0].action_features is shared[3].action_features
    assert own[0].action_features is not own[3].action_features

    one, other = policy.score(shared), policy.score(own)
    for i in range(len(contexts)):
        assert np.array_equal(one.distribution(i, np.random.default_rng(i)),
                              other.distribution(i, np.random.default_rng(i)))


@pytest.mark.parametrize(("name", "params"), [("linucb", {}), ("linucb", {"max_features": 6})],
                         ids=["linucb", "linucb-hashed"])
def test_the_block_holds_each_decisions_own_design_matrix_bit_for_bit(
        name: str, params: dict[str, object]) -> None:
    """The block's flattened features (``Featurizer.block``) give the design matrix and the
    unseen norms of each decision encoded on its own, to the bit: over learned and unknown
    features, several context namespaces, actions with none, shared ``action_features``
    objects, and a context with features the model has never seen in front of shared
    actions (whose unseen norm is that context's, not the first sharer's)."""
    policy = trained(name, params)
    featurizer, width = policy._featurizer, policy._ridge.width  # type: ignore[attr-defined]
    decisions = mixed_decisions(6, 30)
    offered = decisions[1]  # its actions, held by several decisions with other contexts
    decisions += [Decision(made.context, offered.action_ids, offered.action_features)
                  for made in decisions[::4]]
    decisions.append(Decision((), offered.action_ids, offered.action_features))

    sizes = [made.size for made in decisions]
    block = featurizer.block(decisions)
    matrix = block.matrix(sizes, width)

    alone = [featurizer.encode(made, grow=False) for made in decisions]
    expected = np.vstack([np.broadcast_to(rows.matrix(width), (k, width))
                          for rows, k in zip(alone, sizes, strict=True)])
    assert np.array_equal(matrix, expected)
    if params:  # hashed: every feature has a column
        assert all(rows.unseen is None for rows in alone) and block.unseen is None
        return
    assert any(rows.unseen is not None for rows in alone)
    assert any(rows.unseen is None for rows in alone)
    unseen = np.concatenate([rows.unseen if rows.unseen is not None else np.zeros(k)
                             for rows, k in zip(alone, sizes, strict=True)])
    assert block.unseen is not None and np.array_equal(block.unseen, unseen)


def test_a_block_whose_features_all_have_columns_has_no_unseen_norms() -> None:
    policy = trained("linucb", {})
    learned = [made for made in mixed_decisions(7, 40)
               if policy._featurizer.encode(made, grow=False).unseen is None]  # type: ignore[attr-defined]
    assert len(learned) >= 5
    assert policy._featurizer.block(learned).unseen is None  # type: ignore[attr-defined]


def test_the_block_greedy_is_the_greedy_of_each_segment_exactly() -> None:
    rng = np.random.default_rng(3)
    sizes = [1, 3, 5, 2, 4]
    scores = np.round(rng.normal(size=sum(sizes)), 1)  # rounding makes ties
    scores[4] = np.nan
    offsets = np.cumsum([0, *sizes])

    block = greedy_with_floor_blocks(scores, offsets, 0.1)

    for start, end in pairwise(offsets):
        assert block[start:end].tolist() == greedy_with_floor(scores[start:end], 0.1).tolist()


def test_segments_passed_whole_by_the_block_check_are_those_checked_returns_as_they_are() -> None:
    """``checked_blocks`` may only say "fine" where ``checked`` returns the segment itself:
    finite, non-negative, summing to 1 within rounding — over sums just inside and outside
    ``checked``'s 1e-9, NaNs, infinities, negatives and zeros."""
    rng = np.random.default_rng(8)
    segments = []
    for i in range(400):
        p = rng.dirichlet(np.ones(int(rng.integers(1, 12))))
        kind = i % 8
        if kind == 1:
            p = p * (1 + rng.choice([-1, 1]) * 10 ** rng.uniform(-12, -8))
        elif kind == 2:
            p[rng.integers(len(p))] = np.nan
        elif kind == 3:
            p[rng.integers(len(p))] = np.inf
        elif kind == 4 and len(p) > 1:
            p[0], p[1] = -1e-3, p[1] + 1e-3
        elif kind == 5:
            p = np.zeros(len(p))
        segments.append(p)
    block = np.concatenate(segments)
    offsets = np.cumsum([0, *map(len, segments)])

    fine = checked_blocks(block, offsets)

    for i, (a, b) in enumerate(pairwise(offsets)):
        if fine[i]:  # checked returns the segment itself, not a rescaled or uniform copy
            assert np.shares_memory(checked(block[a:b]), block)
        if i % 8 in (0, 6, 7):  # left as drawn: the common case, decided by the block
            assert fine[i]


@pytest.mark.parametrize(("name", "params"), [*LINEAR, ("linucb", {"max_features": 6})],
                         ids=[*(f"{n}-{p}" if p else n for n, p in LINEAR), "linucb-hashed"])
def test_explanations_add_up_to_the_estimate_exactly(name: str, params: dict[str, object]) -> None:
    policy = create(name, params)
    assert isinstance(policy, Explaining)
    train = np.random.default_rng(1)
    for r in linear_rounds(0, 200):
        chosen = int(train.integers(r.decision.size))
        policy.update(r.decision, chosen, float(train.random() < r.success[chosen]), 0.25)
    state = policy.to_bytes()

    for made in mixed_decisions(4, 20):
        explained = policy.explain(policy.score([made]), made, 0, top=1000)
        p = policy.distribution(made, np.random.default_rng(0))
        assert [e.action_id for e in explained] == list(made.action_ids)
        for k, e in enumerate(explained):
            features = dict(e.contributions)
            exploration = features.pop("exploration", None)
            estimate = sum(features.values())
            if name == "linucb" and params.get("alpha", 0.3):
                assert exploration is not None and e.score == pytest.approx(estimate + exploration)
            elif name == "lints":
                assert exploration is not None and exploration >= 0
                assert e.score == pytest.approx(estimate, abs=1e-12)
            else:
                assert exploration is None and e.score == pytest.approx(estimate, abs=1e-12)
            assert "intercept" in features
            assert set(features) <= {"intercept", "user.x0", "user.x1", "user.x2", "user.x3",
                                     "meta.segment=web", "meta.segment=app", "meta.segment=tv",
                                     "item.price", "fresh.z"}  # fresh.z: when hashed
            magnitudes = [abs(v) for v in features.values()]
            assert magnitudes == sorted(magnitudes, reverse=True)
            # The explained scores are the ones the policy ranks by (greedy policies).
            if name != "lints" and p[k] == p.max():
                assert e.score == pytest.approx(max(x.score for x in explained))
    # A block of many explains each decision as a block of one does.
    decisions = mixed_decisions(4, 20)
    block = policy.score(decisions)
    for i, made in enumerate(decisions):
        alone = policy.explain(policy.score([made]), made, 0, top=1000)
        together = policy.explain(block, made, i, top=1000)
        for a, b in zip(alone, together, strict=True):
            assert (a.action_id, dict(a.contributions).keys()) == \
                (b.action_id, dict(b.contributions).keys())
            assert a.score == pytest.approx(b.score, rel=1e-12, abs=1e-15)
    assert policy.to_bytes() == state


def test_a_feature_contributes_its_coefficient_times_its_value() -> None:
    policy = create("linucb", {"alpha": 0.0})
    made = decision(np.array([0.5, 2.0]), ("a0", "a1"))
    for reward in (1.0, 0.0, 1.0):
        policy.update(made, 0, reward, 0.5)

    [first, _] = policy.explain(policy.score([made]), made, 0, top=2)

    column = policy.vocabulary.index("s|user|x1")
    assert first.contributions[0] == ("user.x1", pytest.approx(policy.estimate("a0")[column] * 2.0))
    assert len(first.contributions) == 2  # the top 2 only; alpha = 0: no exploration entry


def test_policies_that_cannot_explain_say_so() -> None:
    for name in ("thompson", "uniform"):
        assert not isinstance(create(name, {}), Explaining)


def test_remembered_design_matrices_stay_within_their_byte_bound() -> None:
    """Scoring many wide decisions (1,000 actions with their own features, 2 MiB each) keeps at
    most DESIGN_CACHE_BYTES of design matrices, and the scores equal a fresh policy's."""
    from arbiter.policies.linear import DESIGN_CACHE_BYTES, LinearPolicy

    actions = tuple(f"a{k}" for k in range(1000))
    prices = {a: float(k % 17) for k, a in enumerate(actions)}
    policy, fresh = create("linucb", {}), create("linucb", {})
    assert isinstance(policy, LinearPolicy)
    rng = np.random.default_rng(3)
    learner = decision(rng.normal(size=300), actions, price=prices)
    policy.update(learner, 0, 1.0, 0.5)
    fresh.update(learner, 0, 1.0, 0.5)  # vocabulary: 300 numbers, a segment, a price, the 1
    for i in range(80):
        scored = decision(rng.normal(size=300), actions, price=prices)
        got = policy.distribution(scored, np.random.default_rng(i))
        np.testing.assert_array_equal(got, fresh.distribution(scored, np.random.default_rng(i)))
        kept = sum(entry.matrix.nbytes for entry in policy._designs.values())
        assert kept <= DESIGN_CACHE_BYTES


def vw_trained(args: str) -> tuple[Explaining, list[Decision]]:
    policy = create("vw", {"args": args})
    decisions = mixed_decisions(3, 40)
    rng = np.random.default_rng(3)
    for made in decisions:
        policy.update(made, 0, float(rng.normal()), 0.5)
    assert isinstance(policy, Explaining)
    return policy, decisions


def test_vw_explains_without_changing_its_model() -> None:
    policy, decisions = vw_trained("--cb_explore_adf --softmax --lambda 20 -q sa -l 10")
    before = policy.to_bytes()
    scores = policy.score(decisions)
    for i, made in enumerate(decisions):
        explanations = policy.explain(scores, made, i, top=3)
        assert [e.action_id for e in explanations] == list(made.action_ids)
        assert all(len(e.contributions) <= 3 for e in explanations)
        assert np.array_equal(scores.distribution(i, np.random.default_rng()),
                              policy.distribution(made, np.random.default_rng()))
    assert policy.to_bytes() == before


@pytest.mark.parametrize("args", ["--cb_explore_adf --cubic ssa", "--cb_explore_adf -q ::",
                                  "--cb_explore_adf --bag 3 -q sa", "--cb_explore_adf -q ss"])
def test_vw_with_a_layout_it_does_not_know_cannot_explain(args: str) -> None:
    policy, decisions = vw_trained(args)
    assert policy.explain(policy.score(decisions[:1]), decisions[0], 0, top=3) == []
