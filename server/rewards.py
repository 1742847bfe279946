"""The reward rules, as a pure function: what the log already holds in, the outcome out.

No locks and no I/O: the database decides the facts (is this a retry? did this reward take the
window? is the window open?) inside the writing transaction, and :func:`judge` turns them into
what is stored and what the caller is told:

========================  =========================  ==========  ===========  ===============
case                      facts                      stored      learned      answer
========================  =========================  ==========  ===========  ===============
retry                     same dedupe key stored     no          —            ALREADY_EXISTS
``first``, took window    window open, none learned  yes         yes, now     learned=true
``first``, duplicate      another reward learned     yes         no           ALREADY_EXISTS
``first``/``sum``, late   no open window             yes         no           learned=false
``sum``, in window        window open                yes         at close     learned=true
========================  =========================  ==========  ===========  ===============

"No open window" covers a window that closed (late reward), and a deferred decision that was
not activated yet (its window has not started).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    RETRY = "retry"
    DUPLICATE = "duplicate"
    STORED = "stored"


@dataclass(frozen=True, slots=True)
class Judgement:
    """``counted``: the row's ``learned`` flag (learned now under ``first``, at close under
    ``sum``); ``learn_now``: a learning is written in this transaction."""

    verdict: Verdict
    counted: bool = False
    learn_now: bool = False


def judge(*, aggregation: str, retry: bool, already_learned: bool, took_window: bool,
          window_open: bool) -> Judgement:
    """The outcome of one reward. ``took_window`` (``first``): this reward deleted the open
    window; ``window_open`` (``sum``): the window is open and held; ``already_learned``:
    another reward of the event is learned (``first``: it took the window before)."""
    if retry:
        return Judgement(Verdict.RETRY)
    if aggregation == "first":
        if took_window:
            return Judgement(Verdict.STORED, counted=True, learn_now=True)
        if already_learned:
            return Judgement(Verdict.DUPLICATE)
        return Judgement(Verdict.STORED)
    return Judgement(Verdict.STORED, counted=window_open)
