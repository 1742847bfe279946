"""The ExperimentService (admin) servicer: convert, call the controller, convert back.

Errors are the domain errors of :mod:`server.errors` (``server.guard`` maps them).
``principal`` is the caller (``server.guard`` authorizes it; None on an open server): an
experiment it may not see is NOT_FOUND, as an unknown one is, and ListExperiments leaves it out;
its name goes into the audit rows of SetTraffic, SetMode and Promote (and EraseUnit's: with an empty
``experiment`` it erases in the experiments the caller may see).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import grpc

from arbiter.server import report as reports
from arbiter.server.auth import Principal, check_visible
from arbiter.server.drift import Alarm
from arbiter.server.erasure import Eraser, EraseRequest
from arbiter.server.errors import Unavailable
from arbiter.server.experiments import Experiment
from arbiter.server.promotion import Controller
from arbiter.v1 import experiments_pb2 as pb
from arbiter.v1 import experiments_pb2_grpc


class ExperimentServicer(experiments_pb2_grpc.ExperimentServiceServicer):
    """Runs on the server's event loop; what reads or writes SQL runs in a worker thread."""

    def __init__(self, controller: Controller, eraser: Eraser | None = None) -> None:
        self._controller = controller
        self._eraser = eraser

    async def ListExperiments(self, request: pb.ListExperimentsRequest,
                              context: grpc.aio.ServicerContext,
                              principal: Principal | None = None) -> pb.ListExperimentsResponse:
        return pb.ListExperimentsResponse(experiments=[
            experiment_message(e) for name, e in sorted(self._controller.experiments.items())
            if principal is None or principal.sees(name)])

    async def GetExperiment(self, request: pb.GetExperimentRequest,
                            context: grpc.aio.ServicerContext,
                            principal: Principal | None = None) -> pb.Experiment:
        check_visible(principal, request.experiment)
        return experiment_message(self._controller.experiment(request.experiment))

    async def GetReport(self, request: pb.GetReportRequest, context: grpc.aio.ServicerContext,
                        principal: Principal | None = None) -> pb.Report:
        check_visible(principal, request.experiment)
        report = await asyncio.to_thread(self._controller.report, request.experiment,
                                         request.segment_by, request.min_effect)
        return report_message(report)

    async def SetTraffic(self, request: pb.SetTrafficRequest, context: grpc.aio.ServicerContext,
                         principal: Principal | None = None) -> pb.Experiment:
        check_visible(principal, request.experiment)
        experiment = await asyncio.to_thread(self._controller.set_traffic, request.experiment,
                                             dict(request.traffic), principal=_name(principal))
        return experiment_message(experiment)

    async def SetMode(self, request: pb.SetModeRequest, context: grpc.aio.ServicerContext,
                      principal: Principal | None = None) -> pb.Experiment:
        check_visible(principal, request.experiment)
        experiment = await asyncio.to_thread(self._controller.set_mode, request.experiment,
                                             request.variant, request.mode, request.reason,
                                             principal=_name(principal))
        return experiment_message(experiment)

    async def Promote(self, request: pb.PromoteRequest, context: grpc.aio.ServicerContext,
                      principal: Principal | None = None) -> pb.PromoteResponse:
        check_visible(principal, request.experiment)
        previous = await asyncio.to_thread(self._controller.promote, request.experiment,
                                           request.variant, request.reason,
                                           principal=_name(principal))
        return pb.PromoteResponse(
            experiment=experiment_message(self._controller.experiment(request.experiment)),
            previous_champion=previous)


    async def EraseUnit(self, request: pb.EraseUnitRequest, context: grpc.aio.ServicerContext,
                        principal: Principal | None = None) -> pb.EraseUnitResponse:
        if self._eraser is None:
            raise Unavailable("erasure is not available on this server")
        erased = await asyncio.to_thread(
            self._eraser.erase,
            EraseRequest(unit_id=request.unit_id, experiment=request.experiment,
                         request_id=request.request_id, principal=_name(principal)),
            principal.experiments if principal is not None else None)
        return pb.EraseUnitResponse(
            request_id=erased.request_id, decisions_deleted=erased.decisions,
            rewards_deleted=erased.rewards, activations_deleted=erased.activations,
            learned_events_deleted=erased.learned_events,
            rebuilt_experiments=list(erased.rebuilt), repeated=erased.repeated)


