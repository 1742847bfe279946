"""Start-up: a model is a fold over the log. Load each variant's latest snapshot, replay the rest."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from arbiter.log import queries
from arbiter.log.codec import decision_from_json
from arbiter.policies import restore as restore_policy
from arbiter.server.experiments import Experiment

log = logging.getLogger(__name__)


def restore(engine: sa.Engine, experiment: Experiment, *, use_snapshots: bool = True) -> int:
    """Bring every variant of ``experiment`` up to the end of the log; returns events replayed.

    A snapshot is used only if it was taken with the variant's current policy; the replay
    applies each learned event (seq order) to its serving variant and every shadow variant,
    skipping those whose snapshot already covers it — exactly what the live loop did. Without
    ``use_snapshots`` the models are rebuilt from scratch (the reference recovery is checked
    against).
    """
    for variant in experiment.variants.values():
        if not use_snapshots:
            continue
        snapshot = queries.latest_snapshot(engine, experiment.name, variant.name)
        if snapshot is not None and snapshot["policy"] == variant.config.policy:
            variant.policy = restore_policy(variant.config.policy, snapshot["state"])
            variant.position = snapshot["position"]
    start = min(v.position for v in experiment.variants.values())
    shadows = experiment.shadows()
    replayed = 0
    for row in queries.learnings_after(engine, experiment.name, start):
        serving = experiment.variants.get(row["variant"])
        targets = [v for v in (serving, *shadows) if v is not None and v.position < row["seq"]]
        if not targets:
            continue
        decision = decision_from_json(row["context"], row["actions"])
        for variant in targets:
            variant.learn(decision, row["chosen_index"], row["value"], row["probability"],
                          row["seq"])
        replayed += 1
    log.info("experiment %s: replayed %d learned events", experiment.name, replayed)
    return replayed
