"""Erasing a unit (``EraseUnit``): delete its events, rebuild the models without them, audited.

The erasure is one op through the writer (``server.commit.Erase``), so it is one transaction
in the log's one learning order: it deletes every decision of the unit in the scope — found by
both pseudonym forms, the keyed one and the plain hash older releases stored — with their
rewards, activations, windows and learned events, deletes the snapshots that may reflect an
erased event, writes the audit row and puts a marker per experiment into the order. Every
process rebuilds the experiment's models at that marker (``server.fold``): the result is exactly
the fold of a log that never had the unit. This process has rebuilt when :meth:`Eraser.erase`
returns (the writer folds its own commit before it answers); the others within their lag.

``request_id`` makes it idempotent: a repeated request returns the stored counts and changes
nothing; the same id with another unit or scope is refused. Without one the server makes one.

SQLite: the engine runs with ``secure_delete`` (deleted rows are zeroed); after the erasure the
WAL is checkpointed into the file and truncated, so neither file keeps the unit's context.
PostgreSQL keeps deleted rows in its pages until VACUUM reuses the space (README, "Security and
privacy").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Set
from dataclasses import dataclass

import sqlalchemy as sa
import uuid_utils

from arbiter.log.engine import truncate_wal
from arbiter.log.schema import decisions, experiment_states
from arbiter.server.assignment import legacy_pseudonym, pseudonym
from arbiter.server.clock import Clock, utc_now
from arbiter.server.commit import Erase, Erased, Op, Reused
from arbiter.server.errors import FailedPrecondition, InvalidArgument, NotFound
from arbiter.server.experiments import Experiment
from arbiter.server.writer import GroupCommitWriter

log = logging.getLogger(__name__)

MAX_UNIT_ID_LENGTH = 1024  # as in Choose
MAX_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class EraseRequest:
    unit_id: str
    experiment: str = ""  # empty: every experiment (the caller may see)
    request_id: str = ""
    principal: str | None = None  # who asked (a token's name); None: an open server


class Eraser:
    """Turns an erasure request into the writer's op; thread-safe (called off the event loop)."""

    def __init__(self, engine: sa.Engine, writer: GroupCommitWriter,
                 experiments: Mapping[str, Experiment], key: bytes, *,
                 clock: Clock = utc_now) -> None:
        self._engine = engine
        self._writer = writer
        self._experiments = experiments
        self._key = key
        self._clock = clock

    def erase(self, request: EraseRequest, allowed: Set[str] | None = None) -> Erased:
        """Erase ``request.unit_id`` in ``request.experiment`` (or in every experiment, within
        ``allowed`` if given: the experiments the caller may see). Blocks until committed and
        folded here."""
        unit = request.unit_id
        if not unit:
            raise InvalidArgument("unit_id", "must not be empty")
        if len(unit) > MAX_UNIT_ID_LENGTH:
            raise InvalidArgument("unit_id", f"must be at most {MAX_UNIT_ID_LENGTH} characters")
        for name, value in (("experiment", request.experiment),
                            ("request_id", request.request_id)):
            if len(value) > MAX_ID_LENGTH:
                raise InvalidArgument(name, f"must be at most {MAX_ID_LENGTH} characters")
        request_id = request.request_id or f"erase-{uuid_utils.uuid7()}"
        scope = self._scope(request.experiment, allowed)
        units = tuple((name, form) for name in sorted(scope)
                      for form in (pseudonym(self._key, self._salt(name), unit),
                                   legacy_pseudonym(self._salt(name), unit)))
        fingerprint = hmac.new(self._key, f"erase:{request_id}:{request.experiment}:{unit}"
                               .encode(), hashlib.sha256).hexdigest()
        op = Op(Erase(request_id=request_id, experiment=request.experiment or None, units=units,
                      fingerprint=fingerprint, principal=request.principal, at=self._clock()))
        self._writer.write([op])
        outcome = op.outcome
        if isinstance(outcome, Reused):
            raise FailedPrecondition(str(outcome))
        assert isinstance(outcome, Erased)
        if outcome.repeated:
            return outcome
        if outcome.decisions and not truncate_wal(self._engine):
            log.warning("erasure %s: the SQLite WAL could not be truncated (readers kept it "
                        "busy); the next checkpoint writes the zeroed pages", request_id)
        log.warning("erasure %s by %s: %d decisions, %d rewards, %d activations, %d learned "
                    "events deleted in %s; rebuilt: %s", request_id,
                    request.principal or "an unauthenticated caller", outcome.decisions,
                    outcome.rewards, outcome.activations, outcome.learned_events,
                    request.experiment or "every experiment",
                    ", ".join(outcome.rebuilt) or "nothing")
        return outcome

    def _salt(self, name: str) -> str:
        experiment = self._experiments.get(name)
        return experiment.toml.salt if experiment is not None else name

    def _scope(self, name: str, allowed: Set[str] | None) -> set[str]:
        """The experiments to erase in: ``name``; or every one configured or in the log's
        set-up history (an experiment no longer configured keeps its data; its salt is then
        taken to be its name, the default)."""
        if name:
            if allowed is not None and name not in allowed:
                raise NotFound(f"experiment {name!r} is not configured")
            if name not in self._experiments and not self._logged(name):
                raise NotFound(f"experiment {name!r} is not configured and has no decisions")
            return {name}
        with self._engine.connect() as connection:
            known = set(connection.execute(
                sa.select(experiment_states.c.experiment).distinct()).scalars())
        known |= set(self._experiments)
        return known if allowed is None else known & set(allowed)

    def _logged(self, name: str) -> bool:
        with self._engine.connect() as connection:
            return connection.execute(sa.select(decisions.c.id).where(
                decisions.c.experiment == name).limit(1)).first() is not None
