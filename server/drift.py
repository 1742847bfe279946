"""Drift alarms of one variant: a fold accumulator of the learned decisions it served.

Over the learned decisions a variant served (in seq order), :class:`DriftState` keeps:

- **reward drop**: the one-sided Page-Hinkley test of :mod:`policies.drift` on the learned
  rewards (the linear policies' defaults, ``drift_delta`` = 0.1 and ``drift_threshold`` = 50
  standard deviations). Raised at the event that crosses the threshold; the test then restarts,
  so a later drop raises it again.
- **exploration collapse**: over the last ``WINDOW`` decisions, the logged probability ``p`` of
  the served action has mean ``E[p] = sum_k p_k^2`` (the chance two draws agree), so
  ``effective_actions = 1 / mean(p)`` is the effective number of actions the variant still
  serves (``K`` for uniform, 1 for a deterministic policy). Raised when the window is full and
  ``effective_actions < COLLAPSE_BELOW`` (1.1: nine decisions in ten or more go to one action,
  e.g. LinUCB with its 1% floor); cleared when it climbs back.

It lives in the variant's report accumulators (``server.stats.VariantStats.drift``), so it is
kept exactly like them: updated once per learned event in the one learning order, stored with
every snapshot (the Page-Hinkley sums, the window's probabilities and the alarm: at most
``WINDOW`` + 10 numbers), loaded at start-up before the fold replays the log after the snapshot,
and rebuilt with the rest when an erasure rewinds the experiment (the erased events leave the
alarms too). Every process that folded the same events holds the same alarms at the same seqs.
:meth:`DriftState.observe` returns what it raised; the fold's listener logs it once
(:func:`announce`), rebuilds do not.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from arbiter.policies.drift import PageHinkley
from arbiter.policies.linear import DRIFT_DELTA, DRIFT_THRESHOLD

log = logging.getLogger(__name__)

WINDOW = 500
COLLAPSE_BELOW = 1.1
REWARD_DROP, COLLAPSE = "reward_drop", "exploration_collapse"


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


def _fresh_test() -> PageHinkley:
    return PageHinkley(DRIFT_DELTA, DRIFT_THRESHOLD)


@dataclass(slots=True)
class DriftState:
    """The accumulator above; ``served`` counts the decisions observed, ``total`` is the sum of
    the window's probabilities, kept as they come and go (``total += p``, and once the window
    is full ``total += p - oldest``) instead of summed again at every event: the same steps in
    the same order in every process, and stored with the window, so every process holds the
    same bits. The alarm's fields are kept apart and :attr:`alarm` assembles them when read
    (the report, the metrics, a snapshot), not at every event."""

    served: int = 0
    drop: PageHinkley = field(default_factory=_fresh_test)
    window: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    total: float = 0.0
    reward_drop_seq: int | None = None
    reward_drops: int = 0
    collapse_seq: int | None = None
    effective_actions: float | None = None

    @property
    def alarm(self) -> Alarm:
        return Alarm(self.reward_drop_seq, self.reward_drops, self.collapse_seq,
                     self.effective_actions)

    def observe(self, seq: int, value: float, probability: float) -> list[str]:
        """One learned decision the variant served (learned ``value``, logged ``probability`` of
        the served action); returns the kinds raised by it (:data:`REWARD_DROP`,
        :data:`COLLAPSE`)."""
        raised: list[str] = []
        self.served += 1
        if self.drop.add(value):
            self.drop.restart()
            self.reward_drop_seq, self.reward_drops = seq, self.reward_drops + 1
            raised.append(REWARD_DROP)
        window = self.window
        full = len(window) == WINDOW
        self.total += probability - window[0] if full else probability
        window.append(probability)
        if full or len(window) == WINDOW:
            effective = self.effective_actions = WINDOW / self.total
            if effective >= COLLAPSE_BELOW:
                self.collapse_seq = None
            elif self.collapse_seq is None:
                self.collapse_seq = seq
                raised.append(COLLAPSE)
        return raised

    def to_json(self) -> dict[str, Any]:
        """For ``snapshots.stats`` (floats round-trip exactly through JSON)."""
        return {"served": self.served, "test": self.drop.state(), "window": list(self.window),
                "total": self.total, "alarm": asdict(self.alarm)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftState:
        """Inverse of :meth:`to_json`. A snapshot written before ``total`` was kept sums its
        window once (every process that loads it does the same)."""
        alarm = data["alarm"]
        drop_seq, collapse_seq = alarm["reward_drop_seq"], alarm["collapse_seq"]
        effective = alarm["effective_actions"]
        window = deque((float(p) for p in data["window"]), maxlen=WINDOW)
        return cls(served=int(data["served"]),
                   drop=PageHinkley.from_state(DRIFT_DELTA, DRIFT_THRESHOLD, data["test"]),
                   window=window, total=float(data.get("total", sum(window))),
                   reward_drop_seq=None if drop_seq is None else int(drop_seq),
                   reward_drops=int(alarm["reward_drops"]),
                   collapse_seq=None if collapse_seq is None else int(collapse_seq),
                   effective_actions=None if effective is None else float(effective))


def announce(experiment: str, variant: str, kind: str, seq: int, state: DriftState) -> None:
    """Log an alarm once, when the fold raises it."""
    if kind == REWARD_DROP:
        log.warning("drift alarm: experiment %s variant %s: learned rewards dropped "
                    "(Page-Hinkley) at seq %d", experiment, variant, seq)
    else:
        log.warning("drift alarm: experiment %s variant %s: exploration collapsed (%.3f effective "
                    "actions over the last %d decisions) at seq %d", experiment, variant,
                    state.alarm.effective_actions, WINDOW, seq)
