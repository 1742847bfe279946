"""``arbiter experiments``, ``arbiter traffic`` and ``report --json``: ExperimentService from the
command line.

``experiments`` lists the experiments a server runs (ListExperiments) or shows one
(GetExperiment): its variants with their roles, policies, parameters and traffic shares.
``traffic`` sets the serving variants' weights (SetTraffic), ``mode`` a variant's mode (SetMode).
With ``--json`` each prints one JSON document instead of a table (:func:`experiment_json`,
:func:`report_json`), numbers as numbers.
Exit codes: 0 done, 1 the server refused or could not be reached (one line on stderr), 2 a
malformed argument.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from arbiter.cli.admin import _call
from arbiter.v1 import experiments_pb2 as pb

if TYPE_CHECKING:
    from arbiter.client import Connection

__all__ = [
    "experiment_json",
    "parse_weights",
    "report_json",
    "set_mode",
    "set_traffic",
    "show_experiments",
    "show_report_json",
]


def _role(variant: pb.Variant, control: str) -> str:
    return "champion" if variant.name == control else ("shadow" if variant.shadow else "challenger")


def _params(variant: pb.Variant) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(variant.params_json or "{}")
    return params


def experiment_json(experiment: pb.Experiment) -> dict[str, Any]:
    """One experiment as plain JSON: its set-up and every variant's role, policy and traffic."""
    return {
        "name": experiment.name,
        "champion": experiment.control,
        "reward_wait_seconds": experiment.reward_wait_seconds,
        "default_reward": experiment.default_reward,
        "reward_aggregation": experiment.reward_aggregation,
        "variants": [{"name": v.name, "role": _role(v, experiment.control), "policy": v.policy,
                      "params": _params(v), "traffic": v.traffic, "shadow": v.shadow,
                      "mode": v.mode or "online"}
                     for v in experiment.variants],
    }


def _console() -> Console:
    return Console(width=max(160, Console().width))


def _traffic(experiment: pb.Experiment) -> str:
    return ", ".join(f"{v.name} {'shadow' if v.shadow else f'{v.traffic:.1%}'}"
                     for v in experiment.variants)


def show_experiments(target: str, name: str | None, *, as_json: bool = False,
                     connection: Connection | None = None) -> int:
    """Print every experiment of the server at ``target``, or the one called ``name``."""
    if name:
        answer = _call(target, "GetExperiment", pb.GetExperimentRequest(experiment=name), connection)
        if answer is None:
            return 1
        assert isinstance(answer, pb.Experiment)
        if as_json:
            print(json.dumps(experiment_json(answer), indent=2))
        else:
            _print_experiment(answer)
        return 0
    listed = _call(target, "ListExperiments", pb.ListExperimentsRequest(), connection)
    if listed is None:
        return 1
    assert isinstance(listed, pb.ListExperimentsResponse)
    if as_json:
        print(json.dumps({"experiments": [experiment_json(e) for e in listed.experiments]}, indent=2))
        return 0
    table = Table(title=f"experiments at {target}", title_justify="left")
    for column in ("experiment", "champion", "variants", "policies", "traffic"):
        table.add_column(column)
    for e in listed.experiments:
        policies = ", ".join(dict.fromkeys(v.policy for v in e.variants))
        table.add_row(e.name, e.control, str(len(e.variants)), policies, _traffic(e))
    _console().print(table)
    return 0


def _print_experiment(experiment: pb.Experiment) -> None:
    console = _console()
    console.print(f"experiment {experiment.name}: champion {experiment.control}; reward window "
                  f"{experiment.reward_wait_seconds:g} s, default reward "
                  f"{experiment.default_reward:g}, aggregation {experiment.reward_aggregation}",
                  highlight=False, markup=False)
    table = Table(show_edge=True)
    for column in ("variant", "role", "policy", "params", "traffic", "mode"):
        table.add_column(column, justify="right" if column == "traffic" else "left")
    for v in experiment.variants:
        params = json.dumps(_params(v), separators=(", ", ": ")) if v.params_json else "{}"
        table.add_row(v.name, _role(v, experiment.control), v.policy, params,
                      "shadow" if v.shadow else f"{v.traffic:.1%}", v.mode or "online")
    console.print(table)


def parse_weights(pairs: Sequence[str]) -> dict[str, float] | str:
    """``["champion=0.7", "holdout=0.3"]`` as ``{name: weight}``, or what is wrong (one line)."""
    weights: dict[str, float] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            return f"expected NAME=WEIGHT, got {pair!r} (e.g. champion=0.8 holdout=0.2)"
        try:
            weight = float(text)
        except ValueError:
            return f"the weight of {name!r} must be a number, got {text!r}"
        if not math.isfinite(weight) or weight < 0:
            return f"the weight of {name!r} must be a finite number >= 0, got {text!r}"
        if name in weights:
            return f"{name!r} is given twice"
        weights[name] = weight
    return weights


