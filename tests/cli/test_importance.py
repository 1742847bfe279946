"""Per-variant feature importance in ``arbiter report``: a real server process, the CLI as a
subprocess, in a world where one context feature alone drives the reward.

The importance is a fold of the learned events: at each one, the absolute contribution of each
feature of the chosen action under the model before the update. The reference recomputes it
from the log with the policy's public estimates (``estimate``, ``vocabulary``), event by event.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arbiter.client import DecisionClient
from arbiter.evaluation.report_html import fmt
from arbiter.log import store
from arbiter.log.engine import create_engine
from arbiter.policies import create
from arbiter.policies.featurize import INTERCEPT, feature_items, feature_name
from arbiter.policies.linear import LinearPolicy
from tests.cli.helpers import arbiter
from tests.process import ServerProcess

CONFIG = """
[experiments.world]
control = "champion"

[[experiments.world.variants]]
name = "champion"
policy = "linucb"
params = { alpha = 0.5 }
traffic = 1.0

[[experiments.world.variants]]
name = "candidate"
policy = "lints"
params = { v = 0.2 }
shadow = true

[[experiments.world.variants]]
name = "holdout"
policy = "thompson"
shadow = true
"""
PARAMS = {"champion": ("linucb", {"alpha": 0.5}), "candidate": ("lints", {"v": 0.2})}
EVENTS = 300


def world(tmp_path: Path) -> tuple[str, str, ServerProcess]:
    """A server whose rewards are 2 x user.signal for action a, 0 for b (plus small noise);
    user.noise and user.tier are independent of everything."""
    config = tmp_path / "experiments.toml"
    config.write_text(CONFIG)
    db = f"sqlite:///{tmp_path / 'arbiter.db'}"
    server = ServerProcess(config, db)
    rng = np.random.default_rng(13)
    with DecisionClient(server.target, timeout=10) as client:
        for i in range(EVENTS):
            signal, noise = float(rng.normal()), float(rng.normal())
            context = {"user": {"signal": signal, "noise": noise,
                                "tier": ("gold", "free")[int(rng.integers(2))]}}
            choice = client.choose("world", context=context, actions=["a", "b"],
                                   event_id=f"w{i}")  # the same draws every run
            reward = (2.0 * signal if choice.action_id == "a" else 0.0) + 0.1 * rng.normal()
            client.reward(choice.event_id, reward)
    return server.target, db, server


def direct_importance(db: str, variant: str) -> dict[str, float]:
    """Mean over the learned events of |theta_chosen[f] x_f| per feature f, theta the model's
    estimate before the event (features it has no column for yet contribute 0)."""
    name, params = PARAMS[variant]
    policy = create(name, params)
    assert isinstance(policy, LinearPolicy)
    engine = create_engine(db)
    try:
        with engine.connect() as connection:
            events = store.learned_after(connection, 0, limit=10 * EVENTS)
    finally:
        engine.dispose()
    sums: dict[str, float] = {}
    learned = [e for e in events if e.decision is not None]
    for event in learned:
        assert event.decision is not None
        decision, chosen = event.decision, event.chosen
        theta, columns = policy.estimate(decision.action_ids[chosen]), policy.vocabulary
        items = [(INTERCEPT, 1.0)]
        items += [item for ns in decision.context for item in feature_items("s", ns)]
        items += [item for ns in decision.action_features[chosen] for item in feature_items("a", ns)]
        for key, value in items:
            if key in columns and columns.index(key) < len(theta):
                term = abs(theta[columns.index(key)] * value)
                sums[feature_name(key)] = sums.get(feature_name(key), 0.0) + term
        policy.update(decision, chosen, event.value, event.probability)
    assert len(learned) == EVENTS
    return {feature: total / EVENTS for feature, total in sums.items()}


def test_report_ranks_the_feature_that_drives_the_reward_first(tmp_path: Path) -> None:
    target, db, server = world(tmp_path)
    try:
        shown = arbiter("report", "--target", target, "--experiment", "world", "--json")
        table = arbiter("report", "--target", target, "--experiment", "world")
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert shown.returncode == 0, shown.stderr
    assert table.returncode == 0, table.stderr

    variants = {v["variant"]: v for v in json.loads(shown.stdout)["variants"]}
    assert variants["holdout"]["feature_importance"] == []  # thompson cannot explain
    for name in ("champion", "candidate"):
        importance = variants[name]["feature_importance"]
        assert variants[name]["importance_events"] == EVENTS
        assert importance[0]["feature"] == "user.signal"
        figures = [f["mean_abs_contribution"] for f in importance]
        assert figures == sorted(figures, reverse=True)
        # once learned, the signal contributes |2 x signal| (mean 1.6) when a is chosen, the others ~0
        assert figures[0] > 5 * figures[1]
        direct = direct_importance(db, name)
        assert {f["feature"]: f["mean_abs_contribution"] for f in importance} == {
            f["feature"]: pytest.approx(direct[f["feature"]], rel=1e-12) for f in importance}
        assert len(importance) == min(10, sum(1 for v in direct.values() if v > 0))
        line = f"{name}: feature importance (mean |contribution| over {EVENTS} learned events): "
        assert f"{line}user.signal {fmt(figures[0])}" in table.stdout  # 3 significant digits


def test_evaluate_shows_the_replayed_models_importance(tmp_path: Path) -> None:
    _, db, server = world(tmp_path)
    code, _, err = server.stop()
    assert code == 0, err
    out, page = tmp_path / "evaluation.json", tmp_path / "evaluation.html"

    result = arbiter("evaluate", "--db", db, "--experiment", "world",
                     "--candidate", 'lin=linucb:{"alpha": 0.5}', "--candidate", "flat=uniform",
                     "--json", str(out), "--report", str(page))

    assert result.returncode == 0, result.stderr
    candidates = {c["name"]: c for c in json.loads(out.read_text())["candidates"]}
    assert candidates["flat"]["importance"] == []  # uniform keeps none
    lin = candidates["lin"]
    assert lin["importance_rounds"] == EVENTS
    assert lin["importance"][0][0] == "user.signal"
    # the replay learns every logged round in the log's order, as the live champion did: the
    # same figures as the direct computation over the log
    direct = direct_importance(db, "champion")
    assert {f: v for f, v in lin["importance"]} == {
        f: pytest.approx(direct[f], rel=1e-12) for f, _ in lin["importance"]}
    html = page.read_text()
    assert "<h2>Feature importance</h2>" in html
    assert f"<caption>lin ({EVENTS:,} rounds)</caption>" in html
    assert html.index("<td>user.signal</td>") < html.index("<td>user.noise</td>")
    assert "feature importance of lin (mean |contribution| over 300 rounds): user.signal" \
        in result.stdout
