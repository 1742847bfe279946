"""The live set-up of an experiment — traffic, shadows, champion, bucket table — and its storage.

The TOML seeds it; afterwards the database is the truth. ``experiment_states`` is append-only:
every change (``SetTraffic``, a promotion, a TOML that adds or drops variants) inserts the next
``version`` and the highest version is current. At start :func:`load_or_seed` applies the stored
state to each experiment *before* the models are restored (which variants are shadows decides
what the replay feeds them):

- a variant in both the TOML and the stored state keeps its stored ``traffic`` and ``shadow``
  flag (its policy and params always come from the TOML);
- a variant new in the TOML joins with its TOML traffic; a stored variant the TOML no longer
  lists is dropped; a stored champion the TOML dropped falls back to the TOML's control;
- if that changes the weights, the table is re-allocated from the stored one with
  :func:`~server.assignment.allocate`, so as few units as possible move, and stored.

Swapping a state in (:func:`apply`) replaces ``experiment.config`` and ``experiment.table`` each in
one assignment and mutates nothing a concurrent ``Choose`` may be reading.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from arbiter.log.schema import experiment_states
from arbiter.server.assignment import BUCKETS, allocate
from arbiter.server.config import ExperimentConfig
from arbiter.server.experiments import Experiment
from arbiter.server.loop import as_utc, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class State:
    """One version of an experiment's set-up."""

    experiment: str
    version: int
    control: str
    variants: tuple[tuple[str, float, bool], ...]  # (name, traffic, shadow)
    table: tuple[str, ...]
    reason: str
    created_at: datetime

    def row(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "version": self.version, "control": self.control,
                "variants": [{"name": n, "traffic": t, "shadow": s} for n, t, s in self.variants],
                "bucket_table": encode_table(self.table), "reason": self.reason,
                "created_at": self.created_at}


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
                 variants=tuple((v.name, v.traffic, v.shadow) for v in config.variants),
                 table=tuple(experiment.table), reason=reason, created_at=utc_now())


def configured(config: ExperimentConfig, control: str,
               flags: Mapping[str, tuple[float, bool]]) -> ExperimentConfig:
    """``config`` with each variant's (traffic, shadow) from ``flags`` and ``control``."""
    variants = tuple(replace(v, traffic=flags[v.name][0], shadow=flags[v.name][1])
                     if v.name in flags else v for v in config.variants)
    return replace(config, variants=variants, control=control)


def apply(experiment: Experiment, config: ExperimentConfig, table: Sequence[str]) -> None:
    """Swap in a new set-up. Each attribute is replaced in one assignment (atomic for readers);
    the variants keep their live policies, only their ``config`` objects are replaced."""
    for variant in config.variants:
        live = experiment.variants[variant.name]
        live.config = variant
    experiment.table = list(table)
    experiment.config = config


def latest(engine: sa.Engine, experiment: str) -> State | None:
    query = (sa.select(experiment_states).where(experiment_states.c.experiment == experiment)
             .order_by(experiment_states.c.version.desc()).limit(1))
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        return None
    return State(experiment=row["experiment"], version=int(row["version"]),
                 control=row["control"],
                 variants=tuple((v["name"], float(v["traffic"]), bool(v["shadow"]))
                                for v in row["variants"]),
                 table=tuple(decode_table(row["bucket_table"])), reason=row["reason"],
                 created_at=as_utc(row["created_at"]))


def load_or_seed(engine: sa.Engine, experiment: Experiment) -> State:
    """Apply the stored state to ``experiment`` (merged with its TOML), or store the TOML's."""
    stored = latest(engine, experiment.name)
    if stored is None:
        state = state_of(experiment, 1, "seeded from the configuration")
        try:
            _insert(engine, state)
            return state
        except sa.exc.IntegrityError:  # another process sharing the database seeded it first
            stored = latest(engine, experiment.name)
            assert stored is not None
    toml = experiment.config
    flags = {name: (traffic, shadow) for name, traffic, shadow in stored.variants
             if name in experiment.variants}
    control = stored.control
    if control not in flags or flags[control][1]:
        log.warning("experiment %s: stored champion %r is not a serving variant of the "
                    "configuration; using %r", experiment.name, control, toml.control)
        control = toml.control
    config = configured(toml, control, flags)
    serving = {v.name: v.traffic for v in config.variants if not v.shadow}
    if sum(serving.values()) <= 0:
        log.warning("experiment %s: the stored traffic gives no serving variant any weight; "
                    "seeding from the configuration", experiment.name)
        config, previous = toml, None
    else:
        previous = list(stored.table) if len(stored.table) == BUCKETS else None
    table = allocate(serving if previous is not None else experiment.weights(), previous)
    apply(experiment, config, table)
    state = state_of(experiment, stored.version, stored.reason)
    if (state.variants, state.control, state.table) != (stored.variants, stored.control,
                                                        stored.table):
        state = state_of(experiment, stored.version + 1, "configuration changed the variants")
        _insert(engine, state)
    else:
        state = stored
    return state


def _insert(engine: sa.Engine, state: State) -> None:
    with engine.begin() as connection:
        connection.execute(experiment_states.insert(), [state.row()])
