"""``arbiter evaluate --promote-if-better``: promote the offline winner only on clear evidence.

Candidates of an offline replay are not server variants, so a winner is promoted only when its
name is a variant of the experiment (e.g. a shadow variant replayed offline under the same name)
and the lower bound of its estimate (by the summary's primary estimator) is above the upper
bound of the champion's: the observed mean reward of the control variant's logged decisions,
with its interval. The decision (:func:`decide_promotion`) is pure; :func:`promote_if_better`
asks the server (``ExperimentService.GetExperiment``, then ``Promote``) and is the only place
evaluation touches gRPC — imported lazily, inside the function.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arbiter.evaluation.summary import Summary

if TYPE_CHECKING:
    import grpc

__all__ = ["Promotion", "decide_promotion", "promote_if_better"]


@dataclass(frozen=True)
class Promotion:
    """Whether to promote ``variant``, and why (or why not), in one sentence."""

    promote: bool
    variant: str | None
    reason: str


def decide_promotion(summary: Summary, *, control: str, variants: Collection[str]) -> Promotion:
    """Promote ``summary.winner`` iff it is a variant other than ``control`` and clearly better."""
    winner = summary.winner
    if winner is None:
        return Promotion(False, None, "nothing promoted: no candidate could be estimated")
    if winner not in variants:
        return Promotion(False, None, f"nothing promoted: the winner `{winner}` is not a variant of "
                         f"experiment `{summary.experiment}` ({', '.join(sorted(variants))})")
    if winner == control:
        return Promotion(False, None, f"nothing promoted: `{winner}` is already the champion")
    if control not in summary.variants:
        return Promotion(False, None, f"nothing promoted: no learned decisions of the champion "
                         f"`{control}` in the evaluated log")
    estimate = next(c for c in summary.candidates if c.name == winner).estimates[summary.primary]
    champion_log = summary.variants[control]
    champion = champion_log.observed
    level = f"{summary.confidence * 100:g}%"
    comparison = (f"`{winner}` {summary.primary} {estimate.value:.4g} [{estimate.low:.4g}, "
                  f"{estimate.high:.4g}] vs champion `{control}` observed {champion.value:.4g} "
                  f"[{champion.low:.4g}, {champion.high:.4g}] over {champion_log.rounds:,} rounds ({level})")
    if estimate.low > champion.high:
        return Promotion(True, winner, f"offline evaluation: {comparison}")
    return Promotion(False, None, f"nothing promoted: the lower bound does not beat the champion's "
                     f"upper bound: {comparison}")


def promote_if_better(summary: Summary, *, target: str, timeout: float = 10.0,
                      channel: grpc.Channel | None = None,
                      metadata: Sequence[tuple[str, str]] | None = None) -> Promotion:
    """Ask the server at ``target`` for the champion and promote the winner if it clearly beats it.

    ``channel`` (closed here) replaces the plaintext one, e.g. TLS; ``metadata`` goes with each
    call (``authorization: Bearer <token>`` for a server with tokens: read and admin roles)."""
    import grpc

    from arbiter.v1 import experiments_pb2, experiments_pb2_grpc

    with channel or grpc.insecure_channel(target) as opened:
        stub = experiments_pb2_grpc.ExperimentServiceStub(opened)
        experiment = stub.GetExperiment(
            experiments_pb2.GetExperimentRequest(experiment=summary.experiment), timeout=timeout,
            metadata=metadata)
        promotion = decide_promotion(summary, control=experiment.control,
                                     variants={v.name for v in experiment.variants})
        if promotion.promote:
            stub.Promote(experiments_pb2.PromoteRequest(
                experiment=summary.experiment, variant=promotion.variant or "", reason=promotion.reason),
                timeout=timeout, metadata=metadata)
    return promotion
