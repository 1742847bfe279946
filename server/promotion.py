"""Changing an experiment while it runs: traffic, promotion (manual and automatic), audited.

Semantics (documented in the README's "Experiments" section as well):

- **SetTraffic** gives the serving variants new weights (normalised by their sum; a serving
  variant left out gets 0; the champion must keep a positive weight). The table is re-allocated
  from the current one with :func:`~server.assignment.allocate`, so as few units as possible
  move. Shadows cannot get traffic this way — promote them.
- **Promote a serving challenger**: it becomes the champion and takes the champion's traffic
  share; the old champion takes the challenger's former share (the two swap weights), so it
  keeps serving and stays measurable.
- **Promote a shadow**: it becomes a serving variant and the champion with the old champion's
  share; the old champion becomes a shadow (no traffic, still scored on every decision and still
  learning off-policy), so it can be promoted back if the new one disappoints.
- Every change is a new ``experiment_states`` version; a promotion also writes a ``promotions``
  audit row (from, to, reason, automatic, and the report figures of both variants as evidence)
  in the same transaction, and the change takes a place in the learning order. Every process's
  fold swaps the new set-up in at exactly that place (this one at once, the others within the
  tail's poll interval): every event learned before it was learned with the old roles, every
  event after with the new ones — live, on every replica, and in any replay, from a snapshot
  or from scratch. Two processes changing one experiment at once: the log's key on
  (experiment, version) lets one win; the other catches up and applies its change on top.
- **Auto-promotion** (``auto_promote = { min_decisions, confidence }``), checked by the
  maintenance thread (:func:`promotes`, :func:`winner`): a candidate (a serving variant with
  traffic, or a shadow) whose weights allow a verdict (:func:`server.report.evaluability`),
  when it and the champion each have at least ``min_decisions`` learned decisions behind their
  value (IPS: the decisions they served, weight 1, and those they scored as a shadow), and
  the anytime-valid lower bound of its value minus the champion's is above 0
  (:func:`server.report.difference`: with ``reward_range`` and two variants whose terms are
  all their own decisions, the confidence sequence of the difference at alpha/K for K
  candidates; otherwise the candidate's lower bound at alpha/(2K) against the champion's upper
  bound at alpha/2; alpha = 1 - ``confidence``) is promoted with
  ``automatic = true`` (the highest lower bound among several). The bounds are confidence
  sequences (:mod:`server.anytime`): they hold at every check at once, so checking every 30 s
  for months keeps the chance of promoting a variant no better than the champion under alpha
  (``tests/experiments/test_anytime.py``, ``make bench-promotion``). The live report's
  ``verdict`` is the same rule. The check reads only the report accumulators the fold keeps
  (:mod:`server.stats`), never the log, so its cost does not grow with the log; a promotion's
  evidence is the live report's figures.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import sqlalchemy as sa

from arbiter.log.schema import promotions
from arbiter.server import report as reports
from arbiter.server import traffic
from arbiter.server.assignment import allocate
from arbiter.server.clock import utc_now
from arbiter.server.commit import Conflict, Op, StateChange
from arbiter.server.config import MODES, ExperimentConfig
from arbiter.server.errors import FailedPrecondition, InvalidArgument, NotFound
from arbiter.server.experiments import Experiment
from arbiter.server.fold import Fold
from arbiter.server.stats import ExperimentStats, Stats
from arbiter.server.writer import GroupCommitWriter

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # a change recomputed on top of concurrent ones before giving up
MAX_NAME_LENGTH = 128  # characters of an experiment's name in a request
MAX_REASON_LENGTH = 1000  # characters of a promotion's reason (stored in the audit row)


class Controller:
    """Owns every change of an experiment's set-up after start; thread-safe per experiment."""

    def __init__(self, engine: sa.Engine, writer: GroupCommitWriter,
                 experiments: Mapping[str, Experiment], fold: Fold, stats: Stats, *,
                 units_horizon: int = reports.UNITS_HORIZON) -> None:
        self._engine = engine
        self._units_horizon = units_horizon  # decisions among which the report counts units
        self._writer = writer
        self.experiments = experiments
        self._fold = fold
        self._stats = stats  # the report's accumulators, kept by the fold
        self._locks = {name: threading.Lock() for name in experiments}

    def seed(self) -> None:
        """At start, once the fold has caught up: write the TOML's changes to the set-up."""
        for experiment in self.experiments.values():
            for _ in range(MAX_ATTEMPTS):
                state = traffic.merged_state(experiment)
                if state is None:
                    break
                if self._write(experiment, state, None):
                    break

    def experiment(self, name: str) -> Experiment:
        if not name:
            raise InvalidArgument("experiment", "is required")
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidArgument("experiment", f"must be at most {MAX_NAME_LENGTH} characters")
        experiment = self.experiments.get(name)
        if experiment is None:
            raise NotFound(f"experiment {name!r} is not configured")
        return experiment

    # ------------------------------------------------------------------ report
    def report(self, name: str, segment_by: str = "", min_effect: float = 0.0) -> reports.Report:
        experiment = self.experiment(name)
        if not math.isfinite(min_effect) or min_effect < 0:
            raise InvalidArgument("min_effect", f"must be a finite number >= 0 (reward units), "
                                                f"got {min_effect}")
        segment_by = segment_by or experiment.config.segment_by or ""
        if segment_by and "." not in segment_by:
            raise InvalidArgument("segment_by", f"must look like \"namespace.feature\", "
                                                f"got {segment_by!r}")
        report = reports.build(self._engine, self._fold, self._stats, experiment.config,
                               segment_by=segment_by, units_horizon=self._units_horizon,
                               min_effect=min_effect)
        for figures in report.variants:
            variant = experiment.variants.get(figures.variant)
            if variant is not None:
                figures.importance_events, figures.importance = variant.importance()
        return report

    # ------------------------------------------------------------------ traffic
    def set_traffic(self, name: str, weights: Mapping[str, float], *,
                    principal: str | None = None) -> Experiment:
        """New weights; ``principal`` (who asked) goes into the new version's row."""
        experiment = self.experiment(name)
        if not weights:
            raise InvalidArgument("traffic", "must give at least one serving variant a weight")
        for _ in range(MAX_ATTEMPTS):
            with self._locks[name]:
                config = experiment.config
                for variant, weight in weights.items():
                    if variant not in experiment.variants:
                        raise InvalidArgument("traffic", f"names unknown variant {variant!r}")
                    if config.variant(variant).shadow:
                        raise InvalidArgument("traffic", f"cannot give shadow variant {variant!r} "
                                                         "traffic; promote it instead")
                    if not math.isfinite(weight) or weight < 0:
                        raise InvalidArgument("traffic", f"weight of {variant!r} must be a "
                                                         f"finite number >= 0, got {weight}")
                total = sum(weights.values())  # finite weights can still overflow their sum
                if not math.isfinite(total):
                    raise InvalidArgument("traffic", f"weights must add up to a finite number, "
                                                     f"got {total}")
                if weights.get(config.control, 0.0) <= 0:
                    raise InvalidArgument("traffic", f"the champion {config.control!r} must keep "
                                                     "a positive weight (promote another one first)")
                flags = {v.name: (float(weights.get(v.name, 0.0)), False, v.mode)
                         for v in config.variants if not v.shadow}
                flags.update({v.name: (0.0, True, v.mode) for v in config.variants if v.shadow})
                new = traffic.configured(config, config.control, flags)
                if self._write(experiment,
                               self._state(experiment, new, "traffic set", principal), None):
                    log.info("experiment %s: traffic set to %s by %s", name, dict(weights),
                             principal or "an unauthenticated caller")
                    return experiment
        raise FailedPrecondition(f"experiment {name!r} keeps changing; retry")

    # ------------------------------------------------------------------ mode
    def set_mode(self, name: str, variant: str, mode: str, reason: str = "", *,
                 principal: str | None = None) -> Experiment:
        """Put ``variant`` in ``mode`` (a new set-up version whose reason names the change and
        ``reason``, and whose row names ``principal``); setting the mode it has changes nothing."""
        experiment = self.experiment(name)
        if not variant:
            raise InvalidArgument("variant", "is required")
        if mode not in MODES:
            raise InvalidArgument("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        if len(reason) > MAX_REASON_LENGTH:
            raise InvalidArgument("reason", f"must be at most {MAX_REASON_LENGTH} characters")
        if variant not in experiment.variants:
            raise NotFound(f"experiment {name!r} has no variant {variant!r}")
        for _ in range(MAX_ATTEMPTS):
            with self._locks[name]:
                config = experiment.config
                if config.variant(variant).mode == mode:
                    return experiment
                flags = {v.name: (v.traffic, v.shadow, mode if v.name == variant else v.mode)
                         for v in config.variants}
                new = traffic.configured(config, config.control, flags)
                why = f"mode of {variant} set to {mode}" + (f": {reason}" if reason else "")
                if self._write(experiment, self._state(experiment, new, why, principal), None):
                    log.warning("experiment %s: %s by %s", name, why,
                                principal or "an unauthenticated caller")
                    return experiment
        raise FailedPrecondition(f"experiment {name!r} keeps changing; retry")

    # ------------------------------------------------------------------ promotion
    def promote(self, name: str, variant: str, reason: str = "", *,
                automatic: bool = False, principal: str | None = None) -> str:
        """Make ``variant`` the champion; returns the previous champion. ``principal`` (who
        asked) goes into the new version's row and the audit row."""
        experiment = self.experiment(name)
        if not variant:
            raise InvalidArgument("variant", "is required")
        if len(reason) > MAX_REASON_LENGTH:
            raise InvalidArgument("reason", f"must be at most {MAX_REASON_LENGTH} characters")
        if variant not in experiment.variants:
            raise NotFound(f"experiment {name!r} has no variant {variant!r}")
        for _ in range(MAX_ATTEMPTS):
            with self._locks[name]:
                config = experiment.config
                previous = config.control
                if variant == previous:
                    raise FailedPrecondition(f"{variant!r} is already the champion of {name!r}")
                candidate, champion = config.variant(variant), config.variant(previous)
                flags = {v.name: (v.traffic, v.shadow, v.mode) for v in config.variants}
                flags[variant] = (champion.traffic, False, candidate.mode)
                flags[previous] = ((0.0, True, champion.mode) if candidate.shadow
                                   else (candidate.traffic, False, champion.mode))
                new = traffic.configured(config, variant, flags)
                figures = {f.variant: f for f in reports.variant_figures(
                    self._engine, self._fold, self._stats, config,
                    units_horizon=self._units_horizon)[0]}
                evidence = {"from": _plain(asdict(figures[previous])),
                            "to": _plain(asdict(figures[variant])),
                            "to_was_shadow": candidate.shadow}
                state = self._state(experiment, new, f"promoted {variant}", principal)
                audit = {"experiment": name, "from_variant": previous, "to_variant": variant,
                         "reason": reason or ("automatic" if automatic else "manual"),
                         "evidence": evidence, "automatic": automatic,
                         "state_version": state.version, "created_at": utc_now(),
                         "principal": principal}
                if self._write(experiment, state, audit):
                    log.warning("experiment %s: %s promoted to champion (was %s)%s", name,
                                variant, previous, " automatically" if automatic else
                                f" by {principal or 'an unauthenticated caller'}")
                    return previous
        raise FailedPrecondition(f"experiment {name!r} keeps changing; retry")

    def promotions(self, name: str) -> list[dict[str, Any]]:
        """The audit trail of ``name``, oldest first."""
        query = (sa.select(promotions).where(promotions.c.experiment == name)
                 .order_by(promotions.c.id))
        with self._engine.connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def auto_promote(self) -> list[tuple[str, str]]:
        """One check of every experiment with ``auto_promote``; returns (experiment, promoted)."""
        done = []
        for name, experiment in self.experiments.items():
            config = experiment.config
            if config.auto_promote is None:
                continue
            found = winner(reports.learned_stats(self._fold, self._stats, config), config)
            if found is None:
                continue
            variant, low = found
            self.promote(name, variant, automatic=True,
                         reason=f"automatic: its value minus the champion's is at least "
                                f"{low:.4f} > 0 (anytime-valid, confidence "
                                f"{config.auto_promote.confidence}, {len(config.variants) - 1} "
                                "candidates)")
            done.append((name, variant))
        return done

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _state(experiment: Experiment, new: ExperimentConfig, reason: str,
               principal: str | None = None) -> traffic.State:
        weights = {v.name: v.traffic for v in new.variants if not v.shadow}
        table = allocate(weights, previous=experiment.table)
        return traffic.State(experiment=experiment.name, version=experiment.version + 1,
                             control=new.control,
                             variants=traffic.flags_of(new.variants),
                             table=tuple(table), reason=reason, created_at=utc_now(),
                             principal=principal)

    def _write(self, experiment: Experiment, state: traffic.State,
               audit: dict[str, Any] | None) -> bool:
        """Write ``state`` (and ``audit``) in the learning order; the fold swaps it in on
        commit. False when another process wrote that version first (this one has caught up
        since, so the caller can recompute its change on top)."""
        op = Op(StateChange(experiment.name, state.row(), audit, state.created_at))
        self._writer.write([op])
        if isinstance(op.outcome, Conflict):
            self._fold.catch_up()
            return False
        return True


def promotes(champion: reports.Sums, candidate: reports.Sums, intervals: reports.Intervals, *,
             confidence: float, candidates: int, min_decisions: int) -> np.ndarray:
    """The promotion rule, pure and vectorized (arrays of accumulators in: the simulation of
    ``tests/experiments/test_anytime.py`` drives it directly): promote where both have
    ``min_decisions`` terms and the anytime-valid lower bound of value(candidate) -
    value(champion) is above 0 (:func:`server.report.better`)."""
    enough = (np.asarray(champion.n) >= min_decisions) & (np.asarray(candidate.n) >= min_decisions)
    return np.asarray(enough & reports.better(candidate, champion, intervals, confidence,
                                              candidates))


def winner(stats: ExperimentStats, config: ExperimentConfig) -> tuple[str, float] | None:
    """The candidate :func:`promotes` promotes (the highest lower bound of its difference to
    the champion), with that bound; None when none."""
    assert config.auto_promote is not None
    intervals = reports.Intervals.of(config)
    mine = stats.variants.get(config.control)
    if mine is None:
        return None
    champion = reports.Sums.value(mine)
    best: tuple[str, float] | None = None
    for variant in config.variants:
        if variant.name == config.control or not (variant.shadow or variant.traffic > 0):
            continue
        theirs = stats.variants.get(variant.name)
        if theirs is None or reports.evaluability(theirs)[2]:
            continue
        candidates = len(config.variants) - 1
        sums = reports.Sums.value(theirs)
        if not promotes(champion, sums, intervals, confidence=config.auto_promote.confidence,
                        candidates=candidates, min_decisions=config.auto_promote.min_decisions):
            continue
        low, _ = reports.difference(sums, champion, intervals, config.auto_promote.confidence,
                                    candidates)
        if best is None or float(low) > best[1]:
            best = (variant.name, float(low))
    return best


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (PostgreSQL's JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
