"""Three servers on one database answer every call as one server would, and fold to one model.

Three in-process servers (each with its own writer, fold, tail and coordinator election) share
one SQLite file or one PostgreSQL database. Client threads with fixed seeds run per-event
scripts — Choose (retried on another server), Reward (first, retried, duplicate, summed, late),
Activate of deferred decisions — sending every call to a randomly chosen server, and check each
answer against the single-server rules (README "Rewards: windows, defaults, aggregation,
deferred decisions"; the table in ``server/rewards.py``), modelled here per event.

Then the log must hold every acknowledged decision and reward exactly once and one learning per
event with the value those rules give; once the windows have closed and every server's fold has
caught up, every variant (LinUCB, LinTS, Beta Thompson, VW) is byte-identical on the three
servers and to a from-scratch replay of the log.

Timing: a reward's answer depends on whether it reached the server inside its window. The
client brackets each call with its clock (the servers' clock in this process), so the model
knows the answer for certain except for a call that straddles a window's end; such a call may
get either answer (both are right), and the model follows the one given. The test requires
there to be few of them.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from arbiter.client import Choice, DecisionClient
from arbiter.server.app import App
from tests.cluster.helpers import query, reward, vw_first_use_deadlocks, wait_until
from tests.conftest import running_apps
from tests.replay import replayed_states

WAIT = 2.0  # every experiment's reward window (seconds)
MARGIN = 0.3  # a late reward is sent this long after its window's end at the latest
HOME_DEFAULT = 0.25
BASKET_DEFAULT = 0.0
VARIANTS = """
[[experiments.{name}.variants]]
name = "champion"
policy = "linucb"
params = {{ alpha = 0.5 }}
traffic = 1.0

[[experiments.{name}.variants]]
name = "lints"
policy = "lints"
shadow = true

[[experiments.{name}.variants]]
name = "thompson"
policy = "thompson"
shadow = true

[[experiments.{name}.variants]]
name = "vw"
policy = "vw"
shadow = true
"""
CONFIG = f"""
[experiments.homepage]
reward_wait_seconds = {WAIT}
default_reward = {HOME_DEFAULT}
reward_aggregation = "first"
control = "champion"
{VARIANTS.format(name="homepage")}
[experiments.basket]
reward_wait_seconds = {WAIT}
default_reward = {BASKET_DEFAULT}
reward_aggregation = "sum"
control = "champion"
{VARIANTS.format(name="basket")}
"""
AGGREGATION = {"homepage": "first", "basket": "sum"}
DEFAULT = {"homepage": HOME_DEFAULT, "basket": BASKET_DEFAULT}
SERVERS = 3
THREADS = 4
SCRIPTS_PER_THREAD = 30
PRICES = {f"item-{i}": float(i + 1) for i in range(6)}
VALUES = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)  # in [0, 1] (Beta Thompson); exact float sums
SUMMANDS = (0.125, 0.25)  # up to three of them: a sum stays in [0, 1]
LEARNED, NOT_LEARNED, EXISTS = "learned", "not learned", "ALREADY_EXISTS"
VW_DEADLOCK = (
    "two threads making their first VW call at once deadlock the process (pybind11 imports "
    "NumPy's C API inside a function-local static while it lets go of the GIL; the other "
    "thread waits for that static holding the GIL): three servers in this process would hang "
    "instead of failing; see tests.cluster.helpers.VW_FIRST_USE")


@pytest.fixture
def start_app(db_url: str) -> Iterator[Callable[..., App]]:
    yield from running_apps(db_url)


@dataclass
class Event:
    """One decision as the client saw it, and what the rules say the log holds for it."""

    event_id: str
    experiment: str
    deferred: bool
    choice: Choice
    window: tuple[float, float] | None  # when its window opened, between these client times
    keys: set[str] = field(default_factory=set)  # dedupe keys of the rewards stored
    taken: float | None = None  # ``first``: the value of the reward that took the window
    counted: list[float] = field(default_factory=list)  # ``sum``: rewards counted in the window
    rows: list[tuple[float, str | None, bool]] = field(default_factory=list)  # rewards stored
    activations: int = 0
    client_id: bool = False  # the client chose the event id (a Choose it can retry)

    @property
    def aggregation(self) -> str:
        return AGGREGATION[self.experiment]

    def learning(self) -> float | None:
        """The value the log learns for this event once its window closed (None: nothing)."""
        if self.window is None:
            return None  # deferred and never activated
        if self.aggregation == "first":
            return self.taken if self.taken is not None else DEFAULT[self.experiment]
        return sum(self.counted) if self.counted else DEFAULT[self.experiment]


def dedupe_key(reward_id: str, value: float, aggregation: str) -> str | None:
    """README: the reward_id; without one, the value under ``first``; under ``sum``, nothing."""
    if reward_id:
        return f"id:{reward_id}"
    return f"value:{value!r}" if aggregation == "first" else None


def inside(window: tuple[float, float] | None, sent: float, answered: float) -> bool | None:
    """Whether a reward sent and answered at these times was inside the window: True, False,
    or None when the call straddles the window's end (either answer is right)."""
    if window is None:
        return False  # a deferred decision not activated yet: no window
    opened_first, opened_last = window
    if answered < opened_first + WAIT:
        return True
    if sent > opened_last + WAIT:
        return False
    return None


