"""The decision loop: Choose → log → answer; Reward → join → store → learn; windows close.

Choose: pick the serving variant (sticky per unit), ask its policy for a distribution over the
offered actions, score the shadow variants on the same actions, draw one action with the RNG
seeded by the event id, write the decision (group commit) and answer. A retried event id
returns the logged decision and writes nothing.

Reward: find the decision (memory, else SQL) and apply the experiment's reward semantics:

- the window is ``[start, start + reward_wait_seconds]``; ``start`` is the decision's time, or
  its activation for a deferred decision (an unactivated deferred decision has no window);
- ``first``: the first reward inside the window is learned at once; later ones are stored and
  answered ALREADY_EXISTS;
- ``sum``: rewards inside the window add up and are learned once, when it closes;
- a window that closes without a (learned) reward is learned with ``default_reward``;
- a reward outside its window is stored for offline evaluation, not learned (``learned=False``);
- a retry (same ``reward_id``, or the same value without one under ``first``) writes nothing.

Every learned event gets the next ``seq`` and a ``learnings`` row in the same transaction as
its trigger, and is learned in the writer's after-commit hook — in ``seq`` order, so the live
models are exactly the fold of the log that recovery replays.

Choose, Reward and Activate are coroutines run on the gRPC server's event loop: the CPU work
(validation was done by the caller, scoring, the log row) runs inline and only the commit and a
cache miss's SQL read are awaited, so one thread serves every call without handing it over.
A write a caller gave up on still commits; a write that fails rolls back the in-memory state
it claimed (the writer's ``on_failure`` hook) whether anyone still waits or not.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

import numpy as np
import sqlalchemy as sa
import uuid_utils

from arbiter.log import queries, schema
from arbiter.log.codec import actions_to_json, decision_from_json
from arbiter.policies import Decision
from arbiter.server.assignment import pseudonym
from arbiter.server.domain import ChooseInput, ChooseOutcome, RewardOutcome
from arbiter.server.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from arbiter.server.experiments import Experiment, rng_for
from arbiter.server.writer import Done, GroupCommitWriter, Row, Write, waiter

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Logged:
    """A logged decision and its reward window, as the join needs it."""

    experiment: str
    outcome: ChooseOutcome
    decision: Decision
    created_at: datetime
    deferred: bool = False
    activated_at: datetime | None = None
    learned: bool = False  # its learnings row is written (or being written)
    stored: list[tuple[float, str]] = field(default_factory=list)  # (value, reward_id) stored
    window_count: int = 0  # rewards counted inside the window
    window_total: float = 0.0

    def window_end(self, wait: timedelta) -> datetime | None:
        start = self.activated_at if self.deferred else self.created_at
        return None if start is None else start + wait


def draw(distribution: Sequence[float], rng: np.random.Generator) -> int:
    """Inverse-CDF sample of one index from ``distribution`` (K probabilities summing to 1)."""
    cumulative = list(accumulate(distribution))
    index = min(bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)
    while distribution[index] <= 0:  # never draw a zero-probability action at the float edge
        index -= 1
    return index


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


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything in the log is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class DecisionLoop:
    """Choose, Reward, Activate (coroutines on one event loop) and the reward windows between
    them (closed from the maintenance thread); the shared state is guarded by locks.

    ``relaxed``: answer before the commit (see ``GroupCommitWriter``'s ``retry_unavailable``).
    ``available()`` is False while the database is known to be down: calls fail fast.
    """

    def __init__(self, experiments: Mapping[str, Experiment], writer: GroupCommitWriter,
                 engine: sa.Engine, *, clock: Clock = utc_now, relaxed: bool = False,
                 available: Callable[[], bool] = lambda: True, cache_size: int = 100_000) -> None:
        self.experiments = experiments
        self.learned_events = 0
        self._writer = writer
        self._engine = engine
        self._clock = clock
        self._relaxed = relaxed
        self._available = available
        self._cache: OrderedDict[str, Logged] = OrderedDict()
        self._cache_size = cache_size
        self._open: dict[str, Logged] = {}
        self._deadlines: list[tuple[datetime, str]] = []
        self._lock = threading.Lock()  # the cache, the open windows and every Logged's fields
        self._seq_lock = threading.Lock()
        self._inflight: dict[str, asyncio.Future[ChooseOutcome]] = {}
        self._next_seq = queries.last_seq(engine) + 1

    # ---------------------------------------------------------------- Choose
    async def choose(self, request: ChooseInput) -> ChooseOutcome:
        experiment = self._experiment(request.experiment)
        self._check_available()
        if not request.event_id:
            return await self._decide(experiment, request, new_event_id())
        event_id = request.event_id
        with self._lock:
            logged = self._cache.get(event_id) or self._open.get(event_id)
            if logged is not None:
                return self._same_experiment(logged, request.experiment).outcome
            pending = self._inflight.get(event_id)
            if pending is None:
                mine: asyncio.Future[ChooseOutcome] = asyncio.get_running_loop().create_future()
                mine.add_done_callback(_retrieve)
                self._inflight[event_id] = mine
        if pending is not None:  # a concurrent retry: answer what the first call answers
            return await asyncio.shield(pending)
        try:
            # Relaxed answers before its commit, so it must look the event id up first; strict
            # lets the log's unique key decide (a logged decision comes back as AlreadyExists).
            logged = await asyncio.to_thread(self._load, event_id) if self._relaxed else None
            outcome = (self._same_experiment(logged, request.experiment).outcome
                       if logged is not None else await self._decide(experiment, request, event_id))
        except asyncio.CancelledError:
            mine.cancel()
            raise
        except BaseException as error:
            mine.set_exception(error)
            raise
        finally:
            with self._lock:
                del self._inflight[event_id]
        mine.set_result(outcome)
        return outcome

    async def _decide(self, experiment: Experiment, request: ChooseInput,
                      event_id: str) -> ChooseOutcome:
        decision = request.decision
        variant = experiment.serving(request.unit_id, event_id)
        rng = rng_for(event_id)
        distribution = tuple(variant.distribution(decision, rng).tolist())
        chosen = draw(distribution, rng)
        shadow = {v.name: v.distribution(decision, rng_for(event_id, v.name)).tolist()
                  for v in experiment.shadows()}
        outcome = ChooseOutcome(event_id=event_id, action_ids=decision.action_ids,
                                distribution=distribution,
                                chosen=chosen, variant=variant.name,
                                model_version=variant.model_version)
        now = self._clock()
        row = {
            "event_id": event_id, "experiment": experiment.name, "variant": variant.name,
            "model_version": outcome.model_version,
            "unit_hash": pseudonym(experiment.config.salt, request.unit_id)
            if request.unit_id else None,
            "context": decision.context,  # Namespace structs: the JSON as is
            "actions": actions_to_json(decision),
            "distribution": outcome.distribution, "chosen_index": chosen,
            "chosen_action": outcome.action_id, "probability": outcome.probability,
            "shadow": shadow, "deferred": request.deferred, "created_at": now,
        }
        logged = Logged(experiment=experiment.name, outcome=outcome, decision=decision,
                        created_at=now, deferred=request.deferred)
        if self._relaxed:
            self._remember(logged)
            self._writer.submit(Write([(schema.decisions, row)]))
            return outcome
        done = waiter()
        self._writer.submit(Write([(schema.decisions, row)],
                                  after_commit=lambda: self._remember(logged), done=done))
        try:
            await done
        except AlreadyExists:  # another process logged this event id first: answer its decision
            existing = await asyncio.to_thread(self._load, event_id)
            if existing is None:
                raise
            return self._same_experiment(existing, request.experiment).outcome
        return outcome

    # ---------------------------------------------------------------- Reward
    async def reward(self, event_id: str, value: float, reward_id: str = "") -> RewardOutcome:
        logged = await self._find(event_id)
        config = self._experiment(logged.experiment).config
        self._check_available()
        now = self._clock()
        with self._lock:
            if self._is_retry(logged, value, reward_id, config.reward_aggregation):
                raise AlreadyExists(f"this reward for event {event_id!r} is already stored")
            before = replace(logged, stored=list(logged.stored))
            end = logged.window_end(timedelta(seconds=config.reward_wait_seconds))
            in_window = end is not None and now <= end and not logged.learned
            duplicate = config.reward_aggregation == "first" and logged.window_count > 0
            counted = in_window and not duplicate
            learn_now = counted and config.reward_aggregation == "first"
            logged.stored.append((value, reward_id))
            if counted:
                logged.window_count += 1
                logged.window_total += value
            logged.learned = logged.learned or learn_now
        rows: list[Row] = [(schema.rewards, {"event_id": event_id, "value": value,
                                             "reward_id": reward_id or None,
                                             "learned": counted, "received_at": now})]
        undo, done = self._undo(logged, before), self._done()
        if learn_now:
            self._submit_learning(logged, value, now, rows, undo, done)
        else:
            self._writer.submit(Write(rows, on_failure=undo, done=done))
        if done is not None:
            await done
        if duplicate:
            raise AlreadyExists(f"event {event_id!r} already has a reward; this one is stored "
                                "for offline evaluation but not learned")
        return RewardOutcome(learned=counted)

    @staticmethod
    def _is_retry(logged: Logged, value: float, reward_id: str, aggregation: str) -> bool:
        if reward_id:
            return any(stored_id == reward_id for _, stored_id in logged.stored)
        return aggregation == "first" and (value, "") in logged.stored

    # ---------------------------------------------------------------- Activate
    async def activate(self, event_id: str) -> None:
        """Start the reward window of a deferred decision (idempotent)."""
        logged = await self._find(event_id)
        self._experiment(logged.experiment)
        if not logged.deferred:
            raise FailedPrecondition(f"decision {event_id!r} was not deferred; it is active already")
        self._check_available()
        with self._lock:
            if logged.activated_at is not None:
                return
            before = replace(logged)
            logged.activated_at = now = self._clock()
        done = self._done()
        self._writer.submit(Write(
            [(schema.activations, {"event_id": event_id, "activated_at": now})],
            after_commit=lambda: self._open_window(logged), on_failure=self._undo(logged, before),
            done=done))
        if done is not None:
            await done

    # ---------------------------------------------------------------- windows
    def close_windows(self) -> int:
        """Learn every decision whose window has closed (default reward, or the ``sum``).

        Called from the maintenance thread (and at start); waits for the commits."""
        now = self._clock()
        due: list[tuple[Logged, Logged, float]] = []
        with self._lock:
            while self._deadlines and self._deadlines[0][0] < now:
                _, event_id = heapq.heappop(self._deadlines)
                logged = self._open.pop(event_id, None)
                if logged is None or logged.learned:
                    continue
                config = self.experiments[logged.experiment].config
                value = (logged.window_total if logged.window_count > 0
                         else config.default_reward)
                due.append((logged, replace(logged, stored=list(logged.stored)), value))
                logged.learned = True
        closing: list[tuple[Logged, Future[None]]] = []
        for logged, before, value in due:
            done: Future[None] = Future()
            self._submit_learning(logged, value, now, [], self._undo(logged, before), done)
            closing.append((logged, done))
        for logged, done in closing:
            try:
                done.result()
            except Unavailable:  # the database is down: close it again on a later tick
                self._open_window(logged)
        return len(closing)

    def restore_windows(self) -> int:
        """At start: reopen the windows found in SQL; those that closed meanwhile close next tick."""
        count = 0
        for experiment in self.experiments.values():
            for row in queries.unlearned_decisions(self._engine, experiment.name):
                logged = self._logged_from_row(row)
                self._open_window(logged)
                count += 1
        return count

    def _open_window(self, logged: Logged) -> None:
        config = self.experiments[logged.experiment].config
        end = logged.window_end(timedelta(seconds=config.reward_wait_seconds))
        if end is None or logged.learned:
            return
        with self._lock:
            self._open[logged.outcome.event_id] = logged
            heapq.heappush(self._deadlines, (end, logged.outcome.event_id))

    # ---------------------------------------------------------------- learning
    def _submit_learning(self, logged: Logged, value: float, now: datetime, rows: list[Row],
                         undo: Callable[[], None], done: Done) -> None:
        """Queue ``rows`` plus a learnings row with the next seq (``undo`` if it fails).

        ``_seq_lock`` makes seq order the queue order (= commit order = learning order). The
        after-commit hooks never take it, so a full queue cannot deadlock the writer.
        """
        event_id = logged.outcome.event_id
        with self._seq_lock:
            seq = self._next_seq
            self._next_seq += 1
            rows = [*rows, (schema.learnings, {"seq": seq, "event_id": event_id,
                                               "experiment": logged.experiment, "value": value,
                                               "learned_at": now})]
            self._writer.submit(Write(rows, after_commit=lambda: self._learn(logged, value, seq),
                                      on_failure=undo, done=done))

    def _learn(self, logged: Logged, value: float, seq: int) -> None:
        """Apply one learned event to its serving variant and to every shadow variant."""
        experiment = self.experiments[logged.experiment]
        serving = experiment.variants.get(logged.outcome.variant)
        for variant in (serving, *experiment.shadows()):
            if variant is not None:
                variant.learn(logged.decision, logged.outcome.chosen, value,
                              logged.outcome.probability, seq)
        with self._lock:
            self._open.pop(logged.outcome.event_id, None)
            self.learned_events += 1

    def _done(self) -> asyncio.Future[None] | None:
        """What a call's write resolves: a future to await (strict), or none (relaxed)."""
        return None if self._relaxed else waiter()

    def _undo(self, logged: Logged, before: Logged) -> Callable[[], None]:
        """The ``on_failure`` hook of a write that changed ``logged``: put it back as ``before``."""
        def undo() -> None:
            with self._lock:
                for name in Logged.__slots__:
                    setattr(logged, name, getattr(before, name))
        return undo

    # ---------------------------------------------------------------- the join
    async def _find(self, event_id: str) -> Logged:
        with self._lock:
            logged = self._cache.get(event_id) or self._open.get(event_id)
        if logged is None:
            logged = await asyncio.to_thread(self._load, event_id)
        if logged is None:
            raise NotFound(f"no decision with event_id {event_id!r}")
        return logged

    def _load(self, event_id: str) -> Logged | None:
        """The logged decision from SQL, cached; None when the event id is unknown."""
        try:
            row = queries.find_decision(self._engine, event_id)
        except sa.exc.OperationalError as error:
            raise Unavailable("the database is unavailable; retry later") from error
        if row is None:
            return None
        logged = self._logged_from_row(row)
        with self._lock:
            found = self._open.get(event_id) or self._cache.setdefault(event_id, logged)
        return found

    @staticmethod
    def _logged_from_row(row: Mapping[str, Any]) -> Logged:
        decision = decision_from_json(row["context"], row["actions"])
        outcome = ChooseOutcome(event_id=row["event_id"], action_ids=decision.action_ids,
                                distribution=tuple(row["distribution"]),
                                chosen=row["chosen_index"], variant=row["variant"],
                                model_version=row["model_version"])
        rewards: Sequence[Mapping[str, Any]] = row["rewards"]
        counted = [r["value"] for r in rewards if r["learned"]]
        activated = row["activated_at"]
        return Logged(experiment=row["experiment"], outcome=outcome, decision=decision,
                      created_at=as_utc(row["created_at"]), deferred=row["deferred"],
                      activated_at=as_utc(activated) if activated is not None else None,
                      learned=row["learned_seq"] is not None,
                      stored=[(r["value"], r["reward_id"] or "") for r in rewards],
                      window_count=len(counted), window_total=float(sum(counted)))

    def _remember(self, logged: Logged) -> None:
        with self._lock:
            self._cache[logged.outcome.event_id] = logged
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._open_window(logged)

    def _check_available(self) -> None:
        if not self._available():
            raise Unavailable("the database is unavailable; retry later")

    def _experiment(self, name: str) -> Experiment:
        experiment = self.experiments.get(name)
        if experiment is None:
            raise NotFound(f"experiment {name!r} is not configured")
        return experiment

    @staticmethod
    def _same_experiment(logged: Logged, experiment: str) -> Logged:
        if logged.experiment != experiment:
            raise AlreadyExists(f"event_id {logged.outcome.event_id!r} is already used by "
                                f"experiment {logged.experiment!r}")
        return logged
