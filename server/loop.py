"""The decision loop: Choose → log → answer; Reward → join → store → learn.

Choose: pick the serving variant (sticky per unit), ask its policy for a distribution over the
offered actions, score the shadow variants on the same actions, draw one action with the RNG
seeded by the event id, write the decision (group commit) and only then answer. A retried
event id returns the logged decision and writes nothing.

Reward: find the decision (memory, else SQL), claim its reward slot (one learned reward per
event), write the reward and a ``learnings`` row with the next ``seq`` in one transaction, and
learn in the writer's after-commit hook — in ``seq`` order, so the live models are exactly the
fold of the log that recovery replays.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from policies import Decision
from server.assignment import pseudonym
from server.domain import ChooseInput, ChooseOutcome, RewardOutcome
from server.errors import AlreadyExists, NotFound
from server.experiments import Experiment, rng_for
from server.storage import queries, schema
from server.storage.codec import actions_to_json, decision_from_json, namespaces_to_json
from server.storage.writer import GroupCommitWriter, Row, Write

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Logged:
    """A logged decision as the reward join needs it."""

    experiment: str
    outcome: ChooseOutcome
    decision: Decision
    rewarded: bool = False

    @property
    def chosen(self) -> int:
        return self.outcome.chosen

    @property
    def probability(self) -> float:
        return self.outcome.probability


def draw(distribution: np.ndarray, rng: np.random.Generator) -> int:
    """Inverse-CDF sample of one index from ``distribution`` (shape (K,), sums to 1)."""
    cumulative = np.cumsum(distribution)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    index = min(index, len(distribution) - 1)
    while distribution[index] <= 0:  # never draw a zero-probability action at the float edge
        index -= 1
    return index


class DecisionLoop:
    """Choose, Reward and the join between them. Thread-safe."""

    def __init__(self, experiments: Mapping[str, Experiment], writer: GroupCommitWriter,
                 engine: object, *, clock: Clock = utc_now, cache_size: int = 100_000) -> None:
        self.experiments = experiments
        self._writer = writer
        self._engine = engine
        self._clock = clock
        self._cache: OrderedDict[str, Logged] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[ChooseOutcome]] = {}
        self._next_seq = queries.last_seq(engine) + 1  # type: ignore[arg-type]

    # ---------------------------------------------------------------- Choose
    def choose(self, request: ChooseInput) -> ChooseOutcome:
        experiment = self._experiment(request.experiment)
        if not request.event_id:
            return self._decide(experiment, request, str(uuid.uuid4()))
        event_id = request.event_id
        with self._lock:
            logged = self._cache.get(event_id)
            if logged is not None:
                return self._same_experiment(logged, request.experiment).outcome
            pending = self._inflight.get(event_id)
            if pending is None:
                mine: Future[ChooseOutcome] = Future()
                self._inflight[event_id] = mine
        if pending is not None:  # a concurrent retry: answer what the first call answers
            return pending.result()
        try:
            logged = self._load(event_id)
            outcome = (self._same_experiment(logged, request.experiment).outcome
                       if logged is not None else self._decide(experiment, request, event_id))
        except BaseException as error:
            mine.set_exception(error)
            raise
        finally:
            with self._lock:
                del self._inflight[event_id]
        mine.set_result(outcome)
        return outcome

    def _decide(self, experiment: Experiment, request: ChooseInput, event_id: str) -> ChooseOutcome:
        decision = request.decision
        variant = experiment.serving(request.unit_id, event_id)
        rng = rng_for(event_id)
        distribution = variant.distribution(decision, rng)
        chosen = draw(distribution, rng)
        shadow = {v.name: [float(p) for p in v.distribution(decision, rng_for(event_id, v.name))]
                  for v in experiment.shadows()}
        outcome = ChooseOutcome(event_id=event_id, action_ids=decision.action_ids,
                                distribution=tuple(float(p) for p in distribution),
                                chosen=chosen, variant=variant.name,
                                model_version=variant.model_version)
        row = {
            "event_id": event_id, "experiment": experiment.name, "variant": variant.name,
            "model_version": outcome.model_version,
            "unit_hash": pseudonym(experiment.config.salt, request.unit_id)
            if request.unit_id else None,
            "context": namespaces_to_json(decision.context),
            "actions": actions_to_json(decision),
            "distribution": list(outcome.distribution), "chosen_index": chosen,
            "chosen_action": outcome.action_id, "probability": outcome.probability,
            "shadow": shadow, "deferred": request.deferred, "created_at": self._clock(),
        }
        logged = Logged(experiment=experiment.name, outcome=outcome, decision=decision)
        try:
            self._writer.write([(schema.decisions, row)], after_commit=lambda: self._remember(logged))
        except AlreadyExists:  # another process logged this event id first: answer its decision
            existing = self._load(event_id)
            if existing is None:
                raise
            return self._same_experiment(existing, request.experiment).outcome
        return outcome

    # ---------------------------------------------------------------- Reward
    def reward(self, event_id: str, value: float) -> RewardOutcome:
        logged = self._find(event_id)
        experiment = self._experiment(logged.experiment)
        now = self._clock()
        reward_row: Row = (schema.rewards, {"event_id": event_id, "value": value,
                                            "received_at": now})
        with self._lock:
            first = not logged.rewarded
            logged.rewarded = True
            if first:
                seq = self._next_seq
                self._next_seq += 1
                write = Write(
                    rows=[(reward_row[0], {**reward_row[1], "learned": True}),
                          (schema.learnings, {"seq": seq, "event_id": event_id,
                                              "experiment": experiment.name, "value": value,
                                              "learned_at": now})],
                    after_commit=lambda: self._learn(experiment, logged, value, seq))
            else:
                write = Write(rows=[(reward_row[0], {**reward_row[1], "learned": False})])
            future = self._writer.submit(write)
        try:
            future.result()
        except BaseException:
            if first:
                with self._lock:
                    logged.rewarded = False
            raise
        if not first:
            raise AlreadyExists(f"event {event_id!r} already has a reward; this one is stored "
                                "for offline evaluation but not learned")
        return RewardOutcome(learned=True)

    def _learn(self, experiment: Experiment, logged: Logged, value: float, seq: int) -> None:
        """Apply one learned event to its serving variant and to every shadow variant."""
        targets = [experiment.variants[logged.outcome.variant], *experiment.shadows()]
        for variant in targets:
            variant.learn(logged.decision, logged.chosen, value, logged.probability, seq)

    # ---------------------------------------------------------------- the join
    def _find(self, event_id: str) -> Logged:
        with self._lock:
            logged = self._cache.get(event_id)
        if logged is None:
            logged = self._load(event_id)
        if logged is None:
            raise NotFound(f"no decision with event_id {event_id!r}")
        return logged

    def _load(self, event_id: str) -> Logged | None:
        """The logged decision from SQL, cached; None when the event id is unknown."""
        row = queries.find_decision(self._engine, event_id)  # type: ignore[arg-type]
        if row is None:
            return None
        decision = decision_from_json(row["context"], row["actions"])
        outcome = ChooseOutcome(event_id=event_id, action_ids=decision.action_ids,
                                distribution=tuple(row["distribution"]),
                                chosen=row["chosen_index"], variant=row["variant"],
                                model_version=row["model_version"])
        logged = Logged(experiment=row["experiment"], outcome=outcome, decision=decision,
                        rewarded=row["reward_count"] > 0)
        with self._lock:
            return self._cache.setdefault(event_id, logged)

    def _remember(self, logged: Logged) -> None:
        with self._lock:
            self._cache[logged.outcome.event_id] = logged
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

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
