"""Change detection on a stream of rewards: the one-sided Page-Hinkley test for a drop.

For rewards ``x_1, x_2, ...`` with running mean ``m_t`` and standard deviation ``s_t`` (of
``x_1 .. x_t``), the test works in units of ``s`` so that one default suits any reward scale::

    U_t = sum_{i <= t} ((x_i - m_i) / s_i + delta)        M_t = max(0, U_1, ..., U_t)

(a term with ``s_i = 0`` — every reward so far equal — is just ``delta``) and the alarm is
raised at the first ``t`` with ``M_t - U_t > threshold``. ``delta`` (the drop tolerated, in
standard deviations) makes ``U`` climb by ``delta`` per reward while the mean holds, so noise
alone rarely falls ``threshold`` below the peak. After the mean drops by ``D`` standard
deviations at ``t0``, each of the next ``t0`` rewards lies on average at least ``D / 2`` below
the running mean, so ``U`` falls by at least ``D / 2 - delta`` per reward in expectation and the
alarm comes within about ``threshold / (D / 2 - delta)`` rewards (sooner while the running mean
still sits near the old one). A rise in the mean (a policy that learns) only raises ``U``. The
state is five numbers, a deterministic function of the rewards in order (:meth:`state` /
:meth:`from_state` for snapshots).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class PageHinkley:
    """The test above; :meth:`add` returns True on the reward that raises the alarm, after which
    the caller :meth:`restart`\\ s it (or keeps it: it stays raised while ``M - U > threshold``)."""

    delta: float
    threshold: float
    count: int = 0
    mean: float = 0.0
    squares: float = 0.0  # sum of squared deviations from the mean (Welford)
    cumulative: float = 0.0  # U_t
    peak: float = 0.0  # M_t

    def add(self, reward: float) -> bool:
        """Feed one reward; True if the alarm is raised by it (not already raised before). A
        reward so large that a sum would overflow is passed over (the state stays finite)."""
        was = self.raised
        count = self.count + 1
        step = reward - self.mean  # Python floats overflow to inf / nan, never raise
        mean = self.mean + step / count
        squares = self.squares + step * (reward - mean)
        spread = math.sqrt(squares / count) if squares > 0.0 else 0.0
        deviation = (reward - mean) / spread if spread > 0.0 else 0.0
        cumulative = self.cumulative + deviation + self.delta
        if not (math.isfinite(mean) and math.isfinite(squares) and math.isfinite(cumulative)):
            return False
        self.count, self.mean, self.squares, self.cumulative = count, mean, squares, cumulative
        self.peak = max(self.peak, self.cumulative)
        return self.raised and not was

    @property
    def raised(self) -> bool:
        """``M_t - U_t > threshold``."""
        return self.peak - self.cumulative > self.threshold

    def restart(self) -> None:
        """Forget every reward (after an alarm was acted on)."""
        self.count, self.mean, self.squares, self.cumulative, self.peak = 0, 0.0, 0.0, 0.0, 0.0

    def state(self) -> dict[str, Any]:
        """The running sums, for a snapshot."""
        return {"count": self.count, "mean": self.mean, "squares": self.squares,
                "cumulative": self.cumulative, "peak": self.peak}

    @classmethod
    def from_state(cls, delta: float, threshold: float, state: Mapping[str, Any]) -> PageHinkley:
        """Inverse of :meth:`state` (floats round-trip exactly through JSON)."""
        return cls(delta, threshold, int(state["count"]), float(state["mean"]),
                   float(state["squares"]), float(state["cumulative"]), float(state["peak"]))

