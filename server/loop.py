"""The decision loop: Choose → log → answer; Reward → join → log → answer; windows close.

Choose: replace the values of the experiment's hashed features by keyed hashes
(:mod:`server.privacy`), pick the serving variant (sticky per unit), ask its policy for a
distribution over the offered actions, score the shadow variants on the same actions, draw one
action with the RNG seeded by the event id, write the decision (group commit) and answer. A
retried event id returns the logged decision and writes nothing — found in this process's
cache, or turned away by the log's unique key when another process logged it, and then read
back.

Reward: find the decision (cache, else the log), then hand the reward to the writer: inside
the commit the log decides whether it is a retry, whether it takes the decision's window
(``first``) or counts in it (``sum``), and :mod:`server.rewards` turns that into what is stored
and answered. Nothing about a window lives in this process: the ``windows`` table holds them,
so any process answers any reward, and memory does not grow with the reward window.

Activate: write the activation; the log opens the window (idempotently).

Every learned event gets its seq in the committing transaction; the writer hands the batch's
learned events to the fold right after the commit, so the next Choose here already sees them.
Choose, Reward and Activate are coroutines on the gRPC server's event loop: CPU work runs
inline and only the commit and a cache miss's SQL read are awaited.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence, Set
from itertools import accumulate
from typing import Any

import numpy as np
import sqlalchemy as sa
import uuid_utils

from arbiter.log import store
from arbiter.log.store import ActivationRecord, DecisionRecord, RewardRecord
from arbiter.server.assignment import pseudonym
from arbiter.server.cache import Cached, DecisionCache
from arbiter.server.clock import Clock, utc_now
from arbiter.server.commit import CloseDue, Conflict, Op
from arbiter.server.config import VariantConfig
from arbiter.server.domain import ChooseInput, ChooseOutcome, RewardOutcome
from arbiter.server.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from arbiter.server.experiments import Experiment, rng_for
from arbiter.server.metrics import Metrics
from arbiter.server.privacy import hash_features, hashed_table
from arbiter.server.rewards import Verdict
from arbiter.server.writer import GroupCommitWriter, Write, waiter

CLOSE_BATCH = 1000  # windows closed per transaction
DEFAULT_CACHE_BYTES = 64 * 2**20


def draw(distribution: Sequence[float], rng: np.random.Generator) -> int:
    """Inverse-CDF sample of one index from ``distribution`` (K probabilities summing to 1)."""
    cumulative = list(accumulate(distribution))
    index = min(bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)
    while distribution[index] <= 0:  # never draw a zero-probability action at the float edge
        index -= 1
    return index


def served_by_mode(config: VariantConfig, actions: int, baseline: int) -> tuple[float, ...]:
    """What a variant not ``online`` serves over ``actions`` actions, given the baseline's
    index: ``apprentice`` — the baseline, probability 1; ``logging`` — the baseline with
    ``1 - ε + ε/K``, every other action with ``ε/K`` (ε = ``logging_epsilon``)."""
    if config.mode == "apprentice":
        return tuple(1.0 if k == baseline else 0.0 for k in range(actions))
    floor = config.logging_epsilon / actions
    return tuple(1.0 - config.logging_epsilon + floor if k == baseline else floor
                 for k in range(actions))


def new_event_id() -> str:
    """A fresh event id: a UUIDv7 (RFC 9562), time-ordered, so the log's unique index on
    ``event_id`` grows at its right edge instead of at random pages (fewer pages per commit on
    SQLite and PostgreSQL alike). Within a millisecond a randomly started counter keeps one
    process's ids increasing, and random low bits keep different processes' ids apart."""
    return str(uuid_utils.uuid7())


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: nobody may be waiting for a Choose's dedupe future."""
    if not future.cancelled():
        future.exception()


def outcome_of(record: DecisionRecord) -> ChooseOutcome:
    return ChooseOutcome(event_id=record.event_id, action_ids=record.decision.action_ids,
                         distribution=tuple(record.distribution), chosen=record.chosen,
                         variant=record.variant, model_version=record.model_version)


