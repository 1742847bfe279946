"""Experiments at run time: each variant's live policy, its lock, and the traffic table."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeGuard

import numpy as np
from numpy.typing import NDArray

from arbiter.policies import (
    Attributing,
    BlockScoring,
    Decision,
    Explaining,
    Explanation,
    Policy,
    Scores,
    create,
)
from arbiter.server.assignment import allocate, bucket
from arbiter.server.config import ExperimentConfig, VariantConfig

log = logging.getLogger(__name__)


class _ThreadGenerator(threading.local):
    """One generator per thread, re-seeded for every decision (see :func:`rng_for`)."""

    def __init__(self) -> None:
        self.generator = np.random.Generator(np.random.PCG64())


_GENERATORS = _ThreadGenerator()


def rng_for(event_id: str, stream: str = "") -> np.random.Generator:
    """The RNG of one decision: PCG64 whose 128-bit state and increment are the two halves of
    SHA-256 of the event id (and a stream name), so the same id always draws the same.

    It is this thread's generator, re-seeded: valid until the next ``rng_for`` on the same
    thread (a decision makes all its draws before the next one starts). Setting a kept
    generator's state costs a fifth of building a seeded one, which runs a SeedSequence.
    """
    digest = hashlib.sha256(f"{event_id}\x00{stream}".encode()).digest()
    generator = _GENERATORS.generator
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int.from_bytes(digest[:16], "big"),
                  "inc": int.from_bytes(digest[16:], "big") | 1},  # PCG needs an odd increment
        "has_uint32": 0, "uinteger": 0}
    return generator


_EXPLAINS: dict[type, bool] = {}


def explains(policy: Policy) -> TypeGuard[Explaining]:
    """Whether ``policy`` is :class:`~policies.base.Explaining`, looked up once per class (a
    runtime protocol check costs microseconds; a Choose asking for explanations makes one)."""
    kind = type(policy)
    found = _EXPLAINS.get(kind)
    if found is None:
        found = _EXPLAINS[kind] = isinstance(policy, Explaining)
    return found


class Variant:
    """A named policy and its lock. ``position``: seq of the last learned event it has been
    handed; ``updates``: how many learned events it has been handed (its model version)."""

    def __init__(self, config: VariantConfig, policy: Policy | None = None) -> None:
        self.config = config
        self.policy: Policy = policy if policy is not None else create(config.policy,
                                                                       config.params)
        self.lock = threading.Lock()
        self.position = 0
        self.updates = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model_version(self) -> str:
        return f"{self.config.policy}@{self.updates}"

    def restore(self, policy: Policy, position: int, updates: int) -> None:
        """Swap in a policy restored from a snapshot taken at ``position``."""
        with self.lock:
            self.policy, self.position, self.updates = policy, position, updates

    def distribution(self, decision: Decision, rng: np.random.Generator) -> NDArray[np.float64]:
        with self.lock:
            return self.policy.distribution(decision, rng)

    def score(self, decisions: Sequence[Decision], explain: Sequence[int] = (),
              top: int = 10) -> tuple[Scores, str, dict[int, Sequence[Explanation]]]:
        """``decisions`` scored together, the model version they are scored with, and the
        explanations of those at the indices ``explain`` (each with its ``top`` largest
        contributions; none from a policy that cannot explain itself,
        :class:`~policies.base.Explaining`). One vectorized block when the policy can
        (:class:`~policies.base.BlockScoring`) and there is more than one decision or an
        explanation to give (from the block's own estimates), else each decision on its own
        when its distribution is asked for."""
        with self.lock:
            policy = self.policy
            if explain and explains(policy):
                scores = policy.score(decisions)
                return scores, self.model_version, {
                    i: policy.explain(scores, decisions[i], i, top) for i in explain}
            if len(decisions) > 1 and isinstance(policy, BlockScoring):
                return policy.score(decisions), self.model_version, {}
            return _OneByOne(self, decisions), self.model_version, {}

    def importance(self, top: int = 10) -> tuple[int, list[tuple[str, float]]]:
        """The policy's feature importance (:class:`~policies.base.Attributing`): the events
        averaged over and the ``top`` features; ``(0, [])`` from a policy that keeps none."""
        with self.lock:
            if isinstance(self.policy, Attributing):
                return self.policy.importance(top)
        return 0, []

    def learn(self, decision: Decision, chosen: int, reward: float, probability: float,
              seq: int, event_id: str | None = None) -> None:
        """Apply learned event ``seq`` (of decision ``event_id``, which the log line names). A
        reward the policy rejects (e.g. outside [0, 1] for ``thompson``) is skipped with a
        warning — the same way live and in replay, so the model stays a deterministic fold of
        the log."""
        with self.lock:
            try:
                self.policy.update(decision, chosen, reward, probability)
            except ValueError as error:
                log.warning("variant %s skipped learned event %d: %s", self.name, seq, error,
                            extra={"event_id": event_id})
            self.position = seq
            self.updates += 1

    def skip(self, seq: int) -> None:
        """Pass learned event ``seq`` by without learning it (a cold variant not listed yet)."""
        with self.lock:
            self.position = seq

    def state(self) -> tuple[bytes, int, int]:
        """The serialized policy, the position and the updates it reflects, read consistently."""
        with self.lock:
            return self.policy.to_bytes(), self.position, self.updates


class _OneByOne:
    """:class:`~policies.base.Scores` of a policy that scores one decision at a time."""

    def __init__(self, variant: Variant, decisions: Sequence[Decision]) -> None:
        self._variant, self._decisions = variant, decisions

    def distribution(self, index: int, rng: np.random.Generator) -> NDArray[np.float64]:
        return self._variant.distribution(self._decisions[index], rng)


class Experiment:
    """An experiment's variants and its bucket → serving-variant table."""

    def __init__(self, config: ExperimentConfig, table: Sequence[str] | None = None) -> None:
        self.config = config  # the live set-up: the TOML's policies, the log's roles
        self.toml = config  # as configured (policies, params, and the seed of the roles)
        self.variants: dict[str, Variant] = {v.name: Variant(v) for v in config.variants}
        self.table: list[str] = list(table) if table is not None else allocate(self.weights())
        self.version = 0  # the set-up version in force (0: the TOML's, none stored yet)
        self.listed: frozenset[str] = frozenset(self.variants)  # variants that version lists
        self.since: datetime | None = None  # when that version was written
        self.roles_position = 0  # seq of the set-up change in force

    @property
    def name(self) -> str:
        return self.config.name

    def weights(self) -> Mapping[str, float]:
        return {v.name: v.traffic for v in self.config.variants if not v.shadow}

    def serving(self, unit_id: str, event_id: str) -> Variant:
        """The sticky variant of ``unit_id``; a request without unit is assigned per event."""
        return self.variants[self.table[bucket(self.config.salt, unit_id or event_id)]]

    def shadows(self) -> list[Variant]:
        return [v for v in self.variants.values() if v.config.shadow]

    def learners(self, served_by: str) -> list[Variant]:
        """Who learns a decision served by ``served_by``: that variant (unless in ``logging``
        mode: it collects data and learns nothing) and every shadow —
        variants of the configuration that the set-up in force does not list yet are
        shadows, but only those with ``warm_start`` learn (the others start cold)."""
        serving = self.variants.get(served_by)
        return [v for v in self.variants.values()
                if (v is serving and v.config.mode != "logging")
                or (v.config.shadow and (v.name in self.listed or v.config.warm_start))]