class World:
    """What every thread saw, and the model of what the log must hold."""

    def __init__(self, apps: list[App]) -> None:
        self.targets = [f"127.0.0.1:{app.port}" for app in apps]
        self.events: dict[str, Event] = {}
        self.outcomes: Counter[str] = Counter()  # (script step, answer) tallies
        self.straddling = 0
        self.lock = threading.Lock()

    def add(self, event: Event) -> None:
        with self.lock:
            assert event.event_id not in self.events, f"event id {event.event_id} answered twice"
            self.events[event.event_id] = event

    def tally(self, what: str, straddled: bool = False) -> None:
        with self.lock:
            self.outcomes[what] += 1
            self.straddling += straddled


class Script:
    """One client thread: its own clients (one per server) and random choices."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.seed = seed
        self.rng = random.Random(seed)
        self.clients = [DecisionClient(t, timeout=10) for t in world.targets]
        self.count = 0

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def server(self, besides: int | None = None) -> int:
        choices = [i for i in range(SERVERS) if i != besides]
        return self.rng.choice(choices)

    # ------------------------------------------------------------------ calls
    def choose(self, experiment: str, *, client_id: bool, deferred: bool = False) -> tuple[Event, int]:
        self.count += 1
        event_id = f"s{self.seed}-{self.count}" if client_id else ""
        actions = [{"id": a, "features": {"item": {"price": PRICES[a]}}}
                   for a in self.rng.sample(sorted(PRICES), self.rng.randint(2, 4))]
        context = {"user": {"tier": self.rng.choice(["free", "gold", "pro"]),
                            "age": self.rng.randint(18, 80) / 10}}
        where = self.server()
        sent = time.time()
        choice = self.clients[where].choose(experiment, context=context, actions=actions,
                                            unit_id=f"u{self.rng.randrange(40)}",
                                            event_id=event_id, deferred=deferred)
        answered = time.time()
        assert choice.variant == "champion"
        assert dict(choice.ranking)[choice.action_id] == choice.probability
        assert choice.ranking[0][0] == choice.action_id
        if client_id:
            assert choice.event_id == event_id
        event = Event(choice.event_id, experiment, deferred, choice,
                      None if deferred else (sent, answered), client_id=client_id)
        self.world.add(event)
        self.world.tally(f"choose {experiment}{' deferred' if deferred else ''}")
        return event, where

    def retry_choose(self, event: Event, before: int) -> None:
        """The same event id again on another server: the logged decision, nothing new."""
        decision = event.choice
        again = self.clients[self.server(besides=before)].choose(
            event.experiment, context={"other": {"x": 1.0}}, actions=["x", "y"],
            event_id=event.event_id, deferred=event.deferred)
        assert again == decision, f"retried Choose {event.event_id}: {again} != {decision}"
        self.world.tally("choose retried")

    def activate(self, event: Event) -> None:
        sent = time.time()
        self.clients[self.server()].activate(event.event_id)
        answered = time.time()
        if event.window is None:
            event.window = (sent, answered)
        event.activations += 1
        self.world.tally("activate" if event.activations == 1 else "activate again")

    def reward(self, event: Event, value: float, reward_id: str = "") -> str:
        """Send a reward to a random server; check the answer against the rules; update the
        model; returns the answer."""
        where = self.server()
        sent = time.time()
        answer = reward(self.clients[where], event.event_id, value, reward_id)
        answered = time.time()
        key = dedupe_key(reward_id, value, event.aggregation)
        retry = key is not None and key in event.keys
        window = inside(event.window, sent, answered)
        if retry:
            expected = {EXISTS}  # written once: not stored again
        elif event.aggregation == "first" and event.taken is not None:
            expected = {EXISTS}  # another reward was learned: stored, not learned
        elif window is None:
            expected = {LEARNED, NOT_LEARNED}  # straddles the window's end
        else:
            expected = {LEARNED} if window else {NOT_LEARNED}
        assert answer in expected, (
            f"Reward({event.event_id!r}, {value}, reward_id={reward_id!r}) on server {where} "
            f"({event.aggregation}, window {event.window}, sent {sent:.3f}, answered "
            f"{answered:.3f}, stored keys {sorted(event.keys)}): {answer}, expected {expected}")
        straddled = len(expected) > 1
        if not retry:
            learned = answer == LEARNED
            event.rows.append((value, reward_id or None, learned))
            if learned and event.aggregation == "first":
                event.taken = value
            elif learned:
                event.counted.append(value)
            if key is not None:
                event.keys.add(key)
        self.world.tally(f"reward {event.aggregation} {answer}", straddled)
        return answer

    def reward_id(self) -> str:
        self.count += 1
        return f"r{self.seed}-{self.count}"

    def value(self, besides: float | None = None) -> float:
        return self.rng.choice([v for v in VALUES if v != besides])


Step = Generator[float, None, None]  # a script yields the time it must wait for


def first_rewards(s: Script) -> Step:
    """A reward learned at once; its retry and a second, different reward are ALREADY_EXISTS."""
    event, where = s.choose("homepage", client_id=s.rng.random() < 0.5)
    if event.client_id:
        s.retry_choose(event, where)
    value = s.value()
    reward_id = s.reward_id() if s.rng.random() < 0.5 else ""
    s.reward(event, value, reward_id)
    assert s.reward(event, value, reward_id) == EXISTS  # retry (same reward_id, or same value)
    s.reward(event, s.value(besides=value), s.reward_id() if s.rng.random() < 0.5 else "")
    yield from ()


def silent(s: Script) -> Step:
    """No reward: the default (``first``) or the empty sum's default is learned at close."""
    s.choose(s.rng.choice(["homepage", "basket"]), client_id=s.rng.random() < 0.5)
    yield from ()


