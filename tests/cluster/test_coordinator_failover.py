"""``kill -9`` of the coordinator, then of another server, under load: nothing stops, nothing is lost.

Three ``arbiter serve`` processes share one SQLite file or one PostgreSQL database, with a 1 s
reward window. Which one coordinates is read from its own log (``--log-level INFO``: "this
process is the coordinator"). A client thread sends Choose (client event ids) to random live
servers, and Reward (with a reward_id) for some of the decisions; a call that fails because its
server died is retried, with the same ids, on another one.

- Killing the coordinator: another server takes the role, and windows keep closing — the
  decisions made in the 1.5 s after the kill have their default learned within 5 s of it; no
  event is learned twice; everything acknowledged before the kill is in the log.
- Killing a server that does not coordinate: what it acknowledged is in the log; a retried
  Reward (same reward_id) on the last server is ALREADY_EXISTS and a retried Choose (same event
  id) returns the same decision.
- In the end every acknowledged decision is learned exactly once (its reward, or the default),
  no server keeps a PostgreSQL transaction open while idle, and the last server's snapshot on
  SIGTERM equals a replay of the whole log.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from arbiter.client import ArbiterClientError, Choice, DecisionClient
from tests.cluster.helpers import COORDINATOR_LINE, LoggedServer, query, reward, wait_until
from tests.replay import latest_snapshots, replayed_states

WAIT = 1.0
DEFAULT = -1.0
CONFIG = f"""
[experiments.homepage]
policy = "linucb"
params = {{ alpha = 0.5 }}
reward_wait_seconds = {WAIT}
default_reward = {DEFAULT}
"""
ACTIONS = [f"item-{i}" for i in range(4)]
TAKEOVER = 5.0  # seconds after the kill by which windows must be closing again

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Decided:
    event_id: str
    server: int  # the server that answered
    started: float  # client clock when the (first) call was sent
    answered: float
    choice: Choice


@dataclass(frozen=True)
class Rewarded:
    event_id: str
    reward_id: str
    value: float
    server: int
    answer: str  # "learned" / "not learned"; "ALREADY_EXISTS" after a lost answer
    answered: float


class Load:
    """One client thread: Choose on random live servers; Reward for 30% of the decisions."""

    def __init__(self, servers: list[LoggedServer]) -> None:
        self.live = list(range(len(servers)))
        self.killed: set[int] = set()
        self.decided: list[Decided] = []
        self.rewarded: list[Rewarded] = []
        self.failed_calls = 0  # calls that failed because their server died (then retried)
        self._clients = [DecisionClient(s.target, timeout=5) for s in servers]
        self._rng = random.Random(13)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="load")
        self.error: BaseException | None = None
        self._thread.start()

    def kill(self, servers: list[LoggedServer], index: int) -> float:
        """``kill -9`` server ``index`` under load; returns the client clock just before. The
        client goes on picking it for another 0.2 s (calls to it fail and are retried)."""
        self.killed.add(index)
        killed_at = time.time()
        servers[index].kill()
        time.sleep(0.2)
        with self._lock:
            self.live.remove(index)
        return killed_at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for client in self._clients:
            client.close()
        if self.error is not None:
            raise self.error

    def _server(self) -> int:
        with self._lock:
            return self._rng.choice(self.live)

    def _run(self) -> None:
        try:
            count = 0
            while not self._stop.is_set():
                count += 1
                self._decide(f"e{count}")
        except BaseException as error:  # reported by stop()
            self.error = error

    def _decide(self, event_id: str) -> None:
        started = time.time()
        context = {"user": {"tier": self._rng.choice("abc"), "x": self._rng.random()}}
        unit = f"u{self._rng.randrange(50)}"
        while True:  # a server that dies under the call: the same call on another one
            server = self._server()
            try:
                choice = self._clients[server].choose("homepage", event_id=event_id,
                                                      unit_id=unit, context=context,
                                                      actions=ACTIONS)
                break
            except ArbiterClientError as error:
                assert server in self.killed, f"Choose failed on a live server: {error}"
                self.failed_calls += 1
        assert choice.event_id == event_id
        self.decided.append(Decided(event_id, server, started, time.time(), choice))
        if self._rng.random() >= 0.3:
            return
        reward_id, value = f"r-{event_id}", float(self._rng.random() < 0.5)
        retried = False
        while True:
            server = self._server()
            answer = reward(self._clients[server], event_id, value, reward_id, timeout=5)
            if answer in ("learned", "not learned") or (retried and answer == "ALREADY_EXISTS"):
                break
            assert server in self.killed, f"Reward failed on a live server: {answer}"
            self.failed_calls += 1
            retried = True
        self.rewarded.append(Rewarded(event_id, reward_id, value, server, answer, time.time()))


def learned(db: str) -> dict[str, list[float]]:
    rows = query(db, "SELECT event_id, value FROM learnings WHERE event_id IS NOT NULL")
    found: dict[str, list[float]] = {}
    for event_id, value in rows:
        found.setdefault(event_id, []).append(value)
    return found


def defaulted(db: str, event_ids: list[str]) -> float | None:
    """When a read that began then found every one of ``event_ids`` learned with the default
    (None: not all are)."""
    began = time.time()
    values = learned(db)
    return began if all(values.get(e) == [DEFAULT] for e in event_ids) else None


def assert_kept(db: str, load: Load, answered_before: float) -> None:
    """Everything acknowledged before ``answered_before`` is in the log, exactly once."""
    decisions = Counter(e for (e,) in query(db, "SELECT event_id FROM decisions"))
    rewards = Counter(query(db, "SELECT event_id, reward_id, value FROM rewards"))
    for decided in load.decided:
        if decided.answered < answered_before:
            assert decisions[decided.event_id] == 1, decided
    for rewarded in load.rewarded:
        if rewarded.answered < answered_before:
            assert rewards[(rewarded.event_id, rewarded.reward_id, rewarded.value)] == 1, rewarded
    assert all(count == 1 for count in decisions.values())
    assert all(count == 1 for count in rewards.values())


@pytest.fixture
def servers(db_url: str, tmp_path: Path) -> Iterator[list[LoggedServer]]:
    config = tmp_path / "experiments.toml"
    config.write_text(CONFIG)
    with ThreadPoolExecutor(3) as pool:
        started = list(pool.map(lambda _: LoggedServer(config, db_url, "--snapshot-every", "50"),
                                range(3)))
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.kill()


def test_killing_the_coordinator_and_then_another_server_loses_nothing(
        servers: list[LoggedServer], db_url: str, tmp_path: Path) -> None:
    [coordinator] = wait_until(lambda: [i for i, s in enumerate(servers) if s.coordinates()], 5,
                               f"a server logs {COORDINATOR_LINE!r}")
    assert sum(s.coordinates() for s in servers) == 1
    load = Load(servers)
    try:
        time.sleep(1.5)
        killed_at = load.kill(servers, coordinator)

        # Another server takes the role, and the windows of decisions made after the kill close.
        survivors = [i for i in range(3) if i != coordinator]
        [successor] = wait_until(lambda: [i for i in survivors if servers[i].coordinates()],
                                 TAKEOVER, "a surviving server takes the coordinator role")
        wait_until(lambda: len(load.decided) and load.decided[-1].started > killed_at + 1.5, 3,
                   "the load goes on after the kill")
        after = [d for d in load.decided if killed_at <= d.started <= killed_at + 1.5]
        rewarded = {r.event_id for r in load.rewarded}
        unrewarded = [d.event_id for d in after if d.event_id not in rewarded]
        assert unrewarded, "decisions without reward were made after the kill"
        seen_at = wait_until(lambda: defaulted(db_url, unrewarded),
                             killed_at + TAKEOVER - time.time(),
                             f"the {len(unrewarded)} decisions made after the kill learn "
                             "their default")
        assert seen_at < killed_at + TAKEOVER
        assert all(len(values) == 1 for values in learned(db_url).values())
        assert_kept(db_url, load, killed_at)

        # kill -9 the server that does not coordinate; the last one answers retries.
        [other] = [i for i in survivors if i != successor]
        time.sleep(0.3)
        killed_at = load.kill(servers, other)
        time.sleep(0.3)
    finally:
        load.stop()
    assert load.failed_calls > 0, "some calls were in flight to, or sent to, a killed server"
    assert_kept(db_url, load, killed_at)

    with DecisionClient(servers[successor].target) as client:
        mine = [d for d in load.decided if d.server == other and d.answered < killed_at]
        assert mine, "the killed server had acknowledged decisions"
        for decided in mine[-20:]:
            again = client.choose("homepage", event_id=decided.event_id, actions=["x", "y"])
            assert again == decided.choice
        its_rewards = [r for r in load.rewarded if r.server == other and r.answered < killed_at]
        assert its_rewards, "the killed server had acknowledged rewards"
        for rewarded in its_rewards[-20:]:
            assert reward(client, rewarded.event_id, rewarded.value,
                          rewarded.reward_id) == "ALREADY_EXISTS"

    # Every acknowledged decision is learned once: its reward if learned, else the default.
    last = max(d.answered for d in load.decided)
    time.sleep(max(0.0, last + WAIT - time.time()))
    decided = {d.event_id for d in load.decided}
    wait_until(lambda: decided <= learned(db_url).keys(), 3,
               "every acknowledged decision is learned")
    values = learned(db_url)
    assert all(len(v) == 1 for v in values.values())
    assert values.keys() == decided
    by_reward = {r.event_id: r for r in load.rewarded}
    for event_id in decided:
        rewarded = by_reward.get(event_id)
        if rewarded is None or rewarded.answer == "not learned":
            assert values[event_id] == [DEFAULT], event_id
        elif rewarded.answer == "learned":
            assert values[event_id] == [rewarded.value], event_id

    if db_url.startswith("postgresql"):
        # The coordinator's lock lives on a connection it keeps; it must not keep a transaction
        # open on it as well (PostgreSQL's idle_in_transaction_session_timeout would end the
        # session, and with it the role).
        assert query(db_url, "SELECT pid, now() - xact_start, query FROM pg_stat_activity "
                             "WHERE datname = current_database() AND "
                             "state = 'idle in transaction' AND "
                             "now() - xact_start > interval '2 seconds'") == []

    code, _, log = servers[successor].stop()
    assert code == 0, log
    config = tmp_path / "experiments.toml"
    assert latest_snapshots(db_url, config) == replayed_states(db_url, config)
