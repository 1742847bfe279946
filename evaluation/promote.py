"""``arbiter evaluate --promote-if-better``: promote what was evaluated, and only on clear evidence.

:func:`decide_promotion` is pure: given the summary and the experiment as the server serves it
(its champion and each variant's configured policy and parameters), it promotes the summary's
winner only when

1. the winner is the name of a variant other than the champion, and that variant's configured
   policy and hyperparameters (defaults filled in) equal the evaluated candidate's — a candidate
   `other=linucb` never promotes a variant `other` that serves `uniform`;
2. the champion has learned decisions in the evaluated log, and the winner's paired difference
   with the champion on the champion's own rounds (:class:`evaluation.summary.Comparison`) is
   evaluable and judged ``better`` by :func:`evaluation.verdict.judge` — the same rule, the same
   minimum effect, as the verdict.

Otherwise it refuses and says why. Asking the server and calling ``Promote`` is a client
program's job: :mod:`cli.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from arbiter.evaluation.replay import CandidateError, CandidateSpec
from arbiter.evaluation.report_html import fmt
from arbiter.evaluation.summary import Summary

__all__ = ["Promotion", "decide_promotion"]


@dataclass(frozen=True)
class Promotion:
    """Whether to promote ``variant``, and why (or why not), in one sentence."""

    promote: bool
    variant: str | None
    reason: str


def decide_promotion(summary: Summary, *, control: str, variants: Mapping[str, CandidateSpec]) -> Promotion:
    """Promote ``summary.winner`` iff it is a variant configured as evaluated and clearly better
    than the champion ``control``; ``variants`` maps each served variant to its configuration."""
    winner = summary.winner
    if winner is None:
        return Promotion(False, None, f"nothing promoted: no candidate is better by the verdict's rule "
                         f"({summary.verdict})")
    evaluated = next(c for c in summary.candidates if c.name == winner)
    spec = CandidateSpec(name=winner, policy=evaluated.policy, params=evaluated.params)
    served = variants.get(winner)
    if served is None:
        same = [name for name, v in variants.items() if _same(v, spec)]
        hint = (f"; variant `{same[0]}` serves that configuration: name the candidate `{same[0]}`"
                if same else "")
        return Promotion(False, None, f"nothing promoted: the winner `{winner}` is not a variant of "
                         f"experiment `{summary.experiment}` ({', '.join(sorted(variants))}){hint}")
    if not _same(served, spec):
        return Promotion(False, None, f"nothing promoted: variant `{winner}` serves {served.describe()} "
                         f"but the evaluated candidate `{winner}` is {spec.describe()}; evaluate what "
                         "the variant serves (--candidates-from-config) before promoting it")
    if winner == control:
        return Promotion(False, None, f"nothing promoted: `{winner}` is already the champion")
    if control not in summary.variants:
        return Promotion(False, None, f"nothing promoted: no learned decisions of the champion "
                         f"`{control}` in the evaluated log")
    versus = evaluated.versus(control)
    if versus is None:
        return Promotion(False, None, f"nothing promoted: `{winner}` could not be compared with the "
                         f"champion `{control}`")
    d = versus.difference
    comparison = (f"`{winner}` - champion `{control}` on its {versus.rounds:,} rounds: "
                  f"{summary.primary} {fmt(d.value)} [{fmt(d.low)}, {fmt(d.high)}] "
                  f"({summary.confidence * 100:g}%), minimum effect {fmt(versus.min_effect)}")
    if versus.outcome is None:
        return Promotion(False, None, f"nothing promoted: no verdict against the champion: {versus.refusal}")
    if versus.outcome == "better":
        return Promotion(True, winner, f"offline evaluation: {comparison}")
    return Promotion(False, None, f"nothing promoted: not better than the champion by the minimum "
                     f"effect: {comparison}")


def _same(a: CandidateSpec, b: CandidateSpec) -> bool:
    """Whether two specs configure the same policy (hyperparameters with defaults filled in)."""
    try:
        return a.configuration() == b.configuration()
    except CandidateError:
        return False
