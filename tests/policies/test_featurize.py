"""Featurization: one-hot categories, values for numbers, growth, hashing, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from arbiter.policies import Decision, Namespace
from arbiter.policies.featurize import INTERCEPT, Featurizer, Vocabulary, stable_hash


def sample_decision() -> Decision:
    return Decision(
        context=(Namespace("user", numbers={"age": 0.5, "visits": 3.0}, categories={"city": "Oslo"}),),
        action_ids=("x", "y"),
        action_features=((Namespace("item", numbers={"price": 2.0}),), ()),
    )


def test_numbers_are_values_and_categories_are_one_hot_name_equals_value() -> None:
    featurizer = Featurizer(Vocabulary(cap=64))

    x = featurizer.encode(sample_decision()).matrix(8)

    keys = featurizer.vocabulary.keys
    assert keys == [
        INTERCEPT, "s|user|age", "s|user|visits", "s|user|city=Oslo", "a|item|price"
    ]  # fmt: skip
    np.testing.assert_array_equal(x[0], [1.0, 0.5, 3.0, 1.0, 2.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(x[1], [1.0, 0.5, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0])


def test_shared_row_when_no_action_has_features() -> None:
    featurizer = Featurizer(Vocabulary(cap=64))
    d = Decision((Namespace("u", numbers={"a": 2.0}),), ("x", "y"), ((), ()))

    np.testing.assert_array_equal(featurizer.encode(d).matrix(3), [1.0, 2.0, 0.0])


def test_keys_beyond_the_cap_are_hashed_into_the_existing_columns() -> None:
    vocabulary = Vocabulary(cap=4)
    owned = [vocabulary.column(f"k{i}") for i in range(3)]

    beyond = [vocabulary.column(f"extra{i}") for i in range(50)]

    assert owned == [1, 2, 3]
    assert len(vocabulary) == 4
    assert set(beyond) <= {1, 2, 3}, "column 0 (the intercept) never takes a hashed key"
    assert beyond == [1 + stable_hash(f"extra{i}") % 3 for i in range(50)]


def test_colliding_features_add_up() -> None:
    featurizer = Featurizer(Vocabulary(cap=2))
    d = Decision((Namespace("u", numbers={"a": 2.0, "b": 3.0}),), ("x",), ((),))

    np.testing.assert_array_equal(featurizer.encode(d).matrix(2), [1.0, 5.0])


def test_same_vectors_in_every_process() -> None:
    script = (
        "import json; from arbiter.policies.featurize import Featurizer, Vocabulary, stable_hash\n"
        "from arbiter.policies import Decision, Namespace\n"
        "f = Featurizer(Vocabulary(cap=3))\n"
        "d = Decision((Namespace('u', numbers={'a': 1.0, 'b': 2.0}, categories={'c': 'v'}),),"
        " ('x',), ((),))\n"
        "print(json.dumps([f.encode(d).matrix(3).tolist(), stable_hash('s|u|a')]))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }

    assert len(outputs) == 1
    matrix, _ = json.loads(outputs.pop())
    assert matrix[0] == 1.0


def test_one_row_equals_that_row_of_the_matrix_bit_for_bit() -> None:
    """Learning builds only the chosen action's row; it must be exactly the matrix's row (else
    a model would depend on how it was built), for any mix of actions with and without
    features, repeated keys, shared context or none, and a vocabulary that hashes."""
    rng = np.random.default_rng(7)

    def namespace(name: str) -> Namespace:
        numbers = {f"n{i}": float(rng.normal() * 10.0 ** rng.integers(-3, 4))
                   for i in range(rng.integers(0, 4))}
        categories = {f"c{i}": f"v{rng.integers(3)}" for i in range(rng.integers(0, 3))}
        return Namespace(name, numbers, categories)

    for trial in range(300):
        actions = int(rng.integers(1, 6))
        decision = Decision(
            context=tuple(namespace(f"s{i}") for i in range(rng.integers(0, 3))),
            action_ids=tuple(f"a{k}" for k in range(actions)),
            action_features=tuple(tuple(namespace(f"f{i}") for i in range(rng.integers(0, 3)))
                                  for _ in range(actions)))
        featurizer = Featurizer(Vocabulary(cap=int(rng.integers(2, 40))))
        rows = featurizer.encode(decision, grow=True)
        width = len(featurizer.vocabulary) + int(rng.integers(0, 3))
        matrix = rows.matrix(width)
        for k in range(actions):
            expected = matrix if matrix.ndim == 1 else matrix[k]
            got = rows.row(k, width)
            assert got.shape == (width,)
            assert got.tobytes() == expected.tobytes(), (trial, k)