def set_traffic(target: str, experiment: str, pairs: Sequence[str], *, as_json: bool = False,
                connection: Connection | None = None) -> int:
    """SetTraffic with the weights ``NAME=WEIGHT`` (normalised by the server); print the result."""
    weights = parse_weights(pairs)
    if isinstance(weights, str):
        print(f"arbiter traffic: {weights}", file=sys.stderr)
        return 2
    answer = _call(target, "SetTraffic",
                   pb.SetTrafficRequest(experiment=experiment, traffic=weights), connection)
    if answer is None:
        return 1
    assert isinstance(answer, pb.Experiment)
    if as_json:
        print(json.dumps(experiment_json(answer), indent=2))
    else:
        print(f"traffic of {answer.name}: {_traffic(answer)}")
    return 0


def set_mode(target: str, experiment: str, variant: str, mode: str, reason: str = "", *,
             as_json: bool = False, connection: Connection | None = None) -> int:
    """SetMode: put ``variant`` of ``experiment`` in ``mode``; print the result."""
    answer = _call(target, "SetMode", pb.SetModeRequest(experiment=experiment, variant=variant,
                                                        mode=mode, reason=reason), connection)
    if answer is None:
        return 1
    assert isinstance(answer, pb.Experiment)
    if as_json:
        print(json.dumps(experiment_json(answer), indent=2))
    else:
        print(f"modes of {answer.name}: "
              + ", ".join(f"{v.name} {v.mode or 'online'}" for v in answer.variants))
    return 0


def _interval(message: Any, name: str) -> dict[str, float | None] | None:
    if not message.HasField(name):
        return None
    value = getattr(message, name)
    return {"estimate": _number(value.estimate), "low": _number(value.low), "high": _number(value.high)}


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: those are null."""
    return value if math.isfinite(value) else None


def _variant_report(v: pb.VariantReport, control: str) -> dict[str, Any]:
    return {
        "variant": v.variant,
        "role": "champion" if v.variant == control else ("shadow" if v.shadow else "challenger"),
        "traffic": v.traffic, "decisions": v.decisions, "units": v.units, "rewards": v.rewards,
        "mean_reward": _interval(v, "mean_reward"),
        "difference_to_control": _interval(v, "difference_to_control"),
        "p_value": _number(v.p_value), "probability_best": _number(v.probability_best),
        "ips": _interval(v, "ips"), "snips": _interval(v, "snips"),
        "scored": v.scored, "scored_units": v.scored_units,
        "effective_sample_size": _number(v.effective_sample_size),
        "unsupported_mass": _number(v.unsupported_mass),
        "not_evaluable": v.not_evaluable or None, "verdict": v.verdict or None,
        "apprentice_decisions": v.apprentice_decisions,
        "agreement": _number(v.agreement), "baseline_reward": _number(v.baseline_reward),
        "drift_reward_drop_seq": v.drift_reward_drop_seq or None,
        "drift_reward_drops": v.drift_reward_drops,
        "exploration_collapse_seq": v.exploration_collapse_seq or None,
        "effective_actions": v.effective_actions or None,
        "importance_events": v.importance_events,
        "feature_importance": [{"feature": f.feature,
                                "mean_abs_contribution": f.mean_abs_contribution}
                               for f in v.feature_importance],
    }


def report_json(report: pb.Report) -> dict[str, Any]:
    """The live report as plain JSON (intervals as ``{estimate, low, high}``, missing ones and
    undefined numbers null)."""
    srm = report.sample_ratio
    return {
        "experiment": report.experiment,
        "champion": report.control,
        "variants": [_variant_report(v, report.control) for v in report.variants],
        "sample_ratio": {"chi_square": _number(srm.chi_square), "p_value": _number(srm.p_value),
                         "mismatch": srm.mismatch, "observed_units": dict(srm.observed_units),
                         "expected_share": dict(srm.expected_share),
                         "eras": [{"version": e.version, "since": e.since or None,
                                   "chi_square": _number(e.chi_square),
                                   "p_value": _number(e.p_value),
                                   "observed_units": dict(e.observed_units),
                                   "expected_share": dict(e.expected_share)} for e in srm.eras]},
        "intervals": report.intervals, "min_effect": report.min_effect,
        "segment_by": report.segment_by or None,
        "segments": [{"segment": s.segment, "units": s.units, "too_few_units": s.too_few_units,
                      "variants": [_variant_report(v, report.control) for v in s.variants]}
                     for s in report.segments],
    }


def show_report_json(target: str, experiment: str, segment_by: str = "", *,
                     min_effect: float = 0.0, connection: Connection | None = None) -> int:
    """``arbiter report --json``: GetReport printed as :func:`report_json`."""
    answer = _call(target, "GetReport",
                   pb.GetReportRequest(experiment=experiment, segment_by=segment_by,
                                       min_effect=min_effect), connection)
    if answer is None:
        return 1
    assert isinstance(answer, pb.Report)
    print(json.dumps(report_json(answer), indent=2))
    return 0
