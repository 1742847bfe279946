"""``arbiter serve --processes 2 --metrics-listen``: the supervisor serves one endpoint whose
counters are the sums over both servers (prometheus-client's multi-process mode), and keeps a
dead server's counts when it restarts it."""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter
from pathlib import Path

import grpc
import pytest

from arbiter.client import Choice, DecisionClient
from tests.metrics.helpers import (
    CHOOSE,
    CONFIG,
    REWARD,
    choose,
    metrics_server,
    positions_in_log,
    scrape,
    wait_for_scrape,
)
from tests.server.test_processes import answering, fresh_channel, gone, wait_for

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")


@pytest.mark.slow
def test_the_supervisor_serves_the_sum_of_both_processes(tmp_path: Path) -> None:
    config = tmp_path / "experiments.toml"
    config.write_text(CONFIG)
    db = f"sqlite:///{tmp_path / 'arbiter.db'}"
    server, url = metrics_server(config, db, processes=2)
    try:
        pids = server.children()
        assert len(pids) == 2
        choices: list[Choice] = []

        def call(channel: grpc.Channel) -> None:
            choices.append(choose(DecisionClient("unused", channel=channel), len(choices)))

        # Fresh connections until both processes answered some, and at least 30 decisions.
        answered = answering(server.target, pids, call,
                             until=lambda found: found == set(pids) and len(choices) >= 30)
        assert answered == set(pids)
        rewarded = choices[::2]
        for choice in rewarded:
            with fresh_channel(server.target) as channel:
                assert DecisionClient("unused", channel=channel).reward(choice.event_id, 1.0).learned

        totals = scrape(url)
        served_by = Counter(choice.variant for choice in choices)
        rewarded_by = Counter(choice.variant for choice in rewarded)
        assert totals.by("arbiter_decisions_total", "variant", experiment="banner") == served_by
        assert totals.by("arbiter_rewards_total", "variant", experiment="banner",
                         learned="true") == rewarded_by
        assert totals.by("arbiter_learned_events_total", "variant",
                         experiment="banner") == rewarded_by
        assert totals.by("arbiter_rpc_seconds_count", "code", method=CHOOSE) == {"OK": len(choices)}
        assert totals.by("arbiter_rpc_seconds_count", "code", method=REWARD) == {"OK": len(rewarded)}
        # Both fold every learned event (the gauge: the least advanced live process), and each
        # folded the other's (its lag observed).
        folded = wait_for_scrape(url, lambda s: s.by("arbiter_model_position", "variant")
                                 == positions_in_log(db) and s.value("arbiter_database_up") == 1,
                                 "both processes folded the log")
        assert folded.value("arbiter_fold_lag_seconds_count") > 0

        os.kill(pids[0], signal.SIGKILL)  # the supervisor starts another
        wait_for(lambda: gone(pids[0]) and len(server.children()) == 2, 60, "a restarted server")
        restarted = wait_for_scrape(url, lambda s: s.value("arbiter_database_up") == 1,
                                    "the restarted server's gauges")
        assert restarted.by("arbiter_decisions_total", "variant", experiment="banner") == served_by
        assert restarted.by("arbiter_rewards_total", "variant", experiment="banner",
                            learned="true") == rewarded_by
        # The dead server's gauges are dropped: its frozen model positions would hold the
        # least-advanced figure back once the others learn more.
        for choice in choices[1::2]:
            with fresh_channel(server.target) as channel:
                assert DecisionClient("unused", channel=channel).reward(choice.event_id, 0.5).learned
        wait_for_scrape(url, lambda s: s.by("arbiter_model_position", "variant") == positions_in_log(db),
                        "the live processes' positions, without the dead one's")
        folder = shared_folder(server.children()[0])
        assert Path(folder).is_dir()
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert not Path(folder).exists()  # the supervisor removes the values it collected


def shared_folder(pid: int) -> str:
    """The folder of the multi-process files a server process writes its values into (read
    from its open files: the supervisor set PROMETHEUS_MULTIPROC_DIR after it was started)."""
    folders = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = Path(os.readlink(f"/proc/{pid}/fd/{fd}"))
            if target.suffix == ".db" and target.parent.name.startswith("arbiter-metrics-"):
                folders.add(str(target.parent))
    assert len(folders) == 1, folders
    return folders.pop()