def late(s: Script) -> Step:
    """Rewards after the window: stored, not learned; the default is learned."""
    event, _ = s.choose(s.rng.choice(["homepage", "basket"]), client_id=s.rng.random() < 0.5)
    assert event.window is not None
    yield event.window[1] + WAIT + MARGIN * s.rng.random()
    s.reward(event, s.value(), s.reward_id())
    s.reward(event, s.value(), s.reward_id() if event.aggregation == "first" else "")


def sums(s: Script) -> Step:
    """``sum``: rewards inside the window are learned=true and add up; a retry with the same
    reward_id is ALREADY_EXISTS; a late one is stored, not learned."""
    event, where = s.choose("basket", client_id=s.rng.random() < 0.5)
    if event.client_id:
        s.retry_choose(event, where)
    ids = []
    for _ in range(s.rng.randint(1, 3)):
        ids.append(s.reward_id() if s.rng.random() < 0.7 else "")
        s.reward(event, s.rng.choice(SUMMANDS), ids[-1])
    retry = [i for i in ids if i]
    if retry:
        value = next(v for v, i, _ in event.rows if i == retry[0])
        assert s.reward(event, value, retry[0]) == EXISTS
    assert event.window is not None
    if s.rng.random() < 0.5:
        yield event.window[1] + WAIT + MARGIN * s.rng.random()
        s.reward(event, s.rng.choice(SUMMANDS), s.reward_id())


def deferred(s: Script) -> Step:
    """A deferred decision: a reward before Activate is stored, not learned; Activate (twice,
    on two servers: idempotent) opens the window; a reward then is learned."""
    event, where = s.choose("homepage", client_id=s.rng.random() < 0.5, deferred=True)
    if event.client_id:
        s.retry_choose(event, where)
    before = s.value()
    assert s.reward(event, before, s.reward_id()) == NOT_LEARNED
    s.activate(event)
    s.activate(event)
    value = s.value(besides=before)
    reward_id = s.reward_id() if s.rng.random() < 0.5 else ""
    s.reward(event, value, reward_id)
    assert s.reward(event, value, reward_id) == EXISTS
    yield from ()


def deferred_silent(s: Script) -> Step:
    """Activated, never rewarded: the default is learned when the window (from activation)
    closes."""
    event, _ = s.choose("homepage", client_id=s.rng.random() < 0.5, deferred=True)
    s.activate(event)
    yield from ()


