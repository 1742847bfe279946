"""The one rule that calls a candidate better, and the thresholds an estimate must pass to count.

Effect size. A candidate is **better** than a reference (the logging policy, or one serving
variant) when the lower bound of the paired difference V̂(candidate) - V(reference) clears the
minimum effect δ: ``low > δ``; **worse** when the upper bound is below 0; otherwise the evidence
does not show an effect of at least δ. δ is given as reward units (``0.01``) or as a percentage
of the reference's observed mean (``"1%"``, the default :data:`DEFAULT_MIN_EFFECT`).

Evaluability. An importance-weighted estimate rests on the logged rounds where the logging
policy gave the candidate's actions a fair chance. A candidate gets no verdict when

- its effective sample size (Kish: (Σw)²/Σw², w = π(a_i|x_i)/π_0(a_i|x_i)) is below
  :data:`DEFAULT_MIN_ESS` (``--min-ess``), or
- more than :data:`DEFAULT_MAX_UNSUPPORTED` (``--max-unsupported``) of its probability mass,
  averaged over the rounds, lies on actions the log gave probability below :data:`NEAR_ZERO`
  (there the log says nothing about the candidate's choices; DR fills them from the model only).

:func:`judge` and :func:`pick_winner` are the only places these rules are applied: the console,
the HTML report and ``--promote-if-better`` all read their results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_MAX_UNSUPPORTED",
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_MIN_ESS",
    "NEAR_ZERO",
    "Evaluability",
    "MinEffect",
    "Outcome",
    "evaluability",
    "judge",
    "pick_winner",
]

NEAR_ZERO = 1e-3
"""A logged probability below this counts as (near) zero support for an action."""
DEFAULT_MIN_ESS = 100.0
"""Fewest effective samples behind an estimate that gets a verdict."""
DEFAULT_MAX_UNSUPPORTED = 0.05
"""Largest share of a candidate's mass on (near) unsupported actions that gets a verdict."""
DEFAULT_MIN_EFFECT = "1%"
"""Smallest difference worth calling better: 1% of the reference's observed mean reward."""

Outcome = Literal["better", "worse", "inconclusive"]


@dataclass(frozen=True)
class MinEffect:
    """δ in reward units (``relative=False``) or as a fraction of the reference mean."""

    amount: float
    relative: bool

    @classmethod
    def parse(cls, text: str) -> MinEffect:
        """``"0.01"`` (reward units) or ``"1%"`` (of the reference's mean); must be >= 0."""
        stripped = text.strip()
        relative = stripped.endswith("%")
        try:
            amount = float(stripped.removesuffix("%"))
        except ValueError:
            raise ValueError(f"--min-effect must be a number or a percentage like 1%, got {text!r}") from None
        if not amount >= 0.0 or amount == float("inf"):
            raise ValueError(f"--min-effect must be a finite number >= 0, got {text!r}")
        return cls(amount / 100.0 if relative else amount, relative)

    def threshold(self, reference_mean: float) -> float:
        """δ in reward units against a reference whose observed mean is ``reference_mean``."""
        return self.amount * abs(reference_mean) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount * 100:g}% of the reference mean" if self.relative else f"{self.amount:g}"


def judge(low: float, high: float, min_effect: float) -> Outcome:
    """``better`` iff ``low > min_effect``, ``worse`` iff ``high < 0``, else ``inconclusive``.

    ``[low, high]`` is the interval of the paired difference candidate - reference."""
    if low > min_effect:
        return "better"
    if high < 0.0:
        return "worse"
    return "inconclusive"


@dataclass(frozen=True)
class Evaluability:
    """Whether an estimate may carry a verdict; ``reason`` says why not (and what to change)."""

    ok: bool
    reason: str = ""


def evaluability(*, ess: float, n: int, unsupported: float, min_ess: float = DEFAULT_MIN_ESS,
                 max_unsupported: float = DEFAULT_MAX_UNSUPPORTED) -> Evaluability:
    """Check a candidate's effective sample size ``ess`` (of ``n`` rounds) and ``unsupported``
    share against the thresholds; the reason names the figure, the threshold and the remedy."""
    problems = []
    if ess < min_ess:
        problems.append(f"its effective sample size is {ess:,.0f} of {n:,} rounds (below --min-ess "
                        f"{min_ess:g})")
    if unsupported > max_unsupported:
        problems.append(f"{unsupported:.1%} of its probability mass is on actions the log gave "
                        f"probability < {NEAR_ZERO:g} (above --max-unsupported {max_unsupported:g})")
    if not problems:
        return Evaluability(True)
    return Evaluability(False, " and ".join(problems) + "; the logging policy explores too little for "
                        "this candidate: raise the serving variants' exploration (e.g. `epsilon`), "
                        "log more rounds, or evaluate a candidate closer to the logging policy")


@dataclass(frozen=True)
class Contender:
    """What :func:`pick_winner` needs of a candidate: its point estimate, the paired difference
    to the reference, and whether it is evaluable."""

    name: str
    value: float
    low: float
    high: float
    evaluable: bool


def pick_winner(contenders: Sequence[Contender], min_effect: float) -> Contender | None:
    """The evaluable contender judged ``better`` with the highest point estimate, or None."""
    better = [c for c in contenders if c.evaluable and judge(c.low, c.high, min_effect) == "better"]
    return max(better, key=lambda c: c.value, default=None)
