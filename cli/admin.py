"""``arbiter report``, ``promote`` and ``erase``: the admin API from the command line."""

from __future__ import annotations

import math
import sys
import uuid

import grpc
from rich.console import Console
from rich.table import Table

from arbiter.client import Connection
from arbiter.v1 import experiments_pb2 as pb
from arbiter.v1 import experiments_pb2_grpc


def _call(target: str, method: str, request: object,
          connection: Connection | None = None, timeout: float = 30) -> object | None:
    """One ExperimentService call over ``connection`` (TLS, token; plaintext without one)."""
    connection = connection or Connection()
    with connection.channel(target) as channel:
        stub = experiments_pb2_grpc.ExperimentServiceStub(channel)
        try:
            response: object = getattr(stub, method)(request, timeout=timeout,
                                                     metadata=connection.metadata)
            return response
        except grpc.RpcError as error:
            print(f"arbiter: {error.code().name}: {error.details()}", file=sys.stderr)
            return None


def _interval(message: pb.VariantReport, name: str) -> str:
    if not message.HasField(name):  # type: ignore[arg-type]
        return "-"
    value = getattr(message, name)
    return f"{value.estimate:.3f} [{value.low:.3f}, {value.high:.3f}]"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def variants_table(title: str, variants: list[pb.VariantReport], control: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("variant", "role", "traffic", "decisions", "units", "rewards",
                   "mean reward [95% CI]", "diff to control [95% CI]", "p", "P(best)",
                   "IPS [95% CI]", "SNIPS [95% CI]"):
        table.add_column(column, justify="left" if column in ("variant", "role") else "right")
    for v in variants:
        role = "champion" if v.variant == control else ("shadow" if v.shadow else "challenger")
        table.add_row(v.variant, role, f"{v.traffic:.1%}", str(v.decisions), str(v.units),
                      str(v.rewards), _interval(v, "mean_reward"),
                      _interval(v, "difference_to_control"), _p(v.p_value),
                      f"{v.probability_best:.3f}", _interval(v, "ips"), _interval(v, "snips"))
    return table


def srm_verdict(srm: pb.SampleRatioCheck) -> str:
    observed = ", ".join(f"{name} {count}" for name, count in sorted(srm.observed_units.items()))
    expected = ", ".join(f"{name} {share:.1%}" for name, share in
                         sorted(srm.expected_share.items()))
    verdict = ("MISMATCH: units per variant do not match the weights; do not trust the "
               "comparison until the assignment is fixed" if srm.mismatch else "ok")
    return (f"sample ratio: {verdict} (chi-square {srm.chi_square:.2f}, p = {srm.p_value:.3g}; "
            f"units {observed}; weights {expected})")


def report(target: str, experiment: str, segment_by: str = "", *,
           connection: Connection | None = None) -> int:
    answer = _call(target, "GetReport",
                   pb.GetReportRequest(experiment=experiment, segment_by=segment_by), connection)
    if answer is None:
        return 1
    assert isinstance(answer, pb.Report)
    console = Console(width=max(160, Console().width))
    console.print(variants_table(f"experiment {answer.experiment} (champion {answer.control})",
                                 list(answer.variants), answer.control))
    console.print(srm_verdict(answer.sample_ratio))
    for segment in answer.segments:
        title = f"{answer.segment_by} = {segment.segment} ({segment.units} units)"
        if segment.too_few_units:
            console.print(f"{title}: too few units per variant to compare")
        else:
            console.print(variants_table(title, list(segment.variants), answer.control))
    return 0


def promote(target: str, experiment: str, variant: str, reason: str = "", *,
            connection: Connection | None = None) -> int:
    answer = _call(target, "Promote",
                   pb.PromoteRequest(experiment=experiment, variant=variant, reason=reason),
                   connection)
    if answer is None:
        return 1
    assert isinstance(answer, pb.PromoteResponse)
    traffic = ", ".join(f"{v.name} {'shadow' if v.shadow else f'{v.traffic:.1%}'}"
                        for v in answer.experiment.variants)
    print(f"{variant} is now the champion of {experiment} (was {answer.previous_champion}); "
          f"traffic: {traffic}")
    return 0


def erase(target: str, unit: str, experiment: str = "", request_id: str = "", *,
          connection: Connection | None = None, timeout: float = 600) -> int:
    """``arbiter erase``: delete a unit's events and rebuild the models without them. Without
    ``request_id`` one is made (printed: give it again to retry the same erasure)."""
    request_id = request_id or f"erase-{uuid.uuid4()}"
    answer = _call(target, "EraseUnit",
                   pb.EraseUnitRequest(unit_id=unit, experiment=experiment,
                                       request_id=request_id), connection, timeout)
    if answer is None:
        print(f"arbiter: the erasure may have been done; retry with --request-id {request_id}",
              file=sys.stderr)
        return 1
    assert isinstance(answer, pb.EraseUnitResponse)
    rebuilt = ", ".join(answer.rebuilt_experiments) or "none"
    print(f"erasure {answer.request_id}{' (done before)' if answer.repeated else ''}: "
          f"{answer.decisions_deleted} decisions, {answer.rewards_deleted} rewards, "
          f"{answer.activations_deleted} activations, {answer.learned_events_deleted} learned "
          f"events deleted in {experiment or 'every experiment'}; models rebuilt: {rebuilt}")
    return 0
