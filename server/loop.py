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
from numpy.typing import NDArray

from arbiter.log import store
from arbiter.log.store import ActivationRecord, DecisionRecord, RewardRecord
from arbiter.policies import Decision, Scores
from arbiter.server.assignment import pseudonym
from arbiter.server.cache import Cached, DecisionCache
from arbiter.server.clock import Clock, utc_now
from arbiter.server.commit import CloseDue, Conflict, Op
from arbiter.server.config import VariantConfig
from arbiter.server.domain import ChooseInput, ChooseOutcome, RewardOutcome
from arbiter.server.errors import (
    AlreadyExists,
    ArbiterError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from arbiter.server.experiments import Experiment, Variant, rng_for
from arbiter.server.explanations import wire
from arbiter.server.metrics import Metrics
from arbiter.server.privacy import hash_features, hashed_table
from arbiter.server.rewards import Verdict
from arbiter.server.writer import GroupCommitWriter, Write, waiter

CLOSE_BATCH = 1000  # windows closed per transaction
EXPLAINED_FEATURES = 10  # contributions per explained action (the largest), then exploration
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


def _kept(size: int, excluded: tuple[int, ...]) -> list[int]:
    """The indices of ``size`` actions that are not ``excluded``."""
    out = set(excluded)
    return [k for k in range(size) if k not in out]


def _offered(distribution: NDArray[np.float64] | Sequence[float],
             request: ChooseInput) -> tuple[float, ...]:
    """A distribution over the request's remaining actions as one over every offered action:
    0 for each excluded one."""
    if not request.excluded:
        return tuple(np.asarray(distribution).tolist())
    full = np.zeros(request.decision.size)
    full[_kept(request.decision.size, request.excluded)] = distribution
    return tuple(full.tolist())


def _served(config: VariantConfig, request: ChooseInput) -> tuple[float, ...]:
    """What a variant not ``online`` serves (:func:`served_by_mode`) over the request's
    remaining actions (its baseline is one of them), 0 for each excluded one."""
    kept = _kept(request.decision.size, request.excluded)
    return _offered(served_by_mode(config, len(kept), kept.index(request.baseline)), request)


def _answer(cached: Cached, experiment: str) -> ChooseOutcome | ArbiterError:
    """What a retried Choose of ``experiment`` answers for a logged decision: its outcome, or
    ALREADY_EXISTS when the event id belongs to another experiment (not named: the caller may
    not see it)."""
    if cached.record.experiment != experiment:
        return AlreadyExists(f"event_id {cached.record.event_id!r} is already used by another "
                             "experiment")
    return outcome_of(cached.record)


def outcome_of(record: DecisionRecord, explanations: bytes = b"") -> ChooseOutcome:
    return ChooseOutcome(event_id=record.event_id, action_ids=record.decision.action_ids,
                         distribution=tuple(record.distribution), chosen=record.chosen,
                         variant=record.variant, model_version=record.model_version,
                         explanations=explanations)


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
        """``allowed``: the experiments the caller may see (None: all); any other is NOT_FOUND.

        Without an event id there is nothing to look up or wait for: the request goes
        straight to :meth:`_decide` (what :meth:`choose_batch` does with it too, in fewer
        steps — this is every plain Choose)."""
        if request.event_id:
            [result] = await self.choose_batch([request], allowed)
        else:
            experiment = self._experiment(request.experiment, allowed)
            self._check_available()
            [result] = await self._decide([(experiment, request, new_event_id())])
        if isinstance(result, ArbiterError):
            raise result
        return result

    async def choose_batch(self, requests: Sequence[ChooseInput | ArbiterError],
                           allowed: Set[str] | None = None) -> list[ChooseOutcome | ArbiterError]:
        """Each request decided as a Choose of its own; the answer, or the error, of each in
        order (an error given in ``requests`` is passed through). An unknown experiment fails
        its request alone; a database known to be down fails the call (UNAVAILABLE).

        A retried event id answers what was logged — found in this process's cache, or turned
        away by the log's unique key when another process logged it, and then read back — and
        one that another call, or an earlier request of this batch, is deciding answers what
        that call answers. The new decisions are made together by :meth:`_decide`."""
        results: list[ChooseOutcome | ArbiterError | None] = [None] * len(requests)
        valid: list[tuple[int, Experiment, ChooseInput]] = []
        for i, request in enumerate(requests):
            if isinstance(request, ArbiterError):
                results[i] = request
                continue
            try:
                valid.append((i, self._experiment(request.experiment, allowed), request))
            except NotFound as error:
                results[i] = error
        if valid:
            self._check_available()
        new: list[tuple[int, Experiment, ChooseInput, str]] = []
        waiting: list[tuple[int, asyncio.Future[ChooseOutcome]]] = []
        mine: dict[str, asyncio.Future[ChooseOutcome]] = {}
        for i, experiment, request in valid:
            event_id = request.event_id
            if not event_id:
                new.append((i, experiment, request, new_event_id()))
                continue
            cached = self.cache.get(event_id)
            if cached is not None:
                results[i] = _answer(cached, request.experiment)
                continue
            pending = self._inflight.get(event_id)  # only the event loop's thread touches it
            if pending is not None:
                waiting.append((i, pending))
                continue
            future: asyncio.Future[ChooseOutcome] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)  # nobody may be waiting for it
            self._inflight[event_id] = mine[event_id] = future
            new.append((i, experiment, request, event_id))
        try:
            if self._relaxed and mine:
                # Relaxed answers before its commit, so it must look the event ids up first;
                # strict lets the log's unique key decide (a logged one comes back a Conflict).
                logged = await asyncio.to_thread(self._load_many, list(mine))
                for i, _, request, event_id in new:
                    if event_id in logged:
                        results[i] = _answer(logged[event_id], request.experiment)
                new = [item for item in new if results[item[0]] is None]
            decided = await self._decide([item[1:] for item in new])
        except asyncio.CancelledError:
            for future in mine.values():
                future.cancel()
            raise
        except BaseException as error:
            for future in mine.values():
                future.set_exception(error)
            raise
        finally:
            for event_id in mine:
                del self._inflight[event_id]
        for (i, *_), result in zip(new, decided, strict=True):
            results[i] = result
        for i, _, request in valid:  # answer the calls that wait for this one's event ids
            own = mine.get(request.event_id)
            if own is not None and not own.done():
                answer = results[i]
                if isinstance(answer, ChooseOutcome):
                    own.set_result(answer)
                elif answer is not None:
                    own.set_exception(answer)
        for i, pending in waiting:
            try:
                results[i] = await asyncio.shield(pending)
            except ArbiterError as error:
                results[i] = error
        answered = [result for result in results if result is not None]
        assert len(answered) == len(requests)
        return answered

    async def _decide(self, items: Sequence[tuple[Experiment, ChooseInput, str]]
                      ) -> list[ChooseOutcome | ArbiterError]:
        """Decide ``(experiment, request, event_id)`` of each item, log them in one write and
        answer each: its decision, or — when the log already holds its event id — what was
        logged (ALREADY_EXISTS if another experiment's)."""
        if not items:
            return []
        records, explanations = self._records(items)
        ops = [Op(record) for record in records]
        if self._relaxed:
            self._writer.offer(Write(ops))  # a full queue: RESOURCE_EXHAUSTED, nothing cached
            self.cache.put_all(records)
            for record in records:
                self._decided(record)
            return [outcome_of(record, explained)
                    for record, explained in zip(records, explanations, strict=True)]

        def remember() -> None:
            self.cache.put_all([record for op, record in zip(ops, records, strict=True)
                                if op.outcome is True])

        done = waiter()
        self._writer.offer(Write(ops, after_commit=remember, done=done))
        await done
        results: list[ChooseOutcome | ArbiterError] = [
            outcome_of(record, explained)
            for record, explained in zip(records, explanations, strict=True)]
        conflicts = [k for k, op in enumerate(ops) if isinstance(op.outcome, Conflict)]
        for k, record in enumerate(records):
            if k not in conflicts:
                self._decided(record)
        if conflicts:  # logged before (here or by another process)
            logged = await asyncio.to_thread(self._load_many,
                                             [records[k].event_id for k in conflicts])
            for k in conflicts:
                found = logged.get(records[k].event_id)
                results[k] = (_answer(found, items[k][1].experiment) if found is not None else
                              Unavailable("the decision log did not return a logged event; "
                                          "retry"))
        return results

    def _records(self, items: Sequence[tuple[Experiment, ChooseInput, str]]
                 ) -> tuple[list[DecisionRecord], list[bytes]]:
        """The decisions of ``items``: each variant scores all of its items as one block
        (the serving variant those it serves, every shadow all of its experiment's), then each
        item's distributions are finished and its action drawn with the RNG of its event id.

        An item's excluded actions are not shown to the policies: they score the remaining
        actions, and the excluded ones are logged with probability 0. The explanations of an
        item that asks for them come from its serving variant (nothing is computed for the
        others)."""
        decisions: list[Decision] = []  # as logged: hashed features, every offered action
        scored: list[Decision] = []  # as the policies see them: without the excluded actions
        serving: list[Variant] = []  # of each item
        served: dict[Variant, list[int]] = {}  # the items each serving variant decides
        members: dict[str, list[int]] = {}  # the items of each experiment
        place: list[tuple[int, int]] = []  # each item's index in its two lists
        for n, (experiment, request, event_id) in enumerate(items):
            config = experiment.config
            decision = request.decision
            if config.hashed_features:  # before anything scores, caches or logs it
                decision = hash_features(decision, hashed_table(config.hashed_features),
                                         self._key, config.salt)
            decisions.append(decision)
            scored.append(decision.subset(_kept(decision.size, request.excluded))
                          if request.excluded else decision)
            variant = experiment.serving(request.unit_id, event_id)
            serving.append(variant)
            mine, peers = served.setdefault(variant, []), members.setdefault(experiment.name, [])
            place.append((len(mine), len(peers)))
            mine.append(n)
            peers.append(n)
        blocks = {variant: variant.score([scored[n] for n in indices],
                                         [j for j, n in enumerate(indices) if items[n][1].explain],
                                         EXPLAINED_FEATURES)
                  for variant, indices in served.items()}
        shadows: dict[str, list[tuple[Variant, Scores]]] = {}
        for experiment, _, _ in items:
            if experiment.name not in shadows:
                indices = members[experiment.name]
                shadows[experiment.name] = [(v, v.score([scored[n] for n in indices])[0])
                                            for v in experiment.shadows()]
        # encoded now, not when answered (ChooseOutcome.explanations)
        explanations = [wire(explained) if (explained := blocks[serving[n]][2].get(place[n][0]))
                        else b"" for n in range(len(items))]
        now = self._clock()
        records = []
        for n, (experiment, request, event_id) in enumerate(items):
            variant = serving[n]
            scores, version, _ = blocks[variant]
            at, among = place[n]
            rng = rng_for(event_id)
            own = _offered(scores.distribution(at, rng), request)
            mode = variant.config.mode
            distribution = own if mode == "online" else _served(variant.config, request)
            chosen = draw(distribution, rng)
            shadow = {v.name: list(_offered(block.distribution(among, rng_for(event_id, v.name)),
                                            request))
                      for v, block in shadows[experiment.name]}
            if mode != "online":  # the baseline is served; the policy's distribution is logged
                shadow[variant.name] = list(own)
            config = experiment.config
            records.append(DecisionRecord(
                event_id=event_id, experiment=experiment.name, variant=variant.name,
                model_version=version,
                unit_hash=(pseudonym(self._key, config.salt, request.unit_id)
                           if request.unit_id else None),
                decision=decisions[n], distribution=distribution, chosen=chosen, shadow=shadow,
                deferred=request.deferred, created_at=now))
        return records, explanations

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
        """The logged decision from SQL, cached cold (:meth:`DecisionCache.put`); None when
        the event id is unknown."""
        try:
            with self._engine.connect() as connection:
                logged = store.find_decision(connection, event_id)
        except sa.exc.OperationalError as error:
            raise Unavailable("the database is unavailable; retry later") from error
        if logged is None:
            return None
        return self.cache.put(logged.record, logged.activated, cold=True)

    def _load_many(self, event_ids: Sequence[str]) -> dict[str, Cached]:
        """The logged decisions of ``event_ids`` (see :meth:`_load`) that are in the log."""
        found = {}
        for event_id in event_ids:
            cached = self._load(event_id)
            if cached is not None:
                found[event_id] = cached
        return found

    def _check_available(self) -> None:
        if not self._available():
            raise Unavailable("the database is unavailable; retry later")

    def _experiment(self, name: str, allowed: Set[str] | None = None) -> Experiment:
        experiment = self.experiments.get(name)
        if experiment is None or (allowed is not None and name not in allowed):
            raise NotFound(f"experiment {name!r} is not configured")
        return experiment