def never_activated(s: Script) -> Step:
    """Never activated: its rewards are stored, never learned, and it is never defaulted."""
    event, _ = s.choose("homepage", client_id=s.rng.random() < 0.5, deferred=True)
    assert s.reward(event, s.value(), s.reward_id()) == NOT_LEARNED
    yield from ()


SCRIPTS: list[tuple[Callable[[Script], Step], int]] = [
    (first_rewards, 5), (silent, 2), (late, 2), (sums, 4), (deferred, 2), (deferred_silent, 1),
    (never_activated, 1)]


def run_thread(world: World, seed: int) -> None:
    """Run ``SCRIPTS_PER_THREAD`` scripts one after another; a script waiting for its window to
    close is resumed when due, between the next ones (and at the end)."""
    script = Script(world, seed)
    waiting: list[tuple[float, int, Step]] = []

    def advance(step: Step) -> None:
        with contextlib.suppress(StopIteration):
            waiting.append((next(step), len(waiting), step))

    def resume_due(block: bool) -> None:
        while waiting:
            waiting.sort(key=lambda item: item[:2])
            due, _, step = waiting[0]
            if due > time.time():
                if not block:
                    return
                time.sleep(max(0.0, due - time.time()))
            waiting.pop(0)
            advance(step)

    try:
        for _ in range(SCRIPTS_PER_THREAD):
            kind = script.rng.choices([f for f, _ in SCRIPTS], [w for _, w in SCRIPTS])[0]
            advance(kind(script))
            resume_due(block=False)
        resume_due(block=True)
    finally:
        script.close()


def states(app: App) -> dict[tuple[str, str], tuple[bytes, int, int]]:
    with app.fold.lock:
        return {(e.name, v.name): v.state() for e in app.experiments.values()
                for v in e.variants.values()}


def test_three_servers_on_one_database_answer_as_one_and_fold_to_one_model(
        start_app: Callable[..., App], db_url: str, tmp_path: Path) -> None:
    if vw_first_use_deadlocks():
        pytest.fail(VW_DEADLOCK)
    config_path = tmp_path / "experiments.toml"
    config_path.write_text(CONFIG)
    config = tomllib.loads(CONFIG)
    apps = [start_app(config) for _ in range(SERVERS)]
    world = World(apps)

    with ThreadPoolExecutor(THREADS) as pool:
        for done in [pool.submit(run_thread, world, seed) for seed in range(THREADS)]:
            done.result()

    # Every kind of answer happened, and few calls straddled a window's end.
    outcomes = world.outcomes
    for what in ("choose retried", "activate again", "reward first learned",
                 "reward first ALREADY_EXISTS", "reward first not learned", "reward sum learned",
                 "reward sum ALREADY_EXISTS", "reward sum not learned"):
        assert outcomes[what] > 0, (what, outcomes)
    assert world.straddling <= 3, (world.straddling, outcomes)
    events = world.events

    # Every acknowledged decision is logged once, as answered; nothing else is.
    logged = query(db_url, "SELECT event_id, experiment, variant, chosen_action, probability, "
                           "deferred FROM decisions")
    assert Counter(row[0] for row in logged) == Counter(events.keys())
    for event_id, experiment, variant, action, probability, is_deferred in logged:
        choice = events[event_id].choice
        assert (experiment, variant, action, probability, bool(is_deferred)) == (
            events[event_id].experiment, choice.variant, choice.action_id, choice.probability,
            events[event_id].deferred)

    # Every stored reward once, with the learned flag its answer implied; retries not at all.
    stored = query(db_url, "SELECT event_id, value, reward_id, learned FROM rewards")
    assert Counter((e, v, i, bool(learned)) for e, v, i, learned in stored) == Counter(
        (event.event_id, *row) for event in events.values() for row in event.rows)
    activated = query(db_url, "SELECT event_id FROM activations")
    assert sorted(e for (e,) in activated) == sorted(
        e.event_id for e in events.values() if e.activations)

    # The windows close: each opened window is learned once, with the value the rules give.
    last_opened = max(e.window[1] for e in events.values() if e.window is not None)
    time.sleep(max(0.0, last_opened + WAIT + 0.05 - time.time()))
    apps[1].loop.close_windows()
    assert query(db_url, "SELECT event_id FROM windows") == []
    learned = query(db_url, "SELECT event_id, value FROM learnings WHERE event_id IS NOT NULL")
    assert Counter(e for e, _ in learned) == Counter(
        e.event_id for e in events.values() if e.learning() is not None)
    assert dict(learned) == {e.event_id: e.learning() for e in events.values()
                             if e.learning() is not None}

    # Every server folds every learned event, in one order, to the same models as a replay.
    [(last,)] = query(db_url, "SELECT last_seq FROM learning_order")
    [(highest,)] = query(db_url, "SELECT max(seq) FROM learnings")
    assert last == highest
    for index, app in enumerate(apps):
        wait_until(lambda app=app: app.fold.applied == last, 5,
                   f"server {index} folds up to seq {last} (at {app.fold.applied})")
    replayed = replayed_states(db_url, config_path)
    learned_per_experiment = Counter(
        e.experiment for e in events.values() if e.learning() is not None)
    for (experiment, variant), (_, _, updates) in replayed.items():
        assert updates == learned_per_experiment[experiment], (experiment, variant)
    for index, app in enumerate(apps):
        live = states(app)
        assert live.keys() == replayed.keys()
        for key, state in replayed.items():
            assert live[key] == state, f"server {index}: {key} differs from the replay"


