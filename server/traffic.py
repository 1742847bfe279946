"""The live set-up of an experiment — traffic, shadows, champion, bucket table — and its storage.

The TOML seeds it; afterwards the log is the truth. ``experiment_states`` is append-only: every
change (``SetTraffic``, a promotion, a TOML that adds or drops variants) inserts the next
``version`` together with a ``learnings`` row (``state_version``) that gives the change its
place in the one learning order; the fold applies it there (:func:`apply_state`), on every
process, so every process and every replay switches roles at the same event.

At start, once the fold has caught up, :func:`merged_state` compares the set-up in force with
the TOML:

- a variant in both keeps its stored ``traffic`` and ``shadow`` flag (its policy and params
  always come from the TOML);
- a variant new in the TOML joins with its TOML traffic; a stored variant the TOML no longer
  lists is dropped; a stored champion the TOML dropped falls back to the TOML's control;
- if that changes anything, the table is re-allocated from the current one with
  :func:`~server.assignment.allocate`, so as few units as possible move, and a new version is
  written (through the order like any change).

Until a version lists it, a variant of the TOML is scored as a shadow (it serves no traffic)
and, with ``warm_start``, learns as one (else it learns nothing yet), the same way live and in
every replay. Swapping a state in replaces
``experiment.config`` and ``experiment.table`` each in one assignment and mutates nothing a
concurrent ``Choose`` may be reading.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from arbiter.log.schema import experiment_states, learnings
from arbiter.log.store import as_utc
from arbiter.server.assignment import BUCKETS, allocate
from arbiter.server.clock import utc_now
from arbiter.server.config import ExperimentConfig, VariantConfig
from arbiter.server.experiments import Experiment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class State:
    """One version of an experiment's set-up."""

    experiment: str
    version: int
    control: str
    variants: tuple[tuple[str, float, bool, str], ...]  # (name, traffic, shadow, mode)
    table: tuple[str, ...]
    reason: str
    created_at: datetime
    principal: str | None = None  # who changed it (a token's name); None: the server, open server

    def row(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "version": self.version, "control": self.control,
                "variants": [{"name": n, "traffic": t, "shadow": s, "mode": m}
                             for n, t, s, m in self.variants],
                "bucket_table": encode_table(self.table), "reason": self.reason,
                "created_at": self.created_at, "principal": self.principal}


def encode_table(table: Sequence[str]) -> list[list[Any]]:
    """Run-length encoding ``[[variant, count], ...]`` of the bucket → variant table."""
    runs: list[list[Any]] = []
    for owner in table:
        if runs and runs[-1][0] == owner:
            runs[-1][1] += 1
        else:
            runs.append([owner, 1])
    return runs


def decode_table(runs: Sequence[Sequence[Any]]) -> list[str]:
    table: list[str] = []
    for owner, count in runs:
        table.extend([str(owner)] * int(count))
    return table


def state_of(experiment: Experiment, version: int, reason: str) -> State:
    config = experiment.config
    return State(experiment=config.name, version=version, control=config.control,
                 variants=flags_of(config.variants), table=tuple(experiment.table),
                 reason=reason, created_at=utc_now())


Flags = tuple[float, bool, str]  # a variant's (traffic, shadow, mode) in a set-up


def flags_of(variants: Sequence[VariantConfig]) -> tuple[tuple[str, float, bool, str], ...]:
    """What a set-up stores of each variant: (name, traffic, shadow, mode)."""
    return tuple((v.name, v.traffic, v.shadow, v.mode) for v in variants)


def configured(config: ExperimentConfig, control: str,
               flags: Mapping[str, Flags]) -> ExperimentConfig:
    """``config`` with each variant's (traffic, shadow, mode) from ``flags`` (a variant
    ``flags`` does not list: a shadow in its configured mode) and ``control``."""
    variants = tuple(replace(v, traffic=flags[v.name][0], shadow=flags[v.name][1],
                             mode=flags[v.name][2])
                     if v.name in flags else replace(v, traffic=0.0, shadow=True)
                     for v in config.variants)
    return replace(config, variants=variants, control=control)


def _swap(experiment: Experiment, config: ExperimentConfig, table: Sequence[str]) -> None:
    """Swap in a new set-up. Each attribute is replaced in one assignment (atomic for readers);
    the variants keep their live policies, only their ``config`` objects are replaced."""
    for variant in config.variants:
        experiment.variants[variant.name].config = variant
    experiment.table = list(table)
    experiment.config = config


