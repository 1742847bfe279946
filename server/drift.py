"""Drift alarms per variant, folded from the learned events (``Fold.on_apply``).

For each variant, over the learned decisions it served (in seq order):

- **reward drop**: the one-sided Page-Hinkley test of :mod:`policies.drift` on the learned
  rewards (the linear policies' defaults, ``drift_delta`` = 0.1 and ``drift_threshold`` = 50
  standard deviations). Raised at the event that crosses the threshold; the test then restarts,
  so a later drop raises it again.
- **exploration collapse**: over the last ``window`` decisions, the logged probability ``p`` of
  the served action has mean ``E[p] = sum_k p_k^2`` (the chance two draws agree), so
  ``effective_actions = 1 / mean(p)`` is the effective number of actions the variant still
  serves (``K`` for uniform, 1 for a deterministic policy). Raised when the window is full and
  ``effective_actions < collapse_below`` (default 1.1: nine decisions in ten or more go to one
  action, e.g. LinUCB with its 1% floor); cleared when it climbs back.

Each raise is logged once (experiment, variant, kind, seq) and kept for :meth:`alarms`, which
``arbiter report`` reads. Everything is a function of the learned events in order, so every
process that folded the same events raises the same alarm at the same seq. The monitor keeps
no snapshot: at start-up :meth:`rebuild` folds the log's outcomes (seq, variant, reward,
probability — no decision is decoded) up to the position the fold restores from, and the
listener passes over those seqs when the fold replays them; so a restarted process holds the
same alarms as one that ran throughout. (Events that retention or an erasure deleted are not
read again: a process started after that folds the log without them.)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from arbiter.log import store
from arbiter.log.store import LearnedEvent
from arbiter.policies.drift import PageHinkley
from arbiter.policies.linear import DRIFT_DELTA, DRIFT_THRESHOLD
from arbiter.server.experiments import Experiment

log = logging.getLogger(__name__)

WINDOW = 500
COLLAPSE_BELOW = 1.1


@dataclass(frozen=True, slots=True)
class Alarm:
    """A variant's drift alarms: ``reward_drop_seq`` — seq of the last reward-drop alarm (None:
    never) and ``reward_drops`` how many; ``collapse_seq`` — seq where the current exploration
    collapse was raised (None: not collapsed); ``effective_actions`` over the last window (None
    until it is full)."""

    reward_drop_seq: int | None = None
    reward_drops: int = 0
    collapse_seq: int | None = None
    effective_actions: float | None = None

    @property
    def raised(self) -> bool:
        """A reward drop was ever detected, or exploration is collapsed now."""
        return self.reward_drop_seq is not None or self.collapse_seq is not None


@dataclass
class _Variant:
    drop: PageHinkley
    window: deque[float]  # the logged probabilities of the last decisions
    alarm: Alarm = field(default_factory=Alarm)


class DriftMonitor:
    """Feed it with ``fold.on_apply(monitor.on_apply)``; read :meth:`alarms`. Thread-safe."""

    def __init__(self, *, window: int = WINDOW, collapse_below: float = COLLAPSE_BELOW,
                 delta: float = DRIFT_DELTA, threshold: float = DRIFT_THRESHOLD) -> None:
        self._window, self._collapse_below = window, collapse_below
        self._delta, self._threshold = delta, threshold
        self._variants: dict[tuple[str, str], _Variant] = {}
        self._lock = threading.Lock()
        self.position = 0  # every seq <= position is folded (by rebuild)

    def rebuild(self, engine: sa.Engine, through: int) -> int:
        """Fold the log's learned decisions with ``seq <= through`` (before the fold restores);
        returns how many. Alarms raised on the way are logged again, marked as rebuilt."""
        folded = 0
        with engine.connect() as connection:
            while True:
                chunk = store.outcomes_after(connection, self.position, through)
                for seq, experiment, variant, value, probability in chunk:
                    self._observe(experiment, variant, seq, value, probability, "rebuilt ")
                    self.position = seq
                folded += len(chunk)
                if not chunk:
                    break
        self.position = max(self.position, through)
        return folded

    def on_apply(self, experiment: Experiment, event: LearnedEvent) -> None:
        """One learned decision, served by ``event.variant`` (passed over if :meth:`rebuild`
        folded it already)."""
        if event.seq > self.position:
            self._observe(experiment.name, event.variant, event.seq, event.value,
                          event.probability)

    def _observe(self, experiment: str, variant: str, seq: int, value: float,
                 probability: float, rebuilt: str = "") -> None:
        key = (experiment, variant)
        with self._lock:
            state = self._variants.get(key)
            if state is None:
                state = self._variants[key] = _Variant(PageHinkley(self._delta, self._threshold),
                                                       deque(maxlen=self._window))
            alarm = state.alarm
            if state.drop.add(value):
                state.drop.restart()
                alarm = replace(alarm, reward_drop_seq=seq, reward_drops=alarm.reward_drops + 1)
                log.warning("%sdrift alarm: experiment %s variant %s: learned rewards dropped "
                            "(Page-Hinkley) at seq %d", rebuilt, experiment, variant, seq)
            state.window.append(probability)
            if len(state.window) == self._window:
                effective = self._window / sum(state.window)
                since = alarm.collapse_seq
                if effective >= self._collapse_below:
                    since = None
                elif since is None:
                    since = seq
                    log.warning("%sdrift alarm: experiment %s variant %s: exploration collapsed "
                                "(%.3f effective actions over the last %d decisions) at seq %d",
                                rebuilt, experiment, variant, effective, self._window, seq)
                alarm = replace(alarm, effective_actions=effective, collapse_seq=since)
            state.alarm = alarm

    def alarms(self, experiment: str) -> dict[str, Alarm]:
        """``{variant: Alarm}`` of the variants of ``experiment`` that served learned decisions."""
        with self._lock:
            return {variant: state.alarm for (name, variant), state in self._variants.items()
                    if name == experiment}