def _name(principal: Principal | None) -> str | None:
    """The audit rows' ``principal``: the token's name, NULL on an open server."""
    return principal.name if principal is not None else None


def experiment_message(experiment: Experiment) -> pb.Experiment:
    config = experiment.config
    shares = reports.shares(config)
    return pb.Experiment(
        name=config.name, control=config.control,
        reward_wait_seconds=config.reward_wait_seconds, default_reward=config.default_reward,
        reward_aggregation=config.reward_aggregation,
        variants=[pb.Variant(name=v.name, policy=v.policy,
                             params_json=json.dumps(dict(v.params), sort_keys=True),
                             traffic=shares.get(v.name, 0.0), shadow=v.shadow, mode=v.mode,
                             logging_epsilon=v.logging_epsilon)
                  for v in config.variants])


def _interval(value: reports.Interval | None) -> pb.Interval | None:
    if value is None:
        return None
    return pb.Interval(estimate=value.estimate, low=value.low, high=value.high)


def variant_message(fig: reports.VariantFigures) -> pb.VariantReport:
    return pb.VariantReport(
        variant=fig.variant, shadow=fig.shadow, traffic=fig.traffic, decisions=fig.decisions,
        units=fig.units, rewards=fig.rewards, mean_reward=_interval(fig.mean_reward),
        difference_to_control=_interval(fig.difference_to_control), p_value=fig.p_value,
        probability_best=fig.probability_best, ips=_interval(fig.ips),
        snips=_interval(fig.snips), scored=fig.scored, scored_units=fig.scored_units,
        effective_sample_size=fig.effective_sample_size, unsupported_mass=fig.unsupported_mass,
        not_evaluable=fig.not_evaluable, verdict=fig.verdict,
        apprentice_decisions=fig.apprentice_decisions, agreement=fig.agreement,
        baseline_reward=fig.baseline_reward, **_drift(fig.drift),
        feature_importance=[pb.FeatureImportance(feature=f, mean_abs_contribution=c)
                            for f, c in fig.importance],
        importance_events=fig.importance_events)


def _drift(alarm: Alarm | None) -> dict[str, Any]:
    """The drift fields of a VariantReport (0: none)."""
    if alarm is None:
        return {}
    return {"drift_reward_drop_seq": alarm.reward_drop_seq or 0,
            "drift_reward_drops": alarm.reward_drops,
            "exploration_collapse_seq": alarm.collapse_seq or 0,
            "effective_actions": alarm.effective_actions or 0.0}


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def report_message(report: reports.Report) -> pb.Report:
    srm = report.sample_ratio
    return pb.Report(
        experiment=report.experiment, control=report.control,
        variants=[variant_message(f) for f in report.variants],
        sample_ratio=pb.SampleRatioCheck(
            chi_square=_finite(srm.chi_square), p_value=srm.p_value, mismatch=srm.mismatch,
            observed_units=srm.observed_units, expected_share=srm.expected_share,
            eras=[pb.SampleRatioEra(
                version=era.version,
                since=era.since.isoformat() if era.since is not None else "",
                chi_square=_finite(era.chi_square), p_value=era.p_value,
                observed_units=era.observed_units, expected_share=era.expected_share)
                for era in srm.eras]),
        intervals=report.intervals, min_effect=report.min_effect,
        segment_by=report.segment_by,
        segments=[pb.SegmentReport(segment=s.segment, units=s.units,
                                   too_few_units=s.too_few_units,
                                   variants=[variant_message(f) for f in s.variants])
                  for s in report.segments])