class DecisionLoop:
    """Choose, Reward, Activate (coroutines on one event loop) and closing due windows.

    ``relaxed``: Choose and Activate answer before the commit (Reward always waits: its answer
    is what the log decides). ``available()`` is False while the database is known to be down:
    calls fail fast. ``metrics``: decisions and rewards are counted there once logged.
    """

    def __init__(self, experiments: Mapping[str, Experiment], writer: GroupCommitWriter,
                 engine: sa.Engine, *, key: bytes, clock: Clock = utc_now, relaxed: bool = False,
                 available: Callable[[], bool] = lambda: True,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, metrics: Metrics | None = None) -> None:
        self.experiments = experiments
        self._writer = writer
        self._engine = engine
        self._key = key  # the server's secret: unit pseudonyms, hashed features
        self._clock = clock
        self._relaxed = relaxed
        self._available = available
        self._metrics = metrics
        self.cache = DecisionCache(cache_bytes)
        self._inflight: dict[str, asyncio.Future[ChooseOutcome]] = {}

    # ---------------------------------------------------------------- Choose
    async def choose(self, request: ChooseInput, allowed: Set[str] | None = None) -> ChooseOutcome:
        """``allowed``: the experiments the caller may see (None: all); any other is NOT_FOUND."""
        experiment = self._experiment(request.experiment, allowed)
        self._check_available()
        if not request.event_id:
            return await self._decide(experiment, request, new_event_id())
        event_id = request.event_id
        cached = self.cache.get(event_id)
        if cached is not None:
            return outcome_of(self._same_experiment(cached, request.experiment).record)
        pending = self._inflight.get(event_id)  # only the event loop's thread touches it
        if pending is not None:  # a concurrent retry: answer what the first call answers
            return await asyncio.shield(pending)
        mine: asyncio.Future[ChooseOutcome] = asyncio.get_running_loop().create_future()
        mine.add_done_callback(_retrieve)
        self._inflight[event_id] = mine
        try:
            # Relaxed answers before its commit, so it must look the event id up first; strict
            # lets the log's unique key decide (a logged decision comes back as a Conflict).
            logged = await asyncio.to_thread(self._load, event_id) if self._relaxed else None
            outcome = (outcome_of(self._same_experiment(logged, request.experiment).record)
                       if logged is not None else await self._decide(experiment, request, event_id))
        except asyncio.CancelledError:
            mine.cancel()
            raise
        except BaseException as error:
            mine.set_exception(error)
            raise
        finally:
            del self._inflight[event_id]
        mine.set_result(outcome)
        return outcome

    async def _decide(self, experiment: Experiment, request: ChooseInput,
                      event_id: str) -> ChooseOutcome:
        config = experiment.config
        decision = request.decision
        if config.hashed_features:  # before anything scores, caches or logs it
            decision = hash_features(decision, hashed_table(config.hashed_features), self._key,
                                     config.salt)
        variant = experiment.serving(request.unit_id, event_id)
        rng = rng_for(event_id)
        own = variant.distribution(decision, rng).tolist()
        shadow = {v.name: v.distribution(decision, rng_for(event_id, v.name)).tolist()
                  for v in experiment.shadows()}
        distribution = tuple(own)
        if variant.config.mode != "online":  # the baseline is served; the policy's is logged
            distribution = served_by_mode(variant.config, len(own), request.baseline)
            shadow[variant.name] = own
        chosen = draw(distribution, rng)
        now = self._clock()
        record = DecisionRecord(
            event_id=event_id, experiment=experiment.name, variant=variant.name,
            model_version=variant.model_version,
            unit_hash=(pseudonym(self._key, config.salt, request.unit_id) if request.unit_id
                       else None),
            decision=decision, distribution=distribution, chosen=chosen, shadow=shadow,
            deferred=request.deferred, created_at=now)
        op = Op(record)
        if self._relaxed:
            self._writer.offer(Write([op]))  # a full queue: RESOURCE_EXHAUSTED, nothing cached
            self.cache.put(record)
            self._decided(record)
            return outcome_of(record)

        def remember() -> None:
            if op.outcome is True:
                self.cache.put(record)

        done = waiter()
        self._writer.offer(Write([op], after_commit=remember, done=done))
        await done
        if isinstance(op.outcome, Conflict):  # logged before (here or by another process)
            logged = await asyncio.to_thread(self._load, event_id)
            if logged is None:
                raise Unavailable("the decision log did not return a logged event; retry")
            return outcome_of(self._same_experiment(logged, request.experiment).record)
        self._decided(record)
        return outcome_of(record)

    def _decided(self, record: DecisionRecord) -> None:
        if self._metrics is not None:
            self._metrics.decided(record.experiment, record.variant,
                                  record.distribution[record.chosen])

    # ---------------------------------------------------------------- Reward
    async def reward(self, event_id: str, value: float, reward_id: str = "",
                     allowed: Set[str] | None = None) -> RewardOutcome:
        cached = await self._find(event_id, allowed)
        config = self._experiment(cached.record.experiment).config
        low, high = config.reward_range
        if not low <= value <= high:  # before anything is written
            raise InvalidArgument("value", f"must be within the experiment's reward_range "
                                           f"[{low:g}, {high:g}], got {value:g}")
        self._check_available()
        op = Op(RewardRecord(event_id=event_id, experiment=config.name, value=value,
                             reward_id=reward_id, aggregation=config.reward_aggregation,
                             received_at=self._clock()), source=cached.record)
        done = waiter()
        self._writer.offer(Write([op], done=done))
        await done
        verdict = op.outcome.verdict
        if self._metrics is not None and verdict is not Verdict.RETRY:  # stored now
            self._metrics.rewarded(config.name, cached.record.variant, op.outcome.counted)
        if verdict is Verdict.RETRY:
            raise AlreadyExists(f"this reward for event {event_id!r} is already stored")
        if verdict is Verdict.DUPLICATE:
            raise AlreadyExists(f"event {event_id!r} already has a reward; this one is stored "
                                "for offline evaluation but not learned")
        return RewardOutcome(learned=op.outcome.counted)

    # ---------------------------------------------------------------- Activate
    async def activate(self, event_id: str, allowed: Set[str] | None = None) -> None:
        """Start the reward window of a deferred decision (idempotent)."""
        cached = await self._find(event_id, allowed)
        config = self._experiment(cached.record.experiment).config
        if not cached.record.deferred:
            raise FailedPrecondition(f"decision {event_id!r} was not deferred; it is active already")
        self._check_available()
        if cached.activated:
            return
        now = self._clock()
        op = Op(ActivationRecord(event_id=event_id, experiment=config.name, activated_at=now))
        done = None if self._relaxed else waiter()
        self._writer.offer(Write([op], after_commit=lambda: self.cache.mark_activated(event_id),
                                  done=done))
        if done is not None:
            await done

    # ---------------------------------------------------------------- windows
    def close_windows(self) -> int:
        """Learn every window that has closed (default reward, or the ``sum``); returns how
        many. Blocks until committed (called from the coordinator's thread, and by tests)."""
        closed = 0
        while True:
            op = Op(CloseDue(CLOSE_BATCH))
            self._writer.write([op])
            closed += int(op.outcome or 0)
            if not op.outcome or op.outcome < CLOSE_BATCH:
                return closed

    # ---------------------------------------------------------------- the join
    async def _find(self, event_id: str, allowed: Set[str] | None = None) -> Cached:
        """The decision ``event_id``; NOT_FOUND when unknown or of an experiment outside
        ``allowed`` (the same answer: nothing to enumerate)."""
        cached = self.cache.get(event_id)
        if cached is None:
            cached = await asyncio.to_thread(self._load, event_id)
        if cached is None or (allowed is not None and cached.record.experiment not in allowed):
            raise NotFound(f"no decision with event_id {event_id!r}")
        return cached

    def _load(self, event_id: str) -> Cached | None:
        """The logged decision from SQL, cached; None when the event id is unknown."""
        try:
            with self._engine.connect() as connection:
                logged = store.find_decision(connection, event_id)
        except sa.exc.OperationalError as error:
            raise Unavailable("the database is unavailable; retry later") from error
        if logged is None:
            return None
        return self.cache.put(logged.record, logged.activated)

    def _check_available(self) -> None:
        if not self._available():
            raise Unavailable("the database is unavailable; retry later")

    def _experiment(self, name: str, allowed: Set[str] | None = None) -> Experiment:
        experiment = self.experiments.get(name)
        if experiment is None or (allowed is not None and name not in allowed):
            raise NotFound(f"experiment {name!r} is not configured")
        return experiment

    @staticmethod
    def _same_experiment(cached: Cached, experiment: str) -> Cached:
        if cached.record.experiment != experiment:  # not named: the caller may not see it
            raise AlreadyExists(f"event_id {cached.record.event_id!r} is already used by "
                                "another experiment")
        return cached
