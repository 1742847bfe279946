"""``arbiter report``, ``promote`` and ``erase``: the admin API from the command line."""

from __future__ import annotations

import math
import sys
import uuid

import grpc
from rich.console import Console
from rich.table import Table

from arbiter.client import Connection
from arbiter.evaluation.report_html import fmt
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


def _role(variant: pb.VariantReport, control: str) -> str:
    return "champion" if variant.variant == control else ("shadow" if variant.shadow
                                                          else "challenger")


INTERVALS = {
    "empirical-bernstein": "anytime-valid 95% confidence sequences (empirical Bernstein on the "
                           "experiment's reward_range): they hold at every look, read as often "
                           "as you like",
    "asymptotic": "anytime-valid 95% confidence sequences, asymptotic (set the experiment's "
                  "reward_range for non-asymptotic ones): they hold at every look",
}


def variants_table(title: str, variants: list[pb.VariantReport], control: str) -> Table:
    """Each variant's figures, by variant whatever its role now or then."""
    table = Table(title=title, title_justify="left")
    for column in ("variant", "role", "traffic", "decisions", "units", "rewards", "scored",
                   "mean reward [95% CS]", "value (IPS) [95% CS]", "SNIPS [95% CS]", "P(best)"):
        table.add_column(column, justify="left" if column in ("variant", "role") else "right")
    for v in variants:
        table.add_row(v.variant, _role(v, control), f"{v.traffic:.1%}", str(v.decisions),
                      str(v.units), str(v.rewards), str(v.scored), _interval(v, "mean_reward"),
                      _interval(v, "ips"), _interval(v, "snips"), f"{v.probability_best:.3f}")
    return table


def comparison_table(variants: list[pb.VariantReport], control: str,
                     min_effect: float = 0.0) -> Table:
    """Each candidate against the champion, with what the verdict rests on (ESS: effective
    sample size of its importance weights; off-log mass: its estimated probability on actions
    the log gave near-zero probability)."""
    threshold = f"; better/worse beyond ±{min_effect:g}" if min_effect > 0 else ""
    table = Table(title=f"against the champion {control}{threshold}", title_justify="left")
    for column in ("variant", "value - champion's", "p (anytime)", "ESS", "off-log mass",
                   "verdict"):
        table.add_column(column, justify="left" if column in ("variant", "verdict") else "right")
    for v in variants:
        if v.variant != control:
            table.add_row(v.variant, _interval(v, "difference_to_control"), _p(v.p_value),
                          f"{v.effective_sample_size:,.0f}", f"{v.unsupported_mass:.1%}",
                          v.verdict or "-")
    return table


def verdicts(report: pb.Report) -> list[str]:
    """One line per candidate: better / worse / no difference yet against the champion (the
    rule auto-promotion uses), or why there is no verdict and what to change."""
    lines = []
    for v in report.variants:
        if v.variant == report.control:
            continue
        difference = v.difference_to_control
        if v.not_evaluable:
            lines.append(f"{v.variant}: no verdict: {v.not_evaluable}")
        elif v.verdict in ("better", "worse"):
            by = f" by more than {report.min_effect:g}" if report.min_effect > 0 else ""
            lines.append(f"{v.variant}: {v.verdict} than the champion {report.control}{by} (value "
                         f"minus the champion's in [{difference.low:.3f}, {difference.high:.3f}]"
                         f", anytime-valid p = {_p(v.p_value)})")
        elif v.HasField("difference_to_control"):
            lines.append(f"{v.variant}: no difference"
                         f"{f' beyond {report.min_effect:g}' if report.min_effect > 0 else ''}"
                         f" from the champion {report.control} yet "
                         f"(value minus the champion's in [{difference.low:.3f}, "
                         f"{difference.high:.3f}])")
        else:
            lines.append(f"{v.variant}: no verdict yet: no learned decision")
    return lines


