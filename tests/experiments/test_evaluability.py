"""Evaluability: no verdict on a shadow the log cannot evaluate, saying why and what to change.

Two experiments with the same shadow (``fixed`` on "high"): one logged by a policy that almost
never explores (``floor`` 0.01: "high" gets 0.0033), one by a uniform policy. Through a real
server, gRPC and the CLI: the first shadow's effective sample size is tiny and most of its mass
is on actions the log gave near-zero probability, so the report refuses a verdict and says to
raise the exploration; the second gets its verdict.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
import pytest

from arbiter.client import DecisionClient
from arbiter.server.app import App
from arbiter.server.report import MAX_UNSUPPORTED
from arbiter.v1 import experiments_pb2 as pb
from tests.cli.helpers import arbiter, one_line
from tests.experiments.helpers import admin, drive, report, target

SHADOW = {"name": "high", "policy": "fixed", "params": {"action": "high", "floor": 0.1},
          "shadow": True}


def experiment(logging: dict[str, object]) -> dict[str, object]:
    return {"control": "log", "reward_range": [0, 1],
            "auto_promote": {"min_decisions": 100, "confidence": 0.95},
            "variants": [{"name": "log", "traffic": 1, **logging}, SHADOW]}


CONFIG = {"experiments": {
    "narrow": experiment({"policy": "fixed", "params": {"action": "low", "floor": 0.01}}),
    "wide": experiment({"policy": "uniform"}),
}}
EVENTS = 1500


def test_a_shadow_the_log_cannot_evaluate_gets_no_verdict(start_sqlite: Callable[..., App]) -> None:
    app = start_sqlite(CONFIG, auto_promote_seconds=3600)
    with DecisionClient(target(app)) as client:
        for name in ("narrow", "wide"):
            drive(client, name, EVENTS, np.random.default_rng(7), prefix=f"{name}-")
    narrow = {v.variant: v for v in report(app, "narrow").variants}["high"]
    wide = {v.variant: v for v in report(app, "wide").variants}["high"]
    # "high" has 0.01/3 under the narrow log: the shadow's 0.93 there is off the log
    assert narrow.effective_sample_size < 0.05 * narrow.scored
    assert narrow.unsupported_mass > MAX_UNSUPPORTED
    assert "near-zero probability" in narrow.not_evaluable and "`epsilon`" in narrow.not_evaluable
    assert narrow.verdict == "not evaluable"
    assert wide.not_evaluable == "" and wide.unsupported_mass == 0.0
    assert wide.effective_sample_size > 0.3 * wide.scored
    assert wide.verdict == "better"  # 0.8 against uniform's 0.5
    assert app.controller.auto_promote() == [("wide", "high")]  # never the unevaluable one
    assert app.experiments["narrow"].config.control == "log"

    shown = arbiter("report", "--target", target(app), "--experiment", "narrow")
    assert shown.returncode == 0, shown.stderr
    assert f"high: no verdict: {narrow.not_evaluable}" in " ".join(shown.stdout.split())


def test_a_minimum_effect_holds_the_verdict_back(start_sqlite: Callable[..., App]) -> None:
    """``--min-effect``: "better" needs the difference's lower bound above it (the verdict
    changes, the interval does not); a negative or non-finite one is refused, naming it."""
    app = start_sqlite({"experiments": {"wide": CONFIG["experiments"]["wide"]}},
                       auto_promote_seconds=3600)
    with DecisionClient(target(app)) as client:
        drive(client, "wide", EVENTS, np.random.default_rng(7), prefix="wide-")
    plain = {v.variant: v for v in report(app, "wide").variants}["high"]
    assert plain.verdict == "better" and plain.difference_to_control.low > 0
    with admin(app) as stub:
        strict = stub.GetReport(pb.GetReportRequest(
            experiment="wide", min_effect=plain.difference_to_control.low + 0.01))
        assert strict.min_effect == pytest.approx(plain.difference_to_control.low + 0.01)
        [high] = [v for v in strict.variants if v.variant == "high"]
        assert high.verdict == "no difference yet"
        assert high.difference_to_control == plain.difference_to_control
        loose = stub.GetReport(pb.GetReportRequest(
            experiment="wide", min_effect=plain.difference_to_control.low - 0.01))
        assert [v.verdict for v in loose.variants if v.variant == "high"] == ["better"]
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetReport(pb.GetReportRequest(experiment="wide", min_effect=-0.1))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "min_effect" in (refused.value.details() or "")

    shown = arbiter("report", "--target", target(app), "--experiment", "wide", "--min-effect",
                    f"{plain.difference_to_control.low + 0.01}")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "high: no difference beyond" in text and "no difference yet" in text
    bad = arbiter("report", "--target", target(app), "--experiment", "wide", "--min-effect", "-1")
    assert bad.returncode == 2 and "--min-effect" in one_line(bad)
