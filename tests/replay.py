"""The reference every process's models are checked against: a from-scratch replay of the log."""

from __future__ import annotations

from pathlib import Path

from arbiter.log import store
from arbiter.log.engine import create_engine
from arbiter.server.clock import utc_now
from arbiter.server.config import load_config
from arbiter.server.experiments import Experiment
from arbiter.server.fold import Fold

State = tuple[bytes, int, int]  # policy bytes, position, updates


def replayed_states(db: str, config: Path) -> dict[tuple[str, str], State]:
    """Every variant's state after folding the whole log from nothing (no snapshot)."""
    engine = create_engine(db)
    try:
        experiments = {name: Experiment(c) for name, c in load_config(config).items()}
        Fold(engine, experiments, utc_now).restore(use_snapshots=False)
        return {(e.name, v.name): v.state() for e in experiments.values()
                for v in e.variants.values()}
    finally:
        engine.dispose()


def latest_snapshots(db: str, config: Path) -> dict[tuple[str, str], State | None]:
    """Every variant's latest snapshot: (state, position, updates), or None."""
    engine = create_engine(db)
    found: dict[tuple[str, str], State | None] = {}
    try:
        with engine.connect() as connection:
            for name, experiment in load_config(config).items():
                for variant in experiment.variants:
                    row = store.latest_snapshot(connection, name, variant.name)
                    found[(name, variant.name)] = (
                        None if row is None
                        else (row["state"], int(row["position"]), int(row["updates"])))
        return found
    finally:
        engine.dispose()