def apprentices(report: pb.Report) -> list[str]:
    """One line per variant that served in apprentice mode: how often its policy agreed with
    the caller's baseline, and what the baseline earned beside the policy's own value."""
    lines = []
    for v in report.variants:
        if not v.apprentice_decisions:
            continue
        value = f"; its policy's value (ips) {v.ips.estimate:.3f}" if v.HasField("ips") else ""
        lines.append(f"{v.variant} (apprentice): its policy chose the baseline in "
                     f"{v.agreement:.1%} of {v.apprentice_decisions} learned decisions; the "
                     f"baseline earned {v.baseline_reward:.3f}{value}")
    return lines


def drift_alarms(report: pb.Report) -> list[str]:
    """One line per variant with a drift alarm raised."""
    lines = []
    for v in report.variants:
        if v.drift_reward_drop_seq:
            lines.append(f"{v.variant}: DRIFT: its learned rewards dropped (last detected at "
                         f"learned event {v.drift_reward_drop_seq}, {v.drift_reward_drops} "
                         "time(s)); with reset_on_drift its models restarted there")
        if v.exploration_collapse_seq:
            lines.append(f"{v.variant}: EXPLORATION COLLAPSED since learned event "
                         f"{v.exploration_collapse_seq} (effective actions "
                         f"{v.effective_actions:.2f}): its log will not evaluate other policies; "
                         "raise its exploration (epsilon)")
    return lines


def importances(report: pb.Report) -> list[str]:
    """One line per variant whose policy keeps feature importance: its features by mean
    absolute contribution to the chosen action's score."""
    return [f"{v.variant}: feature importance (mean |contribution| over {v.importance_events} "
            "learned events): " + ", ".join(f"{f.feature} {fmt(f.mean_abs_contribution)}"
                                            for f in v.feature_importance)
            for v in report.variants if v.feature_importance]


def srm_verdict(srm: pb.SampleRatioCheck) -> str:
    observed = ", ".join(f"{name} {count}" for name, count in sorted(srm.observed_units.items()))
    expected = ", ".join(f"{name} {share:.1%}" for name, share in
                         sorted(srm.expected_share.items()))
    verdict = ("MISMATCH: units per variant do not match the weights; do not trust the "
               "comparison until the assignment is fixed" if srm.mismatch else "ok")
    eras = f" over {len(srm.eras)} traffic versions" if len(srm.eras) > 1 else ""
    return (f"sample ratio: {verdict} (chi-square {srm.chi_square:.2f}, p = {srm.p_value:.3g}; "
            f"units {observed}; weights {expected}{eras})")


def srm_eras(srm: pb.SampleRatioCheck) -> list[str]:
    """One line per traffic version when there were several (each checked on its own units)."""
    if len(srm.eras) < 2:
        return []
    return [f"  version {era.version} (from {_when(era.since)}): p = {era.p_value:.3g}; "
            "units " + ", ".join(f"{n} {c}" for n, c in sorted(era.observed_units.items()))
            + "; weights " + ", ".join(f"{n} {s:.1%}" for n, s in sorted(era.expected_share.items()))
            for era in srm.eras]


def _when(since: str) -> str:
    """RFC 3339 (UTC) as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return f"{since[:19].replace('T', ' ')} UTC" if since else "the start"


def report(target: str, experiment: str, segment_by: str = "", *, min_effect: float = 0.0,
           connection: Connection | None = None) -> int:
    answer = _call(target, "GetReport",
                   pb.GetReportRequest(experiment=experiment, segment_by=segment_by,
                                       min_effect=min_effect), connection)
    if answer is None:
        return 1
    assert isinstance(answer, pb.Report)
    console = Console(width=max(160, Console().width))
    console.print(variants_table(f"experiment {answer.experiment} (champion {answer.control})",
                                 list(answer.variants), answer.control))
    if len(answer.variants) > 1:
        console.print(comparison_table(list(answer.variants), answer.control,
                                       answer.min_effect))
    console.print(f"intervals: {INTERVALS.get(answer.intervals, answer.intervals)}",
                  highlight=False, markup=False)
    for line in verdicts(answer) + apprentices(answer) + drift_alarms(answer) + importances(answer):
        console.print(line, highlight=False, markup=False)
    console.print(srm_verdict(answer.sample_ratio), highlight=False, markup=False)
    for line in srm_eras(answer.sample_ratio):
        console.print(line, highlight=False, markup=False)
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