def test_concurrent_rewards_for_one_event_on_three_servers_learn_exactly_one(
        start_app: Callable[..., App], db_url: str) -> None:
    """Under ``first``, rewards for one event that reach three servers at once: one is learned
    (learned=true), the others are stored and answered ALREADY_EXISTS — a different reward is a
    duplicate, the same reward_id a retry (stored once). Under ``sum`` all three count."""
    config = {"experiments": {name: {
        "policy": "linucb", "reward_wait_seconds": 60, "reward_aggregation": aggregation}
        for name, aggregation in AGGREGATION.items()}}
    apps = [start_app(config) for _ in range(SERVERS)]
    clients = [DecisionClient(f"127.0.0.1:{app.port}", timeout=10) for app in apps]
    barrier = threading.Barrier(SERVERS)

    def at_once(calls: list[Callable[[], str]]) -> list[str]:
        def run(call: Callable[[], str]) -> str:
            barrier.wait()
            return call()

        with ThreadPoolExecutor(SERVERS) as pool:
            return list(pool.map(run, calls))

    events = 20
    different, same, summed = [], [], []
    for i in range(events):
        event_id = clients[i % SERVERS].choose("homepage", actions=["a", "b"]).event_id
        answers = at_once([lambda k=k, e=event_id: reward(clients[k], e, VALUES[k], f"d{k}")
                           for k in range(SERVERS)])
        different.append((event_id, answers))
        event_id = clients[i % SERVERS].choose("homepage", actions=["a", "b"]).event_id
        answers = at_once([lambda k=k, e=event_id: reward(clients[k], e, 0.5, "same")
                           for k in range(SERVERS)])
        same.append((event_id, answers))
        event_id = clients[i % SERVERS].choose("basket", actions=["a", "b"]).event_id
        answers = at_once([lambda k=k, e=event_id: reward(clients[k], e, 0.25, f"s{k}")
                           for k in range(SERVERS)])
        summed.append((event_id, answers))
    for client in clients:
        client.close()

    stored = Counter(e for (e,) in query(db_url, "SELECT event_id FROM rewards"))
    wrong = [(kind, event_id, answers, stored[event_id])
             for kind, cases, expected, rows in (
                 ("different rewards", different, [EXISTS, EXISTS, LEARNED], SERVERS),
                 ("the same reward_id", same, [EXISTS, EXISTS, LEARNED], 1),
                 ("sum", summed, [LEARNED] * SERVERS, SERVERS))
             for event_id, answers in cases
             if sorted(answers) != expected or stored[event_id] != rows]
    assert not wrong, f"{len(wrong)} of {3 * events} events: {wrong}"
    learned = dict(query(db_url, "SELECT event_id, value FROM learnings "
                                 "WHERE event_id IS NOT NULL"))
    for event_id, answers in different:  # the reward answered learned=true is the one learned
        assert learned[event_id] == VALUES[answers.index(LEARNED)]
    for event_id, _ in same:
        assert learned[event_id] == 0.5


def test_first_vw_calls_on_two_threads_do_not_deadlock() -> None:
    """A server process calls VW from its event loop, its writer and its tail, and several
    servers may share a process: their first calls may come at once."""
    assert not vw_first_use_deadlocks(), VW_DEADLOCK