def apply_state(experiment: Experiment, state: State) -> None:
    """Make ``state`` the set-up in force (the fold calls this at the change's seq)."""
    toml = experiment.toml
    flags = {name: (traffic, shadow, mode) for name, traffic, shadow, mode in state.variants
             if name in experiment.variants}
    control = state.control
    if control not in flags or flags[control][1]:
        control = toml.control
        flags.setdefault(control, (1.0, False, toml.variant(control).mode))
        flags[control] = (flags[control][0], False, flags[control][2])
    config = configured(toml, control, flags)
    serving = {v.name: v.traffic for v in config.variants if not v.shadow}
    if sum(serving.values()) <= 0:
        serving = {control: 1.0}
    table = list(state.table)
    if len(table) != BUCKETS or not set(table) <= {n for n, w in serving.items() if w > 0}:
        table = allocate(serving, list(state.table) if len(state.table) == BUCKETS else None)
    _swap(experiment, config, table)
    experiment.version = state.version
    experiment.since = state.created_at
    experiment.listed = frozenset(flags)


def merged_state(experiment: Experiment) -> State | None:
    """The set-up the TOML asks for, merged with the one in force (rules above), as the next
    version; None when nothing changes."""
    toml = experiment.toml
    if experiment.version == 0:
        table = allocate({v.name: v.traffic for v in toml.variants if not v.shadow})
        _swap(experiment, toml, table)
        return state_of(experiment, 1, "seeded from the configuration")
    live = experiment.config
    flags = {v.name: (v.traffic, v.shadow, v.mode) for v in live.variants
             if v.name in experiment.listed}
    flags.update({v.name: (v.traffic, v.shadow, v.mode) for v in toml.variants
                  if v.name not in experiment.listed})
    control = live.control
    if control not in flags or flags[control][1]:
        log.warning("experiment %s: champion %r is not a serving variant of the "
                    "configuration; using %r", experiment.name, control, toml.control)
        control = toml.control
    config = configured(toml, control, flags)
    serving = {v.name: v.traffic for v in config.variants if not v.shadow}
    if sum(serving.values()) <= 0:
        log.warning("experiment %s: the stored traffic gives no serving variant any weight; "
                    "seeding from the configuration", experiment.name)
        config = toml
        serving = {v.name: v.traffic for v in toml.variants if not v.shadow}
    table = allocate(serving, previous=list(experiment.table))
    current = (flags_of(live.variants), live.control, tuple(experiment.table))
    wanted = (flags_of(config.variants), config.control, tuple(table))
    if current == wanted and experiment.listed == frozenset(v.name for v in toml.variants):
        return None
    return State(experiment=experiment.name, version=experiment.version + 1,
                 control=config.control, variants=wanted[0], table=wanted[2],
                 reason="configuration changed the variants", created_at=utc_now())


def load(connection: sa.Connection, experiment: str, version: int) -> State | None:
    """Version ``version`` of ``experiment``'s set-up."""
    row = connection.execute(
        sa.select(experiment_states).where(experiment_states.c.experiment == experiment,
                                           experiment_states.c.version == version)
    ).mappings().first()
    return _state(row) if row is not None else None


def legacy(connection: sa.Connection, experiment: str) -> State | None:
    """The latest set-up of a log written before changes had a place in the learning order
    (its versions have no ``learnings`` row); None otherwise."""
    ordered = connection.execute(
        sa.select(learnings.c.seq).where(learnings.c.experiment == experiment,
                                         learnings.c.state_version.is_not(None)).limit(1)
    ).first()
    if ordered is not None:
        return None
    row = connection.execute(
        sa.select(experiment_states).where(experiment_states.c.experiment == experiment)
        .order_by(experiment_states.c.version.desc()).limit(1)).mappings().first()
    return _state(row) if row is not None else None


def _state(row: sa.RowMapping) -> State:
    return State(experiment=row["experiment"], version=int(row["version"]),
                 control=row["control"],
                 variants=tuple((v["name"], float(v["traffic"]), bool(v["shadow"]),
                                 str(v.get("mode", "online")))  # (before modes: online)
                                for v in row["variants"]),
                 table=tuple(decode_table(row["bucket_table"])), reason=row["reason"],
                 created_at=as_utc(row["created_at"]))
